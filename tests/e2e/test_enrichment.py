"""The built layer in the sandbox: what every entry carries (trace, account, cold start,
version, service, extra fields), and the one ERROR entry of an invocation that timed out or
crashed — found in what a real receiver process was sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from lambda_logs_http import __version__
from tests.e2e.test_extension import all_output, run
from tools.lambda_sandbox import Sandbox
from tools.lambda_sandbox.receiver import Receiver

__all__ = ["run"]  # a fixture, used by name

APP = r'''
import logging, os, sys, time

def handler(event, context):
    sys.stdout.write(f"line-{event.get('n', 0)}\n")
    sys.stdout.flush()
    logging.getLogger().warning(f"logged-{event.get('n', 0)}")  # names its request id
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("crash"):
        os._exit(3)
    if event.get("raise"):
        raise ValueError("asked to raise")
    return {}
'''
ACCOUNT = "123456789012"  # the sandbox's


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


def entries(receiver: Receiver) -> list[dict[str, Any]]:
    return receiver.entries()  # type: ignore[no-any-return]


def alerts(receiver: Receiver, request_id: str) -> list[dict[str, Any]]:
    """The extension's own ERROR entries about ``request_id``."""
    return [e for e in entries(receiver) if e.get("request_id") == request_id
            and isinstance(e.get("record"), dict)
            and e["record"].get("source") == "lambda-logs-http"]


def trace_of(sandbox: Sandbox, request_id: str) -> tuple[str, str]:
    """The trace the sandbox gave the invocation, from its platform.start."""
    for event in sandbox.telemetry_events:
        record = event["record"]
        if event["type"] == "platform.start" and record["requestId"] == request_id:
            parts = dict(p.split("=", 1) for p in record["tracing"]["value"].split(";"))
            return parts["Root"], parts["Parent"]
    raise AssertionError(f"no platform.start for {request_id}")


def test_every_entry_carries_the_invocations_trace_and_the_environments_context(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"OTEL_SERVICE_NAME": "checkout",
                   "HTTP_EXTRA_FIELDS": '{"env": "prod", "team": "payments", "tier": 2}'})
    first, second = sandbox.invoke({"n": 1}), sandbox.invoke({"n": 2})
    assert first.status == second.status == "success"
    sandbox.shutdown()
    got = entries(receiver)
    for result, cold in ((first, True), (second, False)):
        root, parent = trace_of(sandbox, result.request_id)
        mine = [e for e in got if e.get("request_id") == result.request_id]
        # START, the line, END, REPORT (the first one's arrives during the second invocation).
        assert {e["message"].split(" ")[0] for e in mine} >= {"START", "END", "REPORT"}
        assert any(e["message"].startswith(f"line-{2 - cold}") for e in mine)
        assert all((e["trace_id"], e["span_id"]) == (root, parent) for e in mine), mine
        assert all(e.get("cold_start", False) is cold for e in mine)
    for entry in got:
        assert entry["account_id"] == ACCOUNT
        assert entry["extension_version"] == __version__
        assert entry["service_name"] == "checkout"
        assert (entry["env"], entry["team"], entry["tier"]) == ("prod", "payments", 2)
        assert "instance" not in entry  # Lambda gives extensions no log stream name


def test_bad_extra_fields_say_so_and_leave_the_function_working(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_EXTRA_FIELDS": '{"message": "clash"}'})
    assert sandbox.invoke({"n": 1}).status == "success"
    sandbox.shutdown()
    output = all_output(sandbox)
    assert "HTTP_EXTRA_FIELDS: 'message' is a key every entry has already" in output
    assert entries(receiver) == []


def test_a_timed_out_invocation_gets_one_error_entry_with_its_trace(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run(timeout_s=1.0)
    result = sandbox.invoke({"n": 5, "sleep": 3})
    assert result.status == "timeout" and sandbox.resets
    # Lambda said it three times: runtimeDone, report and the SHUTDOWN that reset the
    # environment; the extension, exactly once.
    (alert,) = alerts(receiver, result.request_id)
    assert alert["level"] == "ERROR"
    assert alert["message"] == (
        f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"
    )
    assert (alert["trace_id"], alert["span_id"]) == trace_of(sandbox, result.request_id)
    assert alert["cold_start"] is True
    assert alert["record"]["status"] == "timeout"
    assert alert["record"]["errorType"] == "Sandbox.Timedout"
    assert 1000 <= alert["record"]["durationMs"] < 1500
    summary = [line for line in sandbox.extension_output if "shutdown summary" in line]
    assert summary and "dropped=0" in summary[0]


def test_a_crashed_runtime_gets_one_error_entry(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run()
    ok = sandbox.invoke({"n": 1})
    result = sandbox.invoke({"n": 2, "crash": True})
    assert ok.status == "success" and result.status == "failure"
    after = sandbox.invoke({"n": 3})  # a new environment: its first invocation is cold again
    sandbox.shutdown()
    (alert,) = alerts(receiver, result.request_id)
    assert alert["message"].startswith(
        f"RequestId: {result.request_id} Error: Invocation failed (Runtime.ExitError) after "
    )
    assert alert["trace_id"] == trace_of(sandbox, result.request_id)[0]
    assert "cold_start" not in alert
    assert alerts(receiver, ok.request_id) == [] and alerts(receiver, after.request_id) == []
    cold = {e["request_id"] for e in entries(receiver) if e.get("cold_start")}
    assert cold == {ok.request_id, after.request_id}


def test_a_function_error_gets_one_error_entry(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run()
    result = sandbox.invoke({"n": 1, "raise": True})
    assert result.status == "error"
    sandbox.shutdown()
    (alert,) = alerts(receiver, result.request_id)
    assert alert["message"].startswith(f"RequestId: {result.request_id} Error: Invocation error")
    assert json.dumps(alert).isascii()


def test_without_platform_records_the_shutdown_says_it_with_the_invokes_trace(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    """Subscribed to the function's lines only: no runtimeDone, no report. The trace comes
    from the INVOKE event (the main thread's), the alert from the SHUTDOWN that reset the
    environment — queued at shutdown, and still delivered."""
    sandbox = run({"HTTP_TELEMETRY_TYPES": "function"}, timeout_s=1.0)
    result = sandbox.invoke({"n": 5, "sleep": 3})
    assert result.status == "timeout" and sandbox.resets
    (alert,) = alerts(receiver, result.request_id)
    assert alert["message"] == (
        f"RequestId: {result.request_id} Error: Task timed out: Lambda shut the execution "
        "environment down (timeout)"
    )
    assert alert["record"]["reportedBy"] == "SHUTDOWN"
    root, parent = trace_of(sandbox, result.request_id)
    # A line that names its request gets the INVOKE's trace (one that names none cannot be
    # told apart from the next invocation's without platform.start).
    (line,) = [e for e in entries(receiver) if e["message"] == "logged-5"]
    assert (line["trace_id"], line["span_id"], line["cold_start"]) == (root, parent, True)
    assert (alert["trace_id"], alert["span_id"], alert["cold_start"]) == (root, parent, True)
    assert not [e for e in entries(receiver) if e["log_type"] == "platform"]


def test_after_a_snapstart_restore_the_first_invocation_is_the_cold_start(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run(snapstart=True, snapshot_freeze_s=0.2)
    first, second = sandbox.invoke({"n": 1}), sandbox.invoke({"n": 2})
    sandbox.shutdown()
    assert sandbox.restores and first.status == second.status == "success"
    cold = {e.get("request_id") for e in entries(receiver) if e.get("cold_start")}
    assert cold == {first.request_id}


def test_on_managed_instances_a_timed_out_report_gives_the_entry_and_nothing_is_cold(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    """No INVOKE, no runtimeDone there: the report says it; init ran ahead of any request."""
    sandbox = run(managed_instances=True, max_concurrency=1, timeout_s=1.0)
    result = sandbox.invoke({"n": 4, "sleep": 3})
    assert result.status == "timeout"
    sandbox.shutdown()
    got = entries(receiver)
    assert [e["message"] for e in alerts(receiver, result.request_id)] == [
        f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"
    ]
    # The SHUTDOWN (timeout) that follows names no request here: it adds no second entry.
    assert len([e for e in got if e.get("record", {}).get("source") == "lambda-logs-http"
                and e["level"] == "ERROR"]) == 1
    assert not any(e.get("cold_start") for e in got)
