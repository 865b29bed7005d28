"""The listener's request parser against ``http.server``'s, on generated requests.

The Telemetry listener parses Lambda's pushes itself (``lambda_logs_http.listener.parser``)
instead of using ``http.server``, whose imports cost the cold start. By design it accepts less:
``POST`` with a ``Content-Length`` body over HTTP/1.0 or 1.1, nothing else. What it does accept
``http.server`` must accept too, with the same body and the same verdict on keeping the
connection. Each example is a connection's bytes — one to three requests, with methods, targets,
versions, header names in any case, optional whitespace, bare LF line ends, ``Content-Length``
well and badly formed, repeated or missing, ``Transfer-Encoding``, ``Connection``, ``Expect``,
invalid header names and control bytes — fed to the listener in random pieces as they would
arrive, and to a ``BaseHTTPRequestHandler`` (HTTP/1.1, reading ``Content-Length`` bytes as a
handler does) as a stream.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.listener.parser import ProtocolError, RequestParser

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Accepted:
    body: bytes
    keep_alive: bool


def listener_accepts(pieces: list[bytes]) -> list[Accepted]:
    """The requests the listener serves on a connection delivering ``pieces``; it stops at the
    first refusal and after a request that closes the connection, as the listener's loop does."""
    parser = RequestParser(MAX_BODY)
    accepted: list[Accepted] = []
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                request = parser.next_request()
            except ProtocolError:
                return accepted
            if request is None:
                break
            accepted.append(Accepted(request.body, request.keep_alive))
            if not request.keep_alive:
                return accepted
    return accepted


class _Handler(BaseHTTPRequestHandler):
    """``http.server``'s parsing over a byte stream: ``handle()`` without a socket."""

    protocol_version = "HTTP/1.1"  # keep-alive possible, as a server that wants it sets

    def __init__(self, stream: bytes) -> None:  # no super(): it would want a socket and serve
        self.rfile = io.BufferedReader(io.BytesIO(stream))  # type: ignore[assignment]
        self.wfile = io.BytesIO()  # type: ignore[assignment]
        self.client_address = ("127.0.0.1", 0)
        self.accepted: list[Accepted] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        self.accepted.append(Accepted(self.rfile.read(length), not self.close_connection))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def http_server_accepts(stream: bytes) -> list[Accepted]:
    handler = _Handler(stream)
    try:
        handler.handle()
    except (ValueError, OverflowError):
        pass  # a Content-Length the listener refuses anyway ("+2", "0x2", 30 digits)
    return handler.accepted


# --- the corpus --------------------------------------------------------------------------------


def _any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*[st.sampled_from(sorted({c.lower(), c.upper()})) for c in word]).map(
        "".join)


_OWS = st.sampled_from(["", " ", "  ", "\t"])
CRLF = b"\r\n"


@st.composite
def _header(draw: st.DrawFn, name: str, value: bytes, trailing_ows: bool = True) -> bytes:
    after = draw(_OWS).encode() if trailing_ows else b""
    return draw(_any_case(name)).encode() + b":" + draw(_OWS).encode() + value + after + CRLF


_ODD_BYTES = st.sampled_from([b"\x7f", b"\x0b", b"\x0c", b"\x1c", b"\x85", b"\xa0", b"\xe9",
                              b"\x00", b"\t", b"@", b"(", b" ", b"\r", b"\n"])
"""Bytes a head should not carry, or carry only in some places: controls, obs-text, separators."""

_PLAIN_HEADERS = st.sampled_from([
    ("Host", b"sandbox.localdomain:4243"),
    ("Content-Type", b"application/json"),
    ("User-Agent", b"Go-http-client/1.1"),
    ("Accept-Encoding", b"gzip"),
    ("X-Empty", b""),
])

DEVIATIONS = [
    "method", "target", "version", "separator", "bare-lf", "length-missing", "length-twice",
    "length-conflict", "length-signed", "length-spaced", "length-hex", "length-huge", "expect",
    "transfer-encoding", "odd-name", "odd-value", "fold", "no-colon", "empty-name", "too-many",
]
"""One of these, or none, per request: a request wrong in one way at a time shows which way."""


@st.composite
def _request(draw: st.DrawFn) -> bytes:
    """A push as Lambda would send it (header names in any case, optional whitespace, any
    order), or one deviation from it."""
    deviation = draw(st.sampled_from(["none"] * len(DEVIATIONS) + DEVIATIONS))
    body = draw(st.binary(max_size=64))
    method, target, version, separator = b"POST", b"/", b"HTTP/1.1", b" "
    if deviation == "method":
        method = draw(st.sampled_from([b"GET", b"PUT", b"post", b"HEAD"]))
    elif deviation == "target":
        target = b"/a" + draw(_ODD_BYTES.filter(lambda b: b not in b"\r\n")) + b"b"
    elif deviation == "version":
        version = draw(st.sampled_from([b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1",
                                        b"HTTP/1.0"]))
    elif deviation == "separator":
        separator = draw(st.sampled_from([b"  ", b"\t"]))
    else:
        target = draw(st.sampled_from([b"/", b"/ingest?x=1", b"*", b"//double"]))
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    lines = [method + separator + target + b" " + version + CRLF]
    lines += [draw(_header(n, v)) for n, v in draw(st.lists(_PLAIN_HEADERS, max_size=3))]
    value = b"%d" % len(body)
    if deviation.startswith("length-"):
        value = {"length-signed": b"+" + value, "length-spaced": value + b" 0",
                 "length-hex": b"0x%x" % len(body), "length-huge": b"9" * 30,
                 "length-conflict": value}.get(deviation, value)
    if deviation != "length-missing":
        lines.append(draw(_header("Content-Length", value)))
    if deviation in ("length-twice", "length-conflict"):
        again = len(body) + (1 if deviation == "length-conflict" else 0)
        lines.append(draw(_header("Content-Length", b"%d" % again)))
    connection = draw(st.sampled_from([None, None, "close", "keep-alive"]))
    if connection:
        # No whitespace after it: http.server compares the value with it left on.
        lines.append(draw(_header("Connection", draw(_any_case(connection)).encode(),
                                  trailing_ows=False)))
    odd = draw(_ODD_BYTES)
    extra = {
        "expect": lambda: draw(_header("Expect", draw(st.sampled_from(
            [b"100-continue", b"100-Continue", b"something-else"])))),
        "transfer-encoding": lambda: draw(_header("Transfer-Encoding", b"chunked")),
        "odd-name": lambda: b"X" + odd + b"Y: v" + CRLF,
        "odd-value": lambda: b"X-Value: a" + odd + b"Content-Length: 3" + CRLF,
        "fold": lambda: b"X-Fold: a" + CRLF + draw(st.sampled_from([b" ", b"\t"])) + b"b" + CRLF,
        "no-colon": lambda: b"Not a header line" + CRLF,
        "empty-name": lambda: b": no name" + CRLF,
        "too-many": lambda: b"".join(b"X-%d: v" % i + CRLF for i in range(100)),
    }.get(deviation)
    if extra is not None:
        lines.append(extra())
    first, rest = lines[0], lines[1:]
    order = draw(st.permutations(range(len(rest))))
    head = first + b"".join(rest[i] for i in order) + CRLF
    if deviation == "bare-lf":
        ends = [i for i in range(len(head) - 1) if head[i:i + 2] == CRLF]
        cut = draw(st.sampled_from(ends))
        head = head[:cut] + head[cut + 1:]  # one CRLF becomes a bare LF
    return head + body


@dataclass(frozen=True)
class Connection:
    stream: bytes
    pieces: list[bytes]


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    stream = b"".join(draw(st.lists(_request(), min_size=1, max_size=3)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    return Connection(stream, pieces)


@settings(max_examples=300, deadline=None)
@given(connections())
def test_what_the_listener_accepts_http_server_accepts_alike(connection: Connection) -> None:
    ours = listener_accepts(connection.pieces)
    theirs = http_server_accepts(connection.stream)
    assert ours == theirs[: len(ours)], connection.stream


# --- cases worth naming ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [
    b"POST / HTTP/1.1\r\nX\xe9Y: v\r\nContent-Length: 2\r\n\r\n[]",
    b"POST /a\xa0b HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]",
    b"POST /a\x0bb HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]",
    b"POST / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101))
    + b"Content-Length: 2\r\n\r\n[]",
], ids=["non-ascii-name", "nbsp-in-target", "vt-in-target", "101-headers"])
def test_heads_http_server_reads_otherwise_are_refused(stream: bytes) -> None:
    """Heads ``http.server`` reads otherwise (a header and all after it lost, a request line
    split, too many fields) are refused by the listener rather than read another way."""
    assert http_server_accepts(stream)[:1] != [Accepted(b"[]", True)]
    assert listener_accepts([stream]) == []


def test_lambda_push_is_read_alike() -> None:
    push = (b"POST / HTTP/1.1\r\nHost: sandbox.localdomain:4243\r\nUser-Agent: Go-http-client/1.1"
            b"\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
            b"Accept-Encoding: gzip\r\n\r\n[]")
    assert listener_accepts([push, push]) == http_server_accepts(push + push) == [
        Accepted(b"[]", True), Accepted(b"[]", True)]
