"""Lifecycle: measurements, freeze, timeout, crash, function errors, shutdown, Managed Instances."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.sandbox.sandbox_helpers import events_of, wait_until

pytestmark = pytest.mark.timeout(30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_measurements(layer, sandbox_factory):
    layer.add("lingerer", work_after_invoke_s=0.3, subscribe=None)
    sb = sandbox_factory(layer.root)
    init = sb.start()
    assert init.ok and init.error is None
    assert 0 < init.extensions_registered_ms <= init.extensions_ready_ms <= init.duration_ms

    result = sb.invoke({"k": 1})
    assert result.status == "success"
    assert result.response["ok"] is True
    assert result.response_ms < 250
    # The extension works 300 ms after its INVOKE (which it got at the same time as the
    # runtime): billed time goes on after the response.
    assert 300 - result.response_ms - 30 <= result.post_runtime_extensions_ms <= 450
    assert result.duration_ms == pytest.approx(
        result.response_ms + result.post_runtime_extensions_ms, abs=1.0)
    assert result.report["metrics"]["durationMs"] == result.duration_ms
    assert result.report["metrics"]["initDurationMs"] == init.duration_ms
    assert result.report["metrics"]["maxMemoryUsedMB"] > 0


def test_no_extensions_measures_zero(sandbox_factory):
    sb = sandbox_factory()
    init = sb.start()
    assert init.extensions_registered_ms == init.extensions_ready_ms == 0.0
    result = sb.invoke()
    assert result.post_runtime_extensions_ms == 0.0
    assert result.init is None


def test_freeze_stops_every_process_between_invokes(layer, sandbox_factory):
    layer.add("ticker", ticks=True, subscribe=None)
    sb = sandbox_factory(layer.root)
    assert sb.invoke().status == "success"
    assert sb.frozen
    frozen_at = time.time()
    time.sleep(0.6)
    thawing_at = time.time()
    assert sb.invoke().status == "success"
    ticks = layer.ticks("ticker")
    inside = [t for t in ticks if frozen_at + 0.05 < t < thawing_at]
    assert inside == []  # not a single tick while frozen
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) >= 0.5


def test_no_freeze_keeps_processes_running(layer, sandbox_factory):
    layer.add("ticker", ticks=True, subscribe=None)
    sb = sandbox_factory(layer.root, freeze=False)
    assert sb.invoke().status == "success"
    assert not sb.frozen
    before = len(layer.ticks("ticker"))
    time.sleep(0.3)
    assert len(layer.ticks("ticker")) >= before + 10


def test_timeout_resets_the_environment(layer, sandbox_factory):
    layer.add("witness")
    sb = sandbox_factory(layer.root, timeout_s=0.5)
    assert sb.start().ok
    old_runtime = sb.pids()["runtime"]
    result = sb.invoke({"sleep": 5})
    assert result.status == "timeout"
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert result.error["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Task timed out after 0.50 seconds")
    assert 450 <= result.duration_ms <= 1000
    assert result.report["status"] == "timeout"
    [done] = [e for e in events_of(sb.telemetry_events, "platform.runtimeDone")
              if e["record"]["requestId"] == result.request_id]
    assert done["record"]["status"] == "timeout"

    shutdown_events = [r["event"] for r in layer.records("witness", "event")
                       if r["event"]["eventType"] == "SHUTDOWN"]
    assert [e["shutdownReason"] for e in shutdown_events] == ["timeout"]
    reset = sb.resets[-1]
    assert reset.reason == "timeout" and "runtime" in reset.killed
    assert reset.exit_codes["witness"] == 0
    assert not _alive(old_runtime)
    # The report of the timed-out invoke reached the extension during the reset.
    reports = [e for e in layer.telemetry("witness") if e["type"] == "platform.report"]
    assert reports and reports[-1]["record"]["status"] == "timeout"

    again = sb.invoke()
    assert again.status == "success"
    assert again.init is not None and again.init.ok and again.init.phase == "invoke"
    assert sb.pids()["runtime"] != old_runtime
    assert len(sb.registrations) == 2


def test_runtime_crash_is_a_failure_and_resets(layer, sandbox_factory):
    layer.add("witness", subscribe=None)
    sb = sandbox_factory(layer.root)
    result = sb.invoke({"crash": True})
    assert result.status == "failure"
    assert result.error["errorType"] == "Runtime.ExitError"
    assert result.error["errorMessage"].endswith("Runtime exited with error: exit status 1")
    assert result.report["status"] == "failure"
    reasons = [r["event"]["shutdownReason"] for r in layer.records("witness", "event")
               if r["event"]["eventType"] == "SHUTDOWN"]
    assert reasons == ["failure"]
    assert sb.invoke().status == "success"


def test_function_error_keeps_the_environment(sandbox_factory):
    sb = sandbox_factory()
    assert sb.start().ok
    runtime = sb.pids()["runtime"]
    result = sb.invoke({"raise": True})
    assert result.status == "error"
    assert result.error["errorType"] == "RuntimeError"
    assert result.error["errorMessage"] == "the sample function was asked to raise"
    assert result.report["status"] == "error" and result.report["errorType"] == "RuntimeError"
    assert sb.resets == []
    assert sb.invoke().status == "success"
    assert sb.pids()["runtime"] == runtime
    assert [e.endpoint for e in sb.errors] == ["invocation/error"]


def test_extension_crash_during_invoke_is_a_failure(layer, sandbox_factory):
    layer.add("fragile", exit_on_invoke=4, subscribe=None)
    sb = sandbox_factory(layer.root)
    result = sb.invoke()
    assert result.status == "failure"
    assert result.error["errorType"] == "Extension.Crash"
    assert "exit status 4" in result.error["errorMessage"]
    assert sb.resets[-1].reason == "failure"


def test_shutdown_sigkills_an_extension_that_ignores_shutdown(layer, sandbox_factory):
    layer.add("stubborn", ignore_shutdown=True, subscribe=None)
    layer.add("polite", subscribe=None)
    sb = sandbox_factory(layer.root)
    assert sb.invoke().status == "success"
    pids = sb.pids()
    started = time.time()
    result = sb.shutdown()
    assert result.killed == ["stubborn"]
    assert result.exit_codes["stubborn"] == -9
    assert result.exit_codes["polite"] == 0
    assert result.exit_codes["runtime"] == -15  # SIGTERM first, and awslambdaric obeys it
    assert 1900 <= result.duration_ms <= 2600
    [event] = [r["event"] for r in layer.records("stubborn", "event")
               if r["event"]["eventType"] == "SHUTDOWN"]
    assert event["shutdownReason"] == "spindown"
    assert abs(event["deadlineMs"] - (started * 1000 + 2000)) < 300
    assert not any(_alive(pid) for pid in pids.values())
    assert sb.shutdown() is result  # idempotent


def test_shutdown_event_parses_even_as_text_plain(layer, sandbox_factory):
    layer.add("polite", subscribe=None)
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    sb.shutdown()
    [record] = [r for r in layer.records("polite", "event")
                if r["event"]["eventType"] == "SHUTDOWN"]
    assert record["content_type"].startswith("text/plain")


def test_context_manager_kills_everything(layer):
    from tools.lambda_sandbox import Sandbox

    layer.add("stubborn", ignore_shutdown=True, subscribe=None)
    with Sandbox(layer.root, shutdown_timeout_s=0.3) as sb:
        assert sb.invoke().status == "success"
        pids = sb.pids()
    assert sb.shutdown_result is not None and sb.shutdown_result.killed == ["stubborn"]
    assert not any(_alive(pid) for pid in pids.values())
    with pytest.raises(RuntimeError):
        sb.invoke()


def test_managed_instances_rules(layer, sandbox_factory):
    layer.add(
        "lmi",
        events=["SHUTDOWN"],
        register_attempts=[{"events": ["INVOKE", "SHUTDOWN"]}],
        subscribe={"schemaVersion": "2025-01-29"},
        init_calls=[{"method": "PUT", "path": "/2022-07-01/telemetry",
                     "body": {"schemaVersion": "2022-12-13", "types": ["platform"],
                              "destination": {"protocol": "HTTP",
                                              "URI": "http://sandbox.localdomain:4243/"}}}],
    )
    sb = sandbox_factory(layer.root, managed_instances=True, max_concurrency=2)
    assert sb.start().ok
    [attempt] = layer.records("lmi", "register_attempt")
    assert (attempt["status"], attempt["body"]["errorType"]) == (
        403, "Extension.InvalidEventType")
    assert layer.records("lmi", "subscribe")[0]["status"] == 200
    assert layer.records("lmi", "call")[0]["status"] == 400
    env = layer.records("lmi", "register")[0]["env"]
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
    assert env["AWS_LAMBDA_MAX_CONCURRENCY"] == "2"

    results = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(sb.invoke({"sleep": 0.4})))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == ["success", "success"]
    assert time.monotonic() - started < 0.75  # concurrent, not one after the other
    assert not sb.frozen
    # Never frozen: telemetry keeps flowing without a next invoke.
    wait_until(lambda: any(e["type"] == "platform.report" for e in layer.telemetry("lmi")))
    assert not [r for r in layer.records("lmi", "event")
                if r["event"]["eventType"] == "INVOKE"]
    # That mode's telemetry: no runtimeDone, and reports with their duration only.
    types = [e["type"] for e in sb.telemetry_events]
    assert "platform.runtimeDone" not in types
    assert all(set(r.report["metrics"]) == {"durationMs"} for r in results)


def test_slow_extension_runs_the_invocation_into_its_timeout(layer, sandbox_factory):
    layer.add("dawdler", work_after_invoke_s=1.0, subscribe=None)
    sb = sandbox_factory(layer.root, timeout_s=0.5)
    result = sb.invoke()
    assert result.status == "timeout"
    # The client got its answer long before: the extension's time is what timed out.
    assert result.response["ok"] is True and result.response_ms < 300
    assert result.post_runtime_extensions_ms == pytest.approx(500 - result.response_ms, abs=5)
    assert sb.resets[-1].reason == "timeout"
