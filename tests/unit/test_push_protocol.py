"""The listener's HTTP/1.1 subset: Lambda's pushes parse, in any chunking; the rest is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.listener.parser import (
    MAX_HEAD_BYTES,
    ProtocolError,
    RequestParser,
    response,
)

# What Lambda's Telemetry API (a Go net/http client) sends.
LAMBDA_PUSH = (
    b"POST / HTTP/1.1\r\nHost: sandbox.localdomain:4243\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: 9\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
    b'[{"a":1}]'
)


def parse_all(parser: RequestParser, data: bytes) -> list[tuple[bytes, bool]]:
    parser.feed(data)
    requests = []
    while (request := parser.next_request()) is not None:
        requests.append((request.body, request.keep_alive))
    return requests


def refusal(head: bytes, max_body: int = 100) -> int:
    with pytest.raises(ProtocolError) as raised:
        parse_all(RequestParser(max_body), head)
    return raised.value.status


def test_lambda_push_parses_and_keeps_the_connection() -> None:
    parser = RequestParser(100)
    assert parse_all(parser, LAMBDA_PUSH) == [(b'[{"a":1}]', True)]
    assert parser.idle


def test_pipelined_requests_and_partial_tail() -> None:
    parser = RequestParser(100)
    two = LAMBDA_PUSH + LAMBDA_PUSH
    assert len(parse_all(parser, two + LAMBDA_PUSH[:20])) == 2
    assert not parser.idle
    assert len(parse_all(parser, LAMBDA_PUSH[20:])) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3 * len(LAMBDA_PUSH)), max_size=8))
def test_any_chunking_gives_the_same_requests(cuts: list[int]) -> None:
    stream = LAMBDA_PUSH * 3
    parser = RequestParser(100)
    seen: list[tuple[bytes, bool]] = []
    previous = 0
    for cut in [*sorted(cuts), len(stream)]:
        seen += parse_all(parser, stream[previous:cut])
        previous = max(previous, cut)
    assert seen == [(b'[{"a":1}]', True)] * 3


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n Content-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nExpect: something\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST /\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\nContent-Length: 1\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES, 431),  # never ends: still bounded
        # Heads http.server reads otherwise (tests/unit/test_request_differential.py):
        (b"POST / HTTP/1.1\r\nX\xe9Y: v\r\nContent-Length: 1\r\n\r\n", 400),  # name not a token
        (b"POST / HTTP/1.1\r\nX@Y: v\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST /a\xa0b HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400),  # whitespace to str.split()
        (b"POST /a\x0bb HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST /a\tb HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nX: a\x7fb\r\nContent-Length: 1\r\n\r\n", 400),  # a control byte
        (b"POST / HTTP/1.1\r\n" + b"X: v\r\n" * 100 + b"Content-Length: 1\r\n\r\n", 431),
    ],
)
def test_refusals(head: bytes, status: int) -> None:
    assert refusal(head) == status


def test_same_content_length_twice_is_fine_and_http10_closes() -> None:
    head = b"POST / HTTP/1.0\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n[]"
    assert parse_all(RequestParser(100), head) == [(b"[]", False)]
    closing = b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]"
    assert parse_all(RequestParser(100), closing) == [(b"[]", False)]


def test_expect_continue_is_due_until_the_body_arrives() -> None:
    parser = RequestParser(100)
    assert (
        parse_all(parser, b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        == []
    )
    assert parser.continue_due
    assert parse_all(parser, b"[]") == [(b"[]", True)]
    assert not parser.continue_due


def test_response_is_one_buffer() -> None:
    assert response(200) == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert response(413, b"too large", close=True) == (
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"
    )
