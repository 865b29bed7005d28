"""Redirects: a 307/308 to the same scheme and host is followed (body and headers kept) and
remembered; anything else is one clear failure that keeps the batch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambda_logs_http.http.auth import BearerAuth
from lambda_logs_http.http.transport import HttpTransport
from tests.support.endpoints import endpoint
from tests.unit.test_transport_wire import OK, ScriptedServer


def redirect(status: int, location: str) -> bytes:
    return (f"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            .encode())


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def target(request: bytes) -> bytes:
    return request.split(b" ", 2)[1]


@pytest.mark.parametrize("status", [307, 308])
def test_a_same_host_redirect_is_followed_with_body_and_headers_and_remembered(
    server: ScriptedServer, status: int
) -> None:
    server.replies += [redirect(status, "/in/?k=v"), OK, OK]
    transport = HttpTransport(endpoint(server.url), BearerAuth("tok"))
    assert transport.send(b'{"a":1}', {"Idempotency-Key": "b1"}, 5).ok
    first, followed = server.requests[:2]
    assert target(first) == b"/in?k=v" and target(followed) == b"/in/?k=v"
    assert followed.startswith(b"POST ") and followed.endswith(b'{"a":1}')
    assert b"Idempotency-Key: b1" in followed and b"Authorization: Bearer tok" in followed
    assert transport.send(b"{}", {}, 5).ok  # the next batch goes to the new location at once
    assert target(server.requests[2]) == b"/in/?k=v" and len(server.requests) == 3


def test_an_absolute_location_on_the_same_host_is_followed(server: ScriptedServer) -> None:
    server.replies += [redirect(308, f"http://127.0.0.1:{server.port}/v2/ingest"), OK]
    assert HttpTransport(endpoint(server.url), BearerAuth("t")).send(b"{}", {}, 5).ok
    assert target(server.requests[1]) == b"/v2/ingest"


@pytest.mark.parametrize(
    ("status", "location"),
    [
        (301, "/elsewhere"),  # would turn the POST into a GET
        (302, "/elsewhere"),
        (303, "/elsewhere"),
        (307, "http://other.example/in"),  # another host
        (307, "https://127.0.0.1/in"),  # another scheme
        (308, "http://127.0.0.1:1/in"),  # another port
    ],
)
def test_other_redirects_fail_clearly_and_keep_the_batch(
    server: ScriptedServer, status: int, location: str
) -> None:
    server.replies += [redirect(status, location + "?api_key=s3cret")]
    result = HttpTransport(endpoint(server.url), BearerAuth("t")).send(b"{}", {}, 5)
    assert (result.ok, result.status, result.kind) == (False, status, "redirect")
    assert result.retryable and result.needs_fix  # kept and retried, not dropped
    assert f"Location: {location}?api_key=***" in result.error and "s3cret" not in result.error
    assert len(server.requests) == 1  # not followed


def test_a_redirect_loop_ends_after_three_hops(server: ScriptedServer) -> None:
    server.replies += [redirect(307, f"/hop{n}") for n in range(5)]
    result = HttpTransport(endpoint(server.url), BearerAuth("t")).send(b"{}", {}, 5)
    assert (result.ok, result.kind) == (False, "redirect") and "more than 3 redirects" in result.error
    assert len(server.requests) == 4  # the request and three followed hops
