"""A minimal HTTP/1.1 client for Lambda's local APIs (Extensions and Telemetry).

Why not ``http.client``: importing it (it pulls in ``email``) costs tens of milliseconds, and the
register call is on the cold-start path of every function using the layer — Lambda starts the
runtime only after every extension registered. These APIs live on the sandbox's loopback, answer
small bodies, and are spoken to by this one module, so a hundred lines over a socket suffice:
one request per connection (``Connection: close``), bodies by Content-Length, chunked encoding or
end of stream.
"""

from __future__ import annotations

import socket

_MAX_HEADER_BYTES = 64 * 1024
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
    if not host or not port.isdigit():
        raise LocalHttpError(f"bad address {address!r}, expected host:port")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                sock.sendall(body)
            return _read_response(sock.makefile("rb"))
    except socket.timeout as exc:
        raise LocalHttpError(f"{method} {path}: timed out") from exc
    except ValueError as exc:  # a malformed length or chunk size
        raise LocalHttpError(f"{method} {path}: malformed response ({exc})") from exc
    except OSError as exc:
        if isinstance(exc, LocalHttpError):
            raise
        raise LocalHttpError(f"{method} {path}: {exc}") from exc


def _read_response(stream: object) -> Response:
    readline = stream.readline  # type: ignore[attr-defined]
    read = stream.read  # type: ignore[attr-defined]
    status_line = readline(_MAX_HEADER_BYTES)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise LocalHttpError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    size = len(status_line)
    while True:
        line = readline(_MAX_HEADER_BYTES)
        size += len(line)
        if size > _MAX_HEADER_BYTES:
            raise LocalHttpError("response headers too large")
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(readline, read)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > _MAX_BODY_BYTES:
            raise LocalHttpError("response body too large")
        body = read(length)
        if len(body) != length:
            raise LocalHttpError("connection closed before the end of the response body")
    else:
        body = read(_MAX_BODY_BYTES)
    return Response(status, headers, body)


def _read_chunked(readline: object, read: object) -> bytes:
    chunks = []
    total = 0
    while True:
        size_line = readline(1024)  # type: ignore[operator]
        if not size_line:
            raise LocalHttpError("connection closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while readline(1024) not in (b"\r\n", b"\n", b""):  # type: ignore[operator]
                pass  # trailers carry nothing we use
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY_BYTES:
            raise LocalHttpError("response body too large")
        chunks.append(read(size))  # type: ignore[operator]
        read(2)  # type: ignore[operator]  # the CRLF after each chunk
