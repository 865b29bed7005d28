"""HttpTransport's own HTTP/1.1 against a scripted socket server: every framing a receiver or a
proxy in front of it may answer with, and when the connection is kept or dropped."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lambda_logs_http.http.auth import Auth, BearerAuth
from lambda_logs_http.http.transport import HttpTransport
from tests.support.accept_loop import AcceptLoopServer
from tests.support.endpoints import endpoint

CLOSE = b"<close>"
HANG = b"<hang>"  # never answer this request
LATE_408 = b"<late-408>"  # after the reply, while idle: an unasked 408, then close
TRICKLE = b"<trickle>"  # the reply one byte every 0.1 s


class ScriptedServer(AcceptLoopServer):
    """Answers each request with the next reply, on kept-alive connections; a reply ending in
    CLOSE closes the connection after it. Records requests and counts connections."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.requests: list[bytes] = []
        self.late_408_sent = threading.Event()
        super().__init__(connection_timeout=2)
        self.url = f"http://127.0.0.1:{self.port}/in?k=v"

    def serve(self, conn: socket.socket) -> None:
        data = b""
        while not self._stop.is_set():
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(data) < length:
                data += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + data[:length])
            data = data[length:]
            reply = self.replies.pop(0)
            if reply == HANG:
                self._stop.wait()
                return
            if reply.endswith(TRICKLE):
                for byte in reply.removesuffix(TRICKLE):
                    conn.sendall(bytes([byte]))
                    if self._stop.wait(0.1):
                        return
                continue
            if reply.endswith(LATE_408):
                conn.sendall(reply.removesuffix(LATE_408))
                self._stop.wait(0.2)
                conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
                conn.shutdown(socket.SHUT_WR)
                self.late_408_sent.set()
                return
            conn.sendall(reply.removesuffix(CLOSE))
            if reply.endswith(CLOSE):
                return


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def test_request_bytes_on_the_wire(server: ScriptedServer) -> None:
    server.replies.append(OK)
    result = HttpTransport(endpoint(server.url), BearerAuth("tok")).send(b'{"a":1}', {"X-Id": "b1"}, 5)
    assert result.ok
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /in?k=v HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.url.split(':')[2].split('/')[0]}".encode() in lines
    assert {
        b"Content-Type: application/json",
        b"Authorization: Bearer tok",
        b"X-Id: b1",
        b"Content-Length: 7",
    } <= set(lines)
    assert body == b'{"a":1}'


def test_keep_alive_across_framings(server: ScriptedServer) -> None:
    server.replies += [
        OK,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        OK,
    ]
    transport = HttpTransport(endpoint(server.url), Auth())
    assert [transport.send(b"{}", {}, 5).status for _ in range(5)] == [200, 204, 202, 200, 200]
    assert server.connections == 1


@pytest.mark.parametrize("option", [b"keep-alive", b"Keep-Alive", b"KEEP-ALIVE"])
def test_http_1_0_keep_alive_in_any_case_keeps_the_connection(
    server: ScriptedServer, option: bytes
) -> None:
    """Connection options are case-insensitive: an HTTP/1.0 answer saying ``Keep-Alive`` keeps
    the connection (was: a reconnect, and a TLS handshake, per batch)."""
    reply = b"HTTP/1.0 200 OK\r\nConnection: " + option + b"\r\nContent-Length: 0\r\n\r\n"
    server.replies += [reply, reply]
    transport = HttpTransport(endpoint(server.url), Auth())
    assert [transport.send(b"{}", {}, 5).ok for _ in range(2)] == [True, True]
    assert server.connections == 1


@pytest.mark.parametrize(
    "closing_reply",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" + CLOSE,
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n" + CLOSE,
        b"HTTP/1.1 200 OK\r\n\r\nuntil close" + CLOSE,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000,  # not drained
        b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nbusy",  # errors: reconnect
    ],
)
def test_connection_is_dropped_when_it_cannot_be_reused(
    server: ScriptedServer, closing_reply: bytes
) -> None:
    server.replies += [closing_reply, OK]
    transport = HttpTransport(endpoint(server.url), Auth())
    transport.send(b"{}", {}, 5)
    assert transport._connection is None
    assert transport.send(b"{}", {}, 5).ok
    assert server.connections == 2


def test_error_body_is_bounded_and_retry_after_read(server: ScriptedServer) -> None:
    server.replies.append(
        b"HTTP/1.1 429 Slow Down\r\nRetry-After: 3\r\nContent-Length: 9000\r\n\r\n" + b"e" * 9000
    )
    result = HttpTransport(endpoint(server.url), Auth()).send(b"{}", {}, 5)
    assert (result.status, result.retryable, result.retry_after) == (429, True, "3")
    assert len(result.error) < 400


@pytest.mark.parametrize(
    "garbage",
    [
        b"SMTP ready\r\n\r\n" + CLOSE,
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n" + CLOSE,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + CLOSE,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort" + CLOSE,
    ],
)
def test_malformed_answers_are_retryable_errors(server: ScriptedServer, garbage: bytes) -> None:
    server.replies.append(garbage)
    result = HttpTransport(endpoint(server.url), Auth()).send(b"{}", {}, 5)
    assert (result.ok, result.retryable) == (False, True)
    assert "bad HTTP response" in result.error


def test_header_injection_is_refused_before_sending(server: ScriptedServer) -> None:
    transport = HttpTransport(endpoint(server.url), Auth())
    result = transport.send(b"{}", {"X-Id": "a\r\nX-Evil: 1"}, 5)
    assert (result.ok, result.retryable, result.needs_fix) == (False, False, True)
    result = transport.send(b"{}", {"X-Id": "caf\u00e9\u2603"}, 5)
    assert (result.ok, result.needs_fix) == (False, True) and "\u2603" not in result.error
    assert server.requests == []


def test_large_body_goes_out_whole(server: ScriptedServer) -> None:
    server.replies.append(OK)
    body = b"[" + b"1," * 600_000 + b"1]"
    assert HttpTransport(endpoint(server.url), Auth()).send(body, {}, 5).ok
    assert server.requests[0].endswith(body)


def test_no_body_statuses_never_wait_for_one(server: ScriptedServer) -> None:
    """204 and 304 have no body whatever their headers say; reading "until close" would wait
    out the timeout on a kept-alive connection and resend a delivered batch."""
    server.replies += [b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n", OK]
    transport = HttpTransport(endpoint(server.url), Auth())
    started = time.monotonic()
    assert [transport.send(b"{}", {}, 5).status for _ in range(3)] == [204, 204, 200]
    assert time.monotonic() - started < 1.0
    assert server.connections == 1 and len(server.requests) == 3


def test_abort_ends_the_send_without_sending_again(server: ScriptedServer) -> None:
    """abort() (the shutdown deadline) must not look like a stale connection to reconnect."""
    server.replies += [OK, HANG]
    transport = HttpTransport(endpoint(server.url), Auth())
    assert transport.send(b"{}", {}, 5).ok  # the hung send below reuses this connection
    threading.Timer(0.3, transport.abort).start()
    started = time.monotonic()
    result = transport.send(b"{}", {}, 5)
    assert time.monotonic() - started < 2.0
    assert (result.ok, result.retryable) == (False, True) and "aborted" in result.error
    assert len(server.requests) == 2 and server.connections == 1


def test_an_unasked_408_on_an_idle_connection_is_not_taken_for_the_answer(
    server: ScriptedServer,
) -> None:
    server.replies += [OK + LATE_408, OK]
    transport = HttpTransport(endpoint(server.url), Auth())
    assert transport.send(b"{}", {}, 5).ok
    assert server.late_408_sent.wait(5)  # the server has sent its 408 and closed meanwhile
    result = transport.send(b"{}", {}, 5)
    assert (result.ok, result.status) == (True, 200)
    assert server.connections == 2


def test_a_trickling_answer_cannot_outlast_the_timeout(server: ScriptedServer) -> None:
    server.replies.append(OK + TRICKLE)  # ~4 s in all, each byte well within the timeout
    started = time.monotonic()
    result = HttpTransport(endpoint(server.url), Auth()).send(b"{}", {}, 1.0)
    assert time.monotonic() - started < 1.5
    assert (result.ok, result.retryable) == (False, True) and "timed out" in result.error


def test_an_unasked_answer_after_the_answer_is_never_taken_for_the_next_one(
    server: ScriptedServer,
) -> None:
    """A receiver that answers twice (in one write): the second answer is nothing we asked
    for; were the connection reused, it would be taken for the next request's answer."""
    unavailable = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    server.replies += [OK + OK, unavailable]
    transport = HttpTransport(endpoint(server.url), Auth())
    assert transport.send(b"{}", {}, 5).ok
    second = transport.send(b"{}", {}, 5)
    assert (second.ok, second.status) == (False, 503)  # the real answer, not the stale 200
    assert server.connections == 2
