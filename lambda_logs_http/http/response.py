"""Reading HTTP/1.1 responses off a socket, for both of the extension's clients.

Both the client for Lambda's local APIs (``lambda_api.client``) and the transport to the
receiver use this instead of ``http.client``: that module pulls in the ``email`` package, which
costs 30-40 ms of CPU and 7 MiB of memory in every execution environment, for header parsing we
do in a few lines. Bodies come by Content-Length, chunked encoding or end of stream; ``1xx``
interim answers are skipped; every size is bounded.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Receivable(Protocol):
        def recv(self, size: int, /) -> bytes: ...

        def settimeout(self, value: float | None, /) -> None: ...


MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 65536


class MalformedResponse(ValueError):
    """What came back is not an HTTP/1.x response we can read."""


class NoResponse(ConnectionError):
    """The connection closed before the first byte of a response (a stale keep-alive one)."""


class Reader:
    """``readline``/``read`` over a socket with one buffer (``_socket`` has no ``makefile``).

    It lives as long as its connection: bytes read past one response stay for the next.
    """

    def __init__(self, sock: Receivable) -> None:
        self._sock = sock
        self._buffer = b""
        self._eof = False
        self.received = 0  # bytes read from the socket so far
        # When set (a time.monotonic() value), the whole response must have arrived by then: a
        # socket timeout alone bounds each read, and a peer trickling bytes would renew it.
        self.deadline: float | None = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the response did not arrive in time")
            self._sock.settimeout(remaining)
        chunk = self._sock.recv(_RECV_BYTES)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        self.received += len(chunk)
        return True

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet taken."""
        return len(self._buffer)

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


def read_head(reader: Reader, until_continue: bool = False) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of the next final (non-1xx) response; with
    ``until_continue``, a ``100 Continue`` is returned too (the client then sends its body)."""
    first = True
    while True:
        status_line = reader.readline(MAX_HEAD_BYTES)
        if not status_line and first:
            raise NoResponse("the connection closed before any response")
        first = False
        parts = status_line.split(None, 2)
        # status-code = 3DIGIT (RFC 9112 4); http.client refuses one under 100 too.
        if (
            len(parts) < 2
            or not parts[0].startswith(b"HTTP/")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
            or parts[1][:1] == b"0"
        ):
            raise MalformedResponse(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        size = len(status_line)
        while True:
            line = reader.readline(MAX_HEAD_BYTES)
            size += len(line)
            if size > MAX_HEAD_BYTES:
                raise MalformedResponse("response headers too large")
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise MalformedResponse("the connection closed inside the response headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if until_continue and status == 100:
            return status, headers
        if not 100 <= status < 200 or status == 101:
            # Connection options are case-insensitive (RFC 9110 7.6.1): "Keep-Alive" is common.
            connection = headers.get("connection", "").lower()
            if parts[0] == b"HTTP/1.0" and "keep-alive" not in connection:
                headers["connection"] = "close"
            return status, headers


def read_body(
    reader: Reader, status: int, headers: dict[str, str], limit: int
) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body; and whether it was read to its end with the
    connection still usable (False: the caller must close it, or, if it needs the whole body,
    treat the body as too large when ``len(body) == limit``)."""
    if status in (204, 304) or 100 <= status < 200:
        return b"", True  # no body, whatever the headers say (RFC 9112 6.3)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _read_chunked(reader, limit)
    length_header = headers.get("content-length")
    if length_header is not None:
        if not (length_header.isascii() and length_header.isdigit()):  # not '³'
            raise MalformedResponse(f"bad Content-Length {length_header[:40]!r}")
        length = int(length_header)
        body = reader.read(min(length, limit))
        if len(body) < min(length, limit):
            raise MalformedResponse("the connection closed before the end of the body")
        return body, length <= limit
    return reader.read(limit), False  # until the server closes: never reusable


def keeps_alive(headers: dict[str, str]) -> bool:
    return "close" not in headers.get("connection", "").lower()


def _read_chunked(reader: Reader, limit: int) -> tuple[bytes, bool]:
    chunks = []
    total = 0
    while True:
        size_line = reader.readline(1024)
        if not size_line:
            raise MalformedResponse("the connection closed inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise MalformedResponse(f"bad chunk size {size_line[:40]!r}") from None
        if size < 0:
            raise MalformedResponse(f"bad chunk size {size_line[:40]!r}")
        if size == 0:
            while reader.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers carry nothing we use
            return b"".join(chunks), True
        if total + size > limit:
            chunks.append(reader.read(limit - total))
            return b"".join(chunks), False
        total += size
        chunks.append(reader.read(size))
        reader.read(2)  # the CRLF after each chunk
