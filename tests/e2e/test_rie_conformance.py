"""The built layer under AWS's own Runtime Interface Emulator (see tests/rie/harness.py).

Default mode stubs the Telemetry API (202 Telemetry.NotSupported): the extension must say so once,
keep releasing invocations without delay and exit cleanly. Managed-instances mode has a real
Telemetry API (schema 2025-01-29, SHUTDOWN-only extensions, no freeze): every function line must
reach the receiver by the end of the shutdown phase.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rie.harness import RECEIVER_URL, awslambdaric_bootstrap, rie_available, run_rie_scenario

APP = '''
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)

def handler(event, context):
    n = event["n"]
    for i in range(event.get("lines", 3)):
        print(f"marker-{n}-{i}")
    logger.warning(f"warned-{n}")
    return {"n": n}
'''


@pytest.fixture(scope="module")
def rie_ok() -> None:
    ok, why = rie_available()
    if not ok:
        pytest.skip(f"RIE unavailable: {why}")


def entries_of(result) -> list[dict]:  # type: ignore[no-untyped-def]
    found = []
    for request in result.receiver_requests:
        if request.path.startswith("/ingest"):
            found.extend(json.loads(request.body)["logs"])
    return found


@pytest.mark.usefixtures("rie_ok")
def test_default_mode_without_telemetry_releases_at_once(real_layer: Path) -> None:
    result = run_rie_scenario(
        real_layer,
        awslambdaric_bootstrap(),
        task_files={"app.py": APP},
        env={"HTTP_ENDPOINT": f"{RECEIVER_URL}/ingest"},
        invocations=[{"n": n} for n in range(3)],
        timeout_s=60,
    )
    assert [json.loads(r.body) for r in result.responses] == [{"n": n} for n in range(3)], (
        result.describe()
    )
    output = "\n".join(result.program_lines())
    assert output.count("does not support the Telemetry API") == 1, result.describe()
    assert "Traceback" not in output
    assert not result.killed, result.describe()
    assert result.rie_exit_code == 0
    assert "shutdown summary" in output
    assert result.leftover_processes == []


@pytest.mark.usefixtures("rie_ok")
def test_managed_instances_deliver_every_line_by_shutdown(real_layer: Path) -> None:
    invocations = [{"n": n, "lines": 5} for n in range(6)]
    result = run_rie_scenario(
        real_layer,
        awslambdaric_bootstrap(),
        task_files={"app.py": APP},
        env={
            "HTTP_ENDPOINT": f"{RECEIVER_URL}/ingest",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
            "HTTP_BATCH_MAX_AGE_MS": "200",
        },
        invocations=invocations,
        managed_instances=True,
        # No freeze and no INVOKE events here: batches must go out on their own, before SIGTERM.
        settle_s=5.0,
        settle_until_requests=1,
        unavailable_retry_s=15.0,  # a loaded machine: the emulator may be slow to accept invokes
        timeout_s=90,
    )
    assert all(r.status == 200 for r in result.responses), result.describe()
    entries = entries_of(result)
    messages = [e["message"] for e in entries]
    expected = {f"marker-{i['n']}-{k}" for i in invocations for k in range(5)}
    assert expected <= set(messages), result.describe()
    warned = [e for e in entries if e["message"].endswith(tuple(f"warned-{n}" for n in range(6)))]
    assert len(warned) == 6 and all(e["level"] == "WARN" for e in warned)
    reports = [e for e in entries if e["message"].startswith("REPORT RequestId:")]
    assert len(reports) == 6 and "None" not in reports[0]["message"]
    output = "\n".join(result.program_lines())
    assert "Traceback" not in output
    assert not result.killed and result.rie_exit_code == 0, result.describe()
    # Delivered periodically, not only at shutdown: some batch arrived before SIGTERM.
    assert result.sigterm_epoch is not None
    assert min(r.time for r in result.receiver_requests) < result.sigterm_epoch
