"""The part of HTTP/1.1 the Telemetry listener speaks: Lambda's pushes, and nothing else.

Lambda pushes with ``POST``, a ``Content-Length`` body and keep-alive connections. That is all
this parser accepts; everything else gets a definite 4xx and the connection is closed. It exists
instead of ``http.server`` because the listener must answer before the extension subscribes, and
that is on every cold start: ``http.server`` pulls in ``http.client`` and the ``email`` package,
30-80 ms of imports on a Lambda-sized CPU, where this module imports nothing.

The parser is incremental (``feed`` whatever bytes arrive, then take complete requests), so one
thread can serve every connection without ever blocking on a slow or stalled sender.
"""

from __future__ import annotations

# The request line and headers Lambda sends are a few hundred bytes; more is not Lambda.
MAX_HEAD_BYTES = 16 * 1024
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# http.client's limit on header fields, which http.server applies too.
MAX_HEADERS = 100
# What a request head may hold: visible ASCII, SP, HTAB and the CRLFs between its lines (RFC 9110
# 5.5 makes other controls invalid). Lambda sends nothing else, and http.server splits a request
# line at any whitespace str.split() knows (VT, FF, FS..US, NEL, NBSP as latin-1): refusing them
# keeps what this parser accepts read the same way there.
_HEAD_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r\n"
# A header name is a token (RFC 9110 5.1, 5.6.2).
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class ProtocolError(Exception):
    """A request we will not serve: answer ``status`` and close the connection."""

    def __init__(self, status: int, detail: bytes) -> None:
        super().__init__(detail.decode("ascii", "replace"))
        self.status = status
        self.detail = detail


class Request:
    """One complete push: its body, and whether the connection stays open after the answer."""

    __slots__ = ("body", "keep_alive")

    def __init__(self, body: bytes, keep_alive: bool) -> None:
        self.body = body
        self.keep_alive = keep_alive


def response(status: int, body: bytes = b"", close: bool = False) -> bytes:
    """The whole response in one buffer, so it leaves in one segment."""
    reason = _REASONS.get(status, b"")
    connection = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        reason,
        len(body),
        connection,
        body,
    )


class RequestParser:
    """Turns one connection's bytes into requests; raises ProtocolError on anything else."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body = max_body_bytes
        self._buffer = bytearray()
        # Set once a head is parsed and until its body is complete.
        self._body_length = -1
        self._keep_alive = True
        self.continue_due = False  # the sender waits for "100 Continue" before sending the body

    @property
    def buffered(self) -> int:
        """Bytes held for a request not yet complete (what a peer makes us keep)."""
        return len(self._buffer)

    @property
    def idle(self) -> bool:
        """No partial request is held (a connection may then be closed without losing one)."""
        return not self._buffer and self._body_length < 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive."""
        if self._body_length < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(431, b"request head too large")
                if b"\n\n" in self._buffer:
                    raise ProtocolError(400, b"lines must end with CRLF")
                return None
            if end > MAX_HEAD_BYTES:
                raise ProtocolError(431, b"request head too large")
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            self._body_length, self._keep_alive, expects_continue = self._parse_head(head)
            self.continue_due = expects_continue and len(self._buffer) < self._body_length
        length = self._body_length
        if len(self._buffer) < length:
            return None
        with memoryview(self._buffer) as view:  # one copy of the body, not two
            body = bytes(view[:length])
        del self._buffer[:length]
        self._body_length = -1
        self.continue_due = False
        return Request(body, self._keep_alive)

    def _parse_head(self, head: bytes) -> tuple[int, bool, bool]:
        """Content length, keep-alive, expects 100-continue; or ProtocolError."""
        if head.translate(None, _HEAD_BYTES):
            raise ProtocolError(400, b"control or non-ASCII byte in the request head")
        lines = head.split(b"\r\n")
        for line in lines:
            if b"\r" in line or b"\n" in line:
                raise ProtocolError(400, b"bare CR or LF in the request head")
        if len(lines) > MAX_HEADERS + 1:
            raise ProtocolError(431, b"too many header fields")
        request_line = lines[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/") or b"\t" in request_line:
            raise ProtocolError(400, b"bad request line")
        method, _target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError(505, b"HTTP/1.x only")
        if method != b"POST":
            raise ProtocolError(405, b"POST only")
        length = -1
        keep_alive = version == b"HTTP/1.1"
        expects_continue = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name.translate(None, _TOKEN_BYTES):
                raise ProtocolError(400, b"bad header line")
            name = name.lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit():
                    raise ProtocolError(400, b"bad Content-Length")
                if len(value) > 18:  # beyond any limit, and int() of a huge string is slow
                    raise ProtocolError(413, b"too large")
                if length >= 0 and int(value) != length:
                    raise ProtocolError(400, b"conflicting Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                raise ProtocolError(411, b"Content-Length required")
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif name == b"expect":
                if value.lower() != b"100-continue":
                    raise ProtocolError(400, b"unsupported Expect")
                expects_continue = True
        if length < 0:
            raise ProtocolError(411, b"Content-Length required")
        if length > self._max_body:
            raise ProtocolError(413, b"too large")
        return length, keep_alive, expects_continue
