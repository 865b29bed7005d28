"""A minimal HTTP/1.1 client for Lambda's local APIs (Extensions and Telemetry).

Why not ``http.client`` (or even ``socket``): importing them costs milliseconds to tens of
milliseconds (``http.client`` pulls in ``email``; ``socket`` pulls in ``enum`` and ``selectors``),
and the register call is on the cold-start path of every function using the layer — Lambda
starts the runtime only after every extension registered. These APIs live on the sandbox's
loopback and answer small bodies, so the C-level ``_socket`` and a small reader suffice: one
request per connection (``Connection: close``); bodies by Content-Length, chunked encoding or
end of stream. Host names are passed as bytes, which also spares the ``idna`` codec import.
"""

from __future__ import annotations

import _socket

from ..http.response import Reader, read_body, read_head

_MAX_BODY_BYTES = 16 * 1024 * 1024


class LocalHttpError(OSError):
    """The local API could not be reached or answered something that is not HTTP."""


class Response:
    """Status, lower-cased headers and the raw body of one response."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(
    address: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float | None = None,
) -> Response:
    """Send one request to ``address`` (``host:port``) and return the whole response.

    ``timeout`` of None waits forever, which is what ``/event/next`` needs: it blocks until the
    next invocation, and the environment may be frozen for hours in between.
    """
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()):
        raise LocalHttpError(f"bad address {address!r}, expected host:port")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        sock = connect(host.strip("[]"), int(port), timeout)
        try:
            sock.sendall(head + body)
            reader = Reader(sock)
            status, response_headers = read_head(reader)
            response_body, whole = read_body(reader, status, response_headers, _MAX_BODY_BYTES)
            if not whole and len(response_body) >= _MAX_BODY_BYTES:
                raise LocalHttpError(f"{method} {path}: response body too large")
            return Response(status, response_headers, response_body)
        finally:
            sock.close()
    except LocalHttpError:
        raise
    except ValueError as exc:  # a malformed length or chunk size
        raise LocalHttpError(f"{method} {path}: malformed response ({exc})") from exc
    except OSError as exc:
        if isinstance(exc, (TimeoutError, _socket.timeout)):
            raise LocalHttpError(f"{method} {path}: timed out") from exc
        raise LocalHttpError(f"{method} {path}: {exc}") from exc


def connect(host: str, port: int, timeout: float | None) -> _socket.socket:
    """A connected TCP socket to ``host:port`` (any address family), as ``_socket`` gives it."""
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(
        host.encode(), port, 0, _socket.SOCK_STREAM
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or LocalHttpError(f"no address for {host}")
