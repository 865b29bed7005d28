"""Telemetry API: subscription validation, buffering, event order, retries and drops."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.sandbox_helpers import wait_until, write_function
from tools.lambda_sandbox import DeliveryPolicy, FunctionSpec

pytestmark = pytest.mark.timeout(30)

TELEMETRY = "/2022-07-01/telemetry"
GOOD = {"schemaVersion": "2022-12-13", "types": ["platform"],
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/"}}


def _variant(**changes):
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


INVALID = [
    _variant(schemaVersion="2021-01-01"),
    _variant(types=["platform", "bogus"]),
    _variant(types=[]),
    _variant(buffering={"maxItems": 999}),
    _variant(buffering={"maxBytes": 2_000_000}),
    _variant(buffering={"timeoutMs": 10}),
    _variant(destination={"protocol": "HTTP", "URI": "http://localhost:4243/"}),
    _variant(destination={"protocol": "HTTP", "URI": "http://sandbox.localdomain:9001/"}),
    _variant(destination=None),
]


def test_subscription_validation(layer, sandbox_factory):
    calls = [{"method": "PUT", "path": TELEMETRY, "body": body} for body in INVALID]
    calls.append({"method": "PUT", "path": TELEMETRY, "body": GOOD})
    layer.add("validator", subscribe=None, init_calls=calls,
              invoke_calls=[{"method": "PUT", "path": TELEMETRY, "body": GOOD}])
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    assert sb.invoke().status == "success"

    results = layer.records("validator", "call")
    for result in results[:len(INVALID)]:
        assert result["status"] == 400, result
        assert result["body"]["errorType"] == "ValidationError"
        assert result["body"]["errorMessage"]
    accepted, after_init = results[len(INVALID)], results[len(INVALID) + 1]
    assert (accepted["status"], accepted["body"]) == (200, "OK")
    assert after_init["status"] == 403
    assert after_init["body"]["errorType"] == "Telemetry.SubscriptionClosed"
    [subscription] = sb.telemetry_subscriptions
    assert subscription.buffering == {"maxItems": 10000, "maxBytes": 262144, "timeoutMs": 1000}


def test_not_supported_mode_answers_202_and_delivers_nothing(layer, sandbox_factory):
    layer.add("hopeful")
    sb = sandbox_factory(layer.root, telemetry="not-supported")
    assert sb.start().ok
    assert sb.invoke().status == "success"
    sb.shutdown()
    [subscribe] = layer.records("hopeful", "subscribe")
    assert subscribe["status"] == 202
    assert subscribe["body"] == {"errorMessage": "Telemetry API is not supported",
                                 "errorType": "Telemetry.NotSupported"}
    assert layer.records("hopeful", "telemetry") == []
    assert sb.telemetry_subscriptions == []


def test_max_items_bounds_every_push(layer, sandbox_factory):
    # A long timeoutMs: only maxItems (and the shutdown flush) trigger pushes.
    layer.add("counter", subscribe={"types": ["function"],
                                    "buffering": {"maxItems": 1000, "maxBytes": 1048576,
                                                  "timeoutMs": 30000}})
    sb = sandbox_factory(layer.root)
    assert sb.invoke({"lines": 2500}).status == "success"
    sb.shutdown()
    sizes = [len(push["batch"]) for push in layer.records("counter", "telemetry")]
    assert sizes[:2] == [1000, 1000]
    assert max(sizes) == 1000
    assert sum(sizes) == len([e for e in sb.telemetry_events if e["type"] == "function"])


def test_max_bytes_bounds_every_push(layer, sandbox_factory, tmp_path):
    code = write_function(tmp_path / "fn", "def handler(event, context):\n"
                                           "    for i in range(400):\n"
                                           "        print(str(i) * 1 + 'x' * 2000)\n")
    layer.add("sizer", subscribe={"types": ["function"],
                                  "buffering": {"maxItems": 10000, "maxBytes": 262144,
                                                "timeoutMs": 30000}})
    sb = sandbox_factory(layer.root, FunctionSpec(code_dir=code))
    assert sb.invoke().status == "success"
    sb.shutdown()
    pushes = layer.records("sizer", "telemetry")
    one_event = 2100
    assert len(pushes) >= 3
    assert all(p["bytes"] <= 262144 + one_event for p in pushes)
    assert sum(len(p["batch"]) for p in pushes) == 400


def test_timeout_ms_pushes_while_the_function_runs(layer, sandbox_factory, tmp_path):
    code = write_function(tmp_path / "fn", "import time\n"
                                           "def handler(event, context):\n"
                                           "    print('early line', flush=True)\n"
                                           "    time.sleep(0.5)\n")
    layer.add("prompt", subscribe={"types": ["function"],
                                   "buffering": {"timeoutMs": 25}})
    sb = sandbox_factory(layer.root, FunctionSpec(code_dir=code))
    assert sb.start().ok
    started = time.time()
    assert sb.invoke().status == "success"
    [early] = [e for e in layer.telemetry("prompt") if e["record"] == "early line\n"]
    assert early["received"] - started < 0.4


def test_platform_event_order(layer, sandbox_factory):
    layer.add("observer")
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    first = sb.invoke({"lines": 3})
    returned = time.time()
    second = sb.invoke({"lines": 3})
    shutdown_started = time.time()
    sb.shutdown()

    events = layer.telemetry("observer")
    types = [e["type"] for e in events]
    assert types[0] == "platform.initStart"
    assert types.index("platform.initRuntimeDone") < types.index("platform.initReport")
    assert "platform.telemetrySubscription" in types
    assert "platform.extension" in types
    for result in (first, second):
        rid = result.request_id
        start = next(i for i, e in enumerate(events)
                     if e["type"] == "platform.start" and e["record"]["requestId"] == rid)
        done = next(i for i, e in enumerate(events)
                    if e["type"] == "platform.runtimeDone" and e["record"]["requestId"] == rid)
        report = next(i for i, e in enumerate(events)
                      if e["type"] == "platform.report" and e["record"]["requestId"] == rid)
        lines = [i for i, e in enumerate(events) if e["type"] == "function"
                 and isinstance(e["record"], str) and rid in e["record"]]
        assert lines and start < min(lines) and max(lines) < done < report
        assert events[done]["record"]["status"] == "success"
        assert events[done]["record"]["tracing"]["type"] == "X-Amzn-Trace-Id"
        assert [s["name"] for s in events[done]["record"]["spans"]] == \
            ["responseLatency", "responseDuration"]
        metrics = events[report]["record"]["metrics"]
        assert {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"} <= \
            set(metrics)
    # The report comes only after the extension's /event/next, then the environment is frozen:
    # it reaches the listener during the next invoke, or at shutdown.
    reports = {e["record"]["requestId"]: e for e in events if e["type"] == "platform.report"}
    assert reports[first.request_id]["received"] > returned
    assert "initDurationMs" in reports[first.request_id]["record"]["metrics"]
    assert "initDurationMs" not in reports[second.request_id]["record"]["metrics"]
    assert reports[second.request_id]["received"] > shutdown_started


def test_failed_push_is_retried(layer, sandbox_factory):
    layer.add("flaky", listener_status=[503])
    sb = sandbox_factory(layer.root, delivery=DeliveryPolicy(attempts=3, backoff_s=0.01))
    assert sb.invoke().status == "success"
    sb.shutdown()
    pushes = layer.records("flaky", "telemetry")
    assert pushes[0]["status"] == 503
    assert pushes[1]["batch"] == pushes[0]["batch"]
    stats = sb.delivery_stats()["flaky"]
    assert stats.failed_attempts >= 1 and stats.dropped_records == 0
    assert not any(e["type"] == "platform.logsDropped" for e in layer.telemetry("flaky"))


def test_failed_pushes_are_dropped_then_reported(layer, sandbox_factory):
    layer.add("broken", listener_status=[500, 500, 500])
    sb = sandbox_factory(layer.root, delivery=DeliveryPolicy(attempts=3, backoff_s=0.01))
    assert sb.invoke().status == "success"
    sb.shutdown()
    pushes = layer.records("broken", "telemetry")
    lost = pushes[0]["batch"]
    assert [p["batch"] for p in pushes[:3]] == [lost] * 3
    dropped = [e for e in layer.telemetry("broken") if e["type"] == "platform.logsDropped"]
    assert len(dropped) == 1
    assert dropped[0]["record"]["droppedRecords"] == len(lost)
    assert dropped[0]["record"]["droppedBytes"] == pushes[0]["bytes"]
    assert dropped[0]["record"]["reason"]
    assert sb.delivery_stats()["broken"].dropped_records == len(lost)


def test_slow_listener_counts_as_failed(layer, sandbox_factory):
    layer.add("slowpoke", listener_delay_s=0.3, subscribe={"types": ["platform"]})
    sb = sandbox_factory(layer.root, freeze=False,
                         delivery=DeliveryPolicy(attempts=2, timeout_s=0.1, backoff_s=0.01))
    assert sb.start().ok
    wait_until(lambda: sb.delivery_stats()["slowpoke"].dropped_records > 0, timeout=5)
    assert sb.delivery_stats()["slowpoke"].failed_attempts >= 2
