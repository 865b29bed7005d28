"""``http.request.HttpRequester``, the HTTP request the AWS calls go through, against real local
servers: what goes on the wire, keep-alive and its recovery, the deadline, bounded answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lambda_logs_http.http.request import MAX_BODY_BYTES, HttpRequester
from tests.support.accept_loop import AcceptLoopServer


class Scripted(AcceptLoopServer):
    """Reads requests on each connection and answers each with the next scripted bytes; an
    answer of ``None`` closes the connection without answering."""

    def __init__(self, answers: list[bytes | None], keep_reading: bool = True) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.keep_reading = keep_reading
        super().__init__(connection_timeout=5)

    def serve(self, conn: socket.socket) -> None:
        buffer = b""
        while self.answers:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                rest += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
            answer = self.answers.pop(0)
            if answer is None:
                return
            conn.sendall(answer)
            if not self.keep_reading:
                return


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


@pytest.fixture
def requester() -> Iterator[HttpRequester]:
    made = HttpRequester({})
    yield made
    made.close()


def test_a_post_goes_out_with_its_headers_as_given(requester: HttpRequester) -> None:
    server = Scripted([ok()])
    try:
        headers = {"Host": f"127.0.0.1:{server.port}", "X-Amz-Target": "secretsmanager.Get",
                   "Content-Type": "application/x-amz-json-1.1"}
        status, answer_headers, body = requester(
            "POST", f"http://127.0.0.1:{server.port}/", headers, b'{"SecretId": "x"}', 2.0)
    finally:
        server.stop()
    assert (status, body) == (200, b'{"ok": true}')
    assert answer_headers["content-length"] == "12"
    head, _, sent_body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST / HTTP/1.1"
    assert lines[1:4] == [f"Host: 127.0.0.1:{server.port}", "X-Amz-Target: secretsmanager.Get",
                          "Content-Type: application/x-amz-json-1.1"]
    assert "Content-Length: 17" in lines and any(line.startswith("User-Agent: ") for line in lines)
    assert sent_body == b'{"SecretId": "x"}'


def test_a_get_has_no_body_and_a_host_when_none_is_given(requester: HttpRequester) -> None:
    server = Scripted([ok(b"{}")])
    try:
        status, _, _ = requester("GET", f"http://127.0.0.1:{server.port}/creds?x=1",
                                 {"Authorization": "tok"}, b"", 2.0)
    finally:
        server.stop()
    head = server.requests[0].decode()
    assert status == 200 and head.startswith("GET /creds?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head and "Content-Length" not in head


def test_calls_to_one_origin_share_a_kept_alive_connection(requester: HttpRequester) -> None:
    server = Scripted([ok(), ok(), ok()])
    try:
        url = f"http://127.0.0.1:{server.port}/"
        assert [requester("POST", url, {}, b"{}", 2.0)[0] for _ in range(3)] == [200] * 3
    finally:
        server.stop()
    assert server.connections == 1 and len(server.requests) == 3


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_at_once(
    requester: HttpRequester,
) -> None:
    # Answers once per connection, then closes it (as an idle timeout would between two calls).
    server = Scripted([ok(), ok()], keep_reading=False)
    try:
        url = f"http://127.0.0.1:{server.port}/"
        assert requester("POST", url, {}, b"{}", 2.0)[0] == 200
        assert requester("POST", url, {}, b"{}", 2.0)[0] == 200
    finally:
        server.stop()
    assert server.connections == 2


def test_a_connection_closed_without_answer_is_an_os_error(requester: HttpRequester) -> None:
    server = Scripted([None])
    try:
        with pytest.raises(OSError):
            requester("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}", 2.0)
    finally:
        server.stop()


def test_the_timeout_bounds_the_whole_call(requester: HttpRequester) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (the kernel does), never answers
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            requester("POST", f"http://127.0.0.1:{silent.getsockname()[1]}/", {}, b"{}", 0.3)
    finally:
        silent.close()
    assert time.monotonic() - started < 1.5


def test_an_oversized_or_malformed_answer_is_a_connection_error(requester: HttpRequester) -> None:
    big = f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    server = Scripted([big + b"x" * (MAX_BODY_BYTES + 1), b"SSH-2.0-OpenSSH\r\n\r\n"],
                      keep_reading=True)
    try:
        url = f"http://127.0.0.1:{server.port}/"
        with pytest.raises(ConnectionError, match="larger than"):
            requester("POST", url, {}, b"{}", 5.0)
        with pytest.raises(ConnectionError, match="bad HTTP response"):
            requester("POST", url, {}, b"{}", 5.0)
    finally:
        server.stop()


def test_nothing_listening_is_an_os_error(requester: HttpRequester) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OSError):
        requester("POST", f"http://127.0.0.1:{port}/", {}, b"{}", 1.0)


def test_abort_ends_a_call_from_another_thread(requester: HttpRequester) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    timer = threading.Timer(0.2, requester.abort)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            requester("POST", f"http://127.0.0.1:{silent.getsockname()[1]}/", {}, b"{}", 10.0)
    finally:
        timer.cancel()
        silent.close()
    assert time.monotonic() - started < 2.0
