"""HttpTransport against a real receiver process."""

from __future__ import annotations

import json
import socket

from lambda_logs_http.http.auth import Auth, BearerAuth
from lambda_logs_http.http.connection import Connector
from lambda_logs_http.http.transport import HttpTransport
from tests.support.endpoints import endpoint
from tools.lambda_sandbox.receiver import Receiver

BODY = b'{"logs":[],"source":"aws-lambda-extension","timestamp":"t"}'


def test_delivers_and_reuses_the_connection(receiver: Receiver) -> None:
    transport = HttpTransport(endpoint(receiver.url), BearerAuth("tok"))
    for _ in range(3):
        result = transport.send(BODY, {"Idempotency-Key": "b-1"}, timeout=5)
        assert (result.ok, result.status) == (True, 200)
    first_connection = transport._connection
    assert first_connection is not None and first_connection.sock is not None
    requests = receiver.requests()
    assert len(requests) == 3
    headers = requests[0]["headers"]
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "b-1"
    assert headers["User-Agent"].startswith("lambda-logs-http/")
    assert json.loads(requests[0]["body"])["source"] == "aws-lambda-extension"
    transport.close()
    transport.close()


def test_classifies_statuses(receiver: Receiver) -> None:
    transport = HttpTransport(endpoint(receiver.url), Auth())
    receiver.script([{"status": 503}, {"status": 429, "retry_after": "7"}, {"status": 401},
                     {"status": 413}, {"status": 408}])
    results = [transport.send(BODY, {}, timeout=5) for _ in range(5)]
    assert [(r.status, r.retryable) for r in results] == [
        (503, True), (429, True), (401, False), (413, False), (408, True),
    ]  # fmt: skip
    assert results[1].retry_after == "7"
    assert "HTTP 401" in results[2].error
    assert transport.send(BODY, {}, timeout=5).ok  # recovers after errors


def test_timeout_is_retryable(receiver: Receiver) -> None:
    receiver.script([{"delay": 2}])
    result = HttpTransport(endpoint(receiver.url), Auth()).send(BODY, {}, timeout=0.3)
    assert (result.ok, result.retryable) == (False, True)
    assert "timed out" in result.error


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = HttpTransport(endpoint(f"http://127.0.0.1:{port}/"), Auth()).send(BODY, {}, timeout=2)
    assert (result.ok, result.retryable) == (False, True)
    assert "connection failed" in result.error


def test_reset_on_a_reused_connection_is_retried_then_reported(receiver: Receiver) -> None:
    transport = HttpTransport(endpoint(receiver.url), Auth())
    assert transport.send(BODY, {}, timeout=5).ok
    receiver.script([{"reset": True}])
    assert transport.send(BODY, {}, timeout=5).ok  # one reset: reconnected transparently
    # A reset on the fresh connection too, after the whole request was written: asked first
    # (Expect: 100-continue), in case the receiver answered early and the reset lost it.
    receiver.script([{"reset": True, "times": 2}])
    assert transport.send(BODY, {}, timeout=5).ok
    # That connection is not kept (an asked-first request closes it): the next send starts
    # fresh, so two resets are all it takes to fail.
    receiver.script([{"reset": True, "times": 2}])
    failed = transport.send(BODY, {}, timeout=5)
    assert (failed.ok, failed.retryable) == (False, True)
    assert "closed by the receiver" in failed.error
    assert transport.send(BODY, {}, timeout=5).ok
    asked = [r for r in receiver.requests() if r["headers"].get("Expect") == "100-continue"]
    assert len(receiver.requests()) == 4 and len(asked) == 1


def test_the_endpoint_is_shown_without_query_values() -> None:
    assert endpoint("https://x/p?api_key=s3cret&a=1&flag").display == "https://x/p?api_key=***&a=***&flag"
    assert endpoint("https://x/p").display == "https://x/p"


def test_a_stale_keep_alive_connection_is_replaced_at_once(receiver: Receiver) -> None:
    transport = HttpTransport(endpoint(receiver.url), Auth())
    assert transport.send(BODY, {}, timeout=5).ok
    connection = transport._connection
    assert connection is not None and connection.sock is not None
    # What a receiver's idle timeout does while the environment is frozen: close its end.
    receiver.stop()
    restarted = Receiver(receiver.record.parent)
    try:
        # The new process listens elsewhere: point the transport's connector there.
        transport._connector = Connector(endpoint(restarted.url), None)
        # The old socket still points at the dead receiver: the first attempt finds it closed.
        result = transport.send(BODY, {}, timeout=5)
        assert result.ok, result.error
        assert len(restarted.requests()) == 1
    finally:
        restarted.stop()
