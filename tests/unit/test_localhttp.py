"""The minimal local HTTP client against a real server speaking each framing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from lambda_logs_http.lambda_api.client import LocalHttpError, request


@pytest.fixture
def raw_server() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """A socket server that answers each connection with the next canned reply."""
    replies: list[bytes] = []
    seen: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        while len(body) < int(line.split(b":")[1]):
                            body += conn.recv(65536)
                seen.append(head + b"\r\n\r\n" + body)
                conn.sendall(replies.pop(0))

    thread = threading.Thread(target=serve)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", replies, seen
    stop.set()
    thread.join(2)
    listener.close()


def test_content_length(raw_server: tuple[str, list[bytes], list[bytes]]) -> None:
    address, replies, seen = raw_server
    replies.append(b"HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: abc\r\n"
                   b"Content-Length: 2\r\n\r\n{}")
    response = request(address, "POST", "/x", headers={"A": "b"}, body=b'{"k":1}', timeout=5)
    assert (response.status, response.headers["lambda-extension-identifier"], response.body) == (
        200, "abc", b"{}",
    )  # fmt: skip
    assert seen[0].startswith(b"POST /x HTTP/1.1\r\n")
    assert b"Content-Length: 7" in seen[0] and seen[0].endswith(b'{"k":1}')


def test_chunked(raw_server: tuple[str, list[bytes], list[bytes]]) -> None:
    address, replies, _ = raw_server
    replies.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
    assert request(address, "GET", "/", timeout=5).body == b"abcde"


def test_body_until_close(raw_server: tuple[str, list[bytes], list[bytes]]) -> None:
    address, replies, _ = raw_server
    replies.append(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno")
    response = request(address, "GET", "/", timeout=5)
    assert (response.status, response.text()) == (403, "no")


def test_large_body_is_sent_whole(raw_server: tuple[str, list[bytes], list[bytes]]) -> None:
    address, replies, seen = raw_server
    replies.append(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    request(address, "PUT", "/big", body=b"z" * 200_000, timeout=5)
    assert seen[0].endswith(b"z" * 200_000)


@pytest.mark.parametrize(
    "reply",
    [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
)
def test_malformed_responses_raise_local_http_error(
    raw_server: tuple[str, list[bytes], list[bytes]], reply: bytes
) -> None:
    address, replies, _ = raw_server
    replies.append(reply)
    with pytest.raises(LocalHttpError):
        request(address, "GET", "/", timeout=5)


def test_refused_and_bad_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LocalHttpError):
        request(f"127.0.0.1:{port}", "GET", "/", timeout=2)
    with pytest.raises(LocalHttpError):
        request("no-port", "GET", "/")
