"""The transport's response reader against ``http.client``'s parser, on generated responses.

``lambda_logs_http.http.response`` reads answers instead of ``http.client`` (whose imports cost
the cold start), so it must read them as ``http.client`` does. Each example is one HTTP/1.x
exchange as a server could send it — interim 1xx answers, status lines with and without a
reason, header names and ``Connection`` / ``Transfer-Encoding`` values in any case, HTTP/1.0
with and without keep-alive, ``Content-Length``, chunked bodies with extensions and trailers,
close-delimited bodies, 204/304 — followed by a second response, and split into random pieces
as the network would deliver them. Both parsers read it through the same pieces; they must agree
on the status, the body, and whether the connection can carry the next request; where both say
it can, they must also read the second response alike (so the first one's end is the same).

``http.client`` skips only ``100 Continue`` by itself; RFC 9110 (15.2) has a client skip every
interim answer but ``101``, so the oracle reads the next response after any other 1xx, as
``http.client``'s own callers must.

Where ``http.client`` is itself off the RFC the generator does not go, and says so: trailing
whitespace after ``chunked`` (``http.client`` compares the raw value), a ``Keep-Alive`` header
on an HTTP/1.0 answer without the ``keep-alive`` connection option (``http.client`` alone takes
the header for the option), and repeated framing headers (it reads the first, we the last).
"""

from __future__ import annotations

import http.client
import io
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.http.response import (
    MalformedResponse,
    Reader,
    keeps_alive,
    read_body,
    read_head,
)

LIMIT = 1 << 20
"""Body limit for our reader: above every generated body, so ``whole`` means "read to its end"."""

NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext!"
"""A second response after the generated one: read only where both say the connection lives."""


# --- the two parsers over the same pieces -------------------------------------------------------


class _PieceSocket:
    """What our ``Reader`` needs of a socket, handing out ``pieces`` as successive recvs."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = [p for p in pieces if p]
        self._current = b""

    def recv(self, size: int) -> bytes:
        if not self._current and self._pieces:
            self._current = self._pieces.pop(0)
        data, self._current = self._current[:size], self._current[size:]
        return data

    def settimeout(self, value: float | None) -> None:
        pass


class _PieceRaw(io.RawIOBase):
    """The same pieces as a raw stream, for ``http.client``'s buffered file."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._socket = _PieceSocket(pieces)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._socket.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _SharedFile:
    """One buffered file for every response on the connection; ``close`` leaves it open.

    ``HTTPResponse`` closes its file once the body is read, as a real connection's socket
    outlives it; sharing one buffer keeps bytes read ahead for the next response.
    """

    def __init__(self, buffered: io.BufferedReader) -> None:
        self._buffered = buffered

    def readline(self, limit: int = -1) -> bytes:
        return self._buffered.readline(limit)

    def read(self, size: int | None = -1) -> bytes:
        return self._buffered.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._buffered.read1(size)

    def peek(self, size: int = 0) -> bytes:
        return self._buffered.peek(size)

    def readinto(self, buffer: memoryview) -> int:
        return self._buffered.readinto(buffer)

    def close(self) -> None:
        pass

    def flush(self) -> None:
        """Nothing to flush: ``HTTPResponse.close`` (also when a refused response is
        finalized) flushes its file, and a missing method printed a warning on 3.13+."""


class _FakeConnectionSocket:
    def __init__(self, pieces: list[bytes]) -> None:
        self._file = _SharedFile(io.BufferedReader(_PieceRaw(pieces), buffer_size=64))

    def makefile(self, mode: str, *args: object, **kwargs: object) -> _SharedFile:
        return self._file


@dataclass(frozen=True)
class Reading:
    status: int
    body: bytes
    reusable: bool
    next_status: int | None = None
    next_body: bytes | None = None


def read_ours(pieces: list[bytes]) -> Reading:
    reader = Reader(_PieceSocket(pieces))
    status, headers = read_head(reader)
    body, whole = read_body(reader, status, headers, LIMIT)
    reusable = whole and keeps_alive(headers)
    if not reusable:
        return Reading(status, body, reusable)
    next_status, next_headers = read_head(reader)
    next_body, _ = read_body(reader, next_status, next_headers, LIMIT)
    return Reading(status, body, reusable, next_status, next_body)


def _stdlib_final(sock: _FakeConnectionSocket) -> http.client.HTTPResponse:
    while True:
        response = http.client.HTTPResponse(sock, method="POST")  # type: ignore[arg-type]
        response.begin()  # skips 100 Continue itself
        if 100 <= response.status < 200 and response.status != 101:
            response.read()  # an interim answer has no body: on to the next
            continue
        return response


def read_stdlib(pieces: list[bytes]) -> Reading:
    sock = _FakeConnectionSocket(pieces)
    response = _stdlib_final(sock)
    body = response.read()
    reusable = not response.will_close
    if not reusable:
        return Reading(response.status, body, reusable)
    following = _stdlib_final(sock)
    return Reading(response.status, body, reusable, following.status, following.read())


# --- the corpus --------------------------------------------------------------------------------


def _any_case(word: str) -> st.SearchStrategy[str]:
    """``word`` with each letter's case chosen freely (``Keep-Alive``, ``kEEP-alive``, ...)."""
    return st.tuples(*[st.sampled_from(sorted({c.lower(), c.upper()})) for c in word]).map(
        "".join)


_OWS = st.sampled_from(["", " ", "  ", "\t", " \t"])
_LINE_END = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])  # bare LF: RFC 9112 2.2 allows it


@st.composite
def _header_line(draw: st.DrawFn, name: str, value: str, trailing_ws: bool = True) -> bytes:
    spelled = draw(_any_case(name))
    after = draw(_OWS) if trailing_ws else ""
    return f"{spelled}:{draw(_OWS)}{value}{after}".encode("latin-1") + draw(_LINE_END)


_OTHER_HEADERS = st.sampled_from([
    ("Content-Type", "application/json"),
    ("Server", "interop/1.0 (generated)"),
    ("Date", "Tue, 01 Apr 2025 12:00:00 GMT"),
    ("X-Request-Id", "abc-123"),
    ("Cache-Control", "no-cache"),
    ("Set-Cookie", "a=b; Path=/; HttpOnly"),
    ("Vary", "Accept-Encoding"),
    ("X-Empty", ""),
])


@st.composite
def _status_line(draw: st.DrawFn, version: str, status: int) -> bytes:
    reason = draw(st.sampled_from(["OK", "Whatever", "Some Reason With Spaces", "", None]))
    if reason is None:
        return f"{version} {status}".encode() + draw(_LINE_END)  # no reason and no space
    return f"{version} {status} {reason}".encode() + draw(_LINE_END)


@st.composite
def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` as chunks of random sizes, sizes in any hex case and zero-padded, extensions,
    and an optional trailer section."""
    out = []
    position = 0
    while position < len(body):
        size = draw(st.integers(1, max(1, len(body) - position)))
        digits = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(size)
        extension = draw(st.sampled_from(["", ";name=value", ";n", ' ; q="quoted;x"']))
        out.append(f"{digits}{extension}\r\n".encode() + body[position:position + size] + b"\r\n")
        position += size
    last = draw(st.sampled_from(["0", "000", "0;done"]))
    out.append(f"{last}\r\n".encode())
    trailers = draw(st.lists(st.sampled_from([b"Expires: never\r\n", b"X-Checksum: 1234\r\n"]),
                             max_size=2))
    out.extend(trailers)
    out.append(b"\r\n")
    return b"".join(out)


@dataclass(frozen=True)
class Exchange:
    wire: bytes
    pieces: list[bytes]


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    wire = b""
    for interim in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)):
        wire += draw(_status_line(version, interim))
        if interim == 103:
            wire += draw(_header_line("Link", "</style.css>; rel=preload"))
        wire += b"\r\n"
    status = draw(st.sampled_from([200, 201, 202, 204, 206, 304, 400, 404, 408, 413, 429, 500,
                                   502, 503]) | st.integers(200, 599))
    body = draw(st.binary(max_size=300))
    head = [draw(_status_line(version, status))]
    head += [draw(_header_line(n, v)) for n, v in draw(st.lists(_OTHER_HEADERS, max_size=3))]
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    if connection is not None:
        head.append(draw(_header_line("Connection", draw(_any_case(connection)))))
        if connection == "keep-alive" and draw(st.booleans()):
            head.append(draw(_header_line("Keep-Alive", "timeout=5, max=100")))
    if status in (204, 304):
        framing = "none"
        if status == 304 and draw(st.booleans()):
            # A 304 may state the length of the representation it stands for: still no body.
            head.append(draw(_header_line("Content-Length", str(len(body) + 10))))
        body = b""
    else:
        framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        head.append(draw(_header_line("Content-Length", str(len(body)))))
        payload = body
    elif framing == "chunked":
        head.append(draw(_header_line("Transfer-Encoding", draw(_any_case("chunked")),
                                      trailing_ws=False)))
        if draw(st.booleans()):
            # Both present: chunked wins and the length is ignored (RFC 9112 6.3).
            head.append(draw(_header_line("Content-Length", str(len(body) + 7))))
        payload = draw(_chunked(body))
    else:
        payload = body
    order = draw(st.permutations(range(1, len(head))))
    wire += head[0] + b"".join(head[i] for i in order) + draw(_LINE_END) + payload + NEXT
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
    return Exchange(wire, pieces)


@settings(max_examples=400, deadline=None)
@given(exchanges())
def test_reader_agrees_with_http_client(exchange: Exchange) -> None:
    ours = read_ours(list(exchange.pieces))
    theirs = read_stdlib(list(exchange.pieces))
    assert ours == theirs, exchange.wire


# --- cases worth naming, each through both parsers ---------------------------------------------


@pytest.mark.parametrize("wire, reusable", [
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.0 200 OK\r\nconnection: KEEP-ALIVE\r\ncontent-length: 2\r\n\r\nok", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n",
     True),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\n\r\nok", False),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", True),
], ids=["1.0-Keep-Alive", "1.0-KEEP-ALIVE", "1.0-default-close", "1.1-CLOSE", "chunked-any-case",
        "interim-100-and-103", "close-delimited", "304-with-length"])
def test_named_cases(wire: bytes, reusable: bool) -> None:
    ours = read_ours([wire + NEXT])
    assert ours == read_stdlib([wire + NEXT])
    assert ours.reusable is reusable


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 20 OK", b"HTTP/1.1 99 Low", b"HTTP/1.1 2000 Big"])
def test_a_status_that_is_not_three_digits_from_100_is_refused_as_http_client_does(
    status_line: bytes,
) -> None:
    """Found by the fuzz suite: ``20`` was read as a status."""
    wire = status_line + b"\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(MalformedResponse):
        read_ours([wire])
    with pytest.raises(http.client.BadStatusLine):
        read_stdlib([wire])


def test_a_content_length_of_non_ascii_digits_is_refused_not_a_crash() -> None:
    """Found by the fuzz suite: the header is Latin-1 text, and ``"³".isdigit()`` is True while
    ``int("³")`` raises."""
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: \xb3\r\n\r\nok"
    with pytest.raises(MalformedResponse):
        read_ours([wire])
