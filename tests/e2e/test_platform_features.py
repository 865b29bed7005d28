"""The built layer under SnapStart and Lambda Managed Instances, in the sandbox.

SnapStart: init, a long freeze (the snapshot), then a restore that leaves every connection
opened before the snapshot dead. The first batch after the restore must go out on a fresh
connection without a failure being counted or logged, and the restore events arrive rendered
as CloudWatch shows them.

Managed Instances: no ``platform.runtimeDone`` and a ``platform.report`` with ``durationMs``
only: handled without a warning.

Tenant isolation: every entry of a tenant's invocation carries its ``tenant_id``, in Text and
JSON log formats alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.e2e.test_extension import all_output, messages, run
from tests.sandbox.sandbox_helpers import wait_until
from tests.support.checking_receiver import CheckingReceiver
from tools.lambda_sandbox import Sandbox, snapstart
from tools.lambda_sandbox.config import FAKE_CREDENTIALS
from tools.lambda_sandbox.receiver import Receiver

__all__ = ["run"]  # a fixture, used by name

# The init waits (bounded) until the receiver holds the init line: the extension has then a
# kept-alive connection to it when the snapshot is taken.
APP = r'''
import logging, os, sys, time
print("init-line")
record = os.environ.get("RECEIVED_FILE")
deadline = time.monotonic() + 5
def delivered():
    with open(record, "rb") as received:
        return b"init-line" in received.read()
while record and time.monotonic() < deadline and not delivered():
    time.sleep(0.01)

def handler(event, context):
    for i in range(event.get("lines", 1)):
        # one write per line: on Managed Instances invocations run in threads side by side
        sys.stdout.write(f"handler-line-{i}\n")
        sys.stdout.flush()
    if event.get("log"):
        logging.getLogger().warning("handler-log")
    time.sleep(event.get("sleep", 0))
    return {}
'''


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path, strict=True) as running:
        yield running


def problems(sandbox: Sandbox) -> list[str]:
    return [line for line in all_output(sandbox).splitlines()
            if "[EXTENSION] WARNING" in line or "[EXTENSION] ERROR" in line]


def extension_environment(sandbox: Sandbox) -> dict[str, str]:
    pid = sandbox.pids()["lambda-logs-http"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.timeout(60)
def test_after_a_snapstart_restore_the_first_batch_goes_out_on_a_fresh_connection(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    reason = snapstart.can_break_connections()
    if reason:
        pytest.skip(f"SnapStart's dead connections cannot be simulated here: {reason}")
    sandbox = run({"HTTP_BATCH_MAX_AGE_MS": "50", "RECEIVED_FILE": str(receiver.record)},
                  snapstart=True, snapshot_freeze_s=1.5)
    before = receiver.requests()
    assert before and "init-line" in messages(receiver)  # sent during init, kept alive
    environment = extension_environment(sandbox)
    assert environment["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
    assert environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    assert environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    assert "AWS_ACCESS_KEY_ID" not in environment

    result = sandbox.invoke({"lines": 3})
    assert result.status == "success"
    [restore] = sandbox.restores
    assert restore.broken >= 1 and restore.broken == restore.connections  # the receiver's
    got = messages(receiver)  # frozen again: all of this came before the release
    assert {"handler-line-0", "handler-line-1", "handler-line-2",
            f"END RequestId: {result.request_id}"} <= set(got)
    assert any(m.startswith("RESTORE_START Runtime Version: python:") for m in got)
    assert any(m.startswith("RESTORE_REPORT Restore Duration: ") and m.endswith(" ms")
               for m in got)
    after = receiver.requests()[len(before):]
    assert after
    assert {r["peer_port"] for r in after}.isdisjoint(r["peer_port"] for r in before)

    later = sandbox.invoke({})
    sandbox.shutdown()
    reports = [m for m in messages(receiver) if m.startswith("REPORT RequestId:")]
    first = next(m for m in reports if result.request_id in m)
    assert "Restore Duration:" in first and "Init Duration" not in first
    assert any(later.request_id in m for m in reports)
    assert problems(sandbox) == []  # the stale connection was replaced, not a failure
    summary = [line for line in all_output(sandbox).splitlines() if "shutdown summary:" in line]
    assert len(summary) == 1 and "retried=0" in summary[0] and "dropped=0" in summary[0]
    assert receiver.refused() == []


@pytest.mark.timeout(60)
def test_managed_instances_report_and_no_runtime_done_raise_no_warning(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run(managed_instances=True, max_concurrency=2)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(sandbox.invoke({"sleep": 0.2})))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    types = [e["type"] for e in sandbox.telemetry_events]
    assert "platform.runtimeDone" not in types and types.count("platform.report") == 2
    reports = [e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.report"]
    assert all(set(r["metrics"]) == {"durationMs"} for r in reports)
    # No freeze in this mode: the extension sends on its own (every HTTP_BATCH_MAX_AGE_MS).
    # Waiting here keeps this test off the SHUTDOWN race for the very last pushes.
    wait_until(lambda: len([m for m in messages(receiver) if m.startswith("REPORT")]) == 2,
               timeout=10)
    sandbox.shutdown()
    got = messages(receiver)
    assert got.count("handler-line-0") == 2
    assert all("\tBilled Duration" not in m for m in got if m.startswith("REPORT"))
    assert all("tenant_id" not in e for e in receiver.entries())  # no tenant isolation here
    assert problems(sandbox) == []
    summary = [line for line in all_output(sandbox).splitlines() if "shutdown summary:" in line]
    assert len(summary) == 1 and "dropped=0" in summary[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_every_entry_of_a_tenants_invocation_names_the_tenant(
    run: Callable[..., Sandbox], receiver: Receiver, log_format: str
) -> None:
    sandbox = run(log_format=log_format, tenant_id="tenant-blue")
    results = [sandbox.invoke({"lines": 2, "log": True}) for _ in range(2)]
    assert [r.status for r in results] == ["success", "success"]
    sandbox.shutdown()
    entries = receiver.entries()
    for result in results:
        mine = [e for e in entries if e.get("request_id") == result.request_id]
        assert {"handler-line-0", "handler-line-1", "handler-log",
                f"END RequestId: {result.request_id}"} <= {e["message"] for e in mine}
        assert any(e["message"].startswith("START RequestId:") for e in mine)
        assert any(e["message"].startswith("REPORT RequestId:") for e in mine)
        assert {e.get("tenant_id") for e in mine} == {"tenant-blue"}, mine
    # what belongs to no invocation (init, the subscription) names no tenant either
    assert all("tenant_id" not in e for e in entries if "request_id" not in e)
    if log_format == "JSON":  # the runtime's own JSON record names the tenant too
        logged = [e for e in entries if e["message"] == "handler-log"]
        assert logged and all(e["record"]["tenantId"] == "tenant-blue" for e in logged)
    assert problems(sandbox) == []


@pytest.mark.timeout(60)
def test_after_a_restore_aws_sigv4_signs_with_the_credentials_the_endpoint_serves(
    run: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """SnapStart gives no AWS_ACCESS_KEY_ID: aws_sigv4 signs with what the environment's
    credentials endpoint answers (the sandbox's, which checks the token), before and after the
    restore, on the fresh connection the restore makes it open."""
    pytest.importorskip("botocore", reason="botocore (pip install -r requirements-dev.txt)")
    reason = snapstart.can_break_connections()
    if reason:
        pytest.skip(f"SnapStart's dead connections cannot be simulated here: {reason}")
    expected = {"access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
                "region": "us-east-1", "service": "execute-api"}
    with CheckingReceiver(tmp_path, sigv4=expected) as checking:
        sandbox = run({"HTTP_ENDPOINT": checking.url, "HTTP_AUTH_TYPE": "aws_sigv4",
                       "HTTP_AWS_SIGV4_SERVICE": "execute-api", "HTTP_BATCH_MAX_AGE_MS": "50",
                       "RECEIVED_FILE": str(checking.record)},
                      snapstart=True, snapshot_freeze_s=0.5)
        assert "AWS_ACCESS_KEY_ID" not in extension_environment(sandbox)
        assert checking.accepted()  # the init line, signed before the snapshot
        results = [sandbox.invoke({"lines": 2}) for _ in range(2)]
        sandbox.shutdown()
        assert [r.status for r in results] == ["success", "success"]
        assert [r.broken for r in sandbox.restores] == [1]  # the receiver's connection
        assert checking.rejected() == []
        got = checking.messages()
    for result in results:
        assert {"handler-line-0", "handler-line-1",
                f"END RequestId: {result.request_id}"} <= set(got)
    assert problems(sandbox) == []
