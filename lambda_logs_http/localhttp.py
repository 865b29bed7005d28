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

_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
_RECV_BYTES = 65536


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
        sock = connect(host.strip("[]"), int(port), timeout)
        try:
            sock.sendall(head + body)
            return _read_response(_Reader(sock))
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


class _Reader:
    """``readline``/``read`` over a socket, with one buffer (``_socket`` has no ``makefile``)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._sock.recv(_RECV_BYTES)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def readline(self, limit: int) -> bytes:
        while b"\n" not in self._buffer and len(self._buffer) < limit and self._fill():
            pass
        end = self._buffer.find(b"\n")
        end = len(self._buffer) if end < 0 else end + 1
        end = min(end, limit)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _read_response(reader: _Reader) -> Response:
    status_line = reader.readline(_MAX_HEADER_BYTES)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise LocalHttpError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    size = len(status_line)
    while True:
        line = reader.readline(_MAX_HEADER_BYTES)
        size += len(line)
        if size > _MAX_HEADER_BYTES:
            raise LocalHttpError("response headers too large")
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > _MAX_BODY_BYTES:
            raise LocalHttpError("response body too large")
        body = reader.read(length)
        if len(body) != length:
            raise LocalHttpError("connection closed before the end of the response body")
    else:
        body = reader.read(_MAX_BODY_BYTES)
    return Response(status, headers, body)


def _read_chunked(reader: _Reader) -> bytes:
    chunks = []
    total = 0
    while True:
        size_line = reader.readline(1024)
        if not size_line:
            raise LocalHttpError("connection closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers carry nothing we use
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY_BYTES:
            raise LocalHttpError("response body too large")
        chunks.append(reader.read(size))
        reader.read(2)  # the CRLF after each chunk
