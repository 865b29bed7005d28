"""SnapStart mode: init, a long freeze (the snapshot), then a restore that kills the
environment's connections to the outside world and emits the restore events."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.sandbox.sandbox_helpers import api_call
from tools.lambda_sandbox import snapstart
from tools.lambda_sandbox.config import CREDENTIALS_PATH

pytestmark = pytest.mark.timeout(30)

# A function that, during init, opens a connection to a server of the test's and keeps it; the
# handler says whether that connection still works after the restore.
APP = '''
import os, socket
conn = socket.create_connection(("127.0.0.1", int(os.environ["PEER_PORT"])), timeout=5)
conn.sendall(b"hello before the snapshot")
conn.settimeout(2)

def handler(event, context):
    try:
        conn.sendall(b"after")
        data = conn.recv(10)
        state = "alive" if data else "closed"
    except OSError as exc:
        state = type(exc).__name__
    return {"connection": state,
            "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "credentials_uri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            "has_token": bool(os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")),
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID")}
'''


@pytest.fixture
def peer():  # type: ignore[no-untyped-def]
    """A server outside the environment: accepts one connection and echoes what it reads."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server
    server.close()


def _code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    return code


def test_restore_kills_outside_connections_and_emits_the_restore_events(
    sandbox_factory, peer, tmp_path
):  # type: ignore[no-untyped-def]
    reason = snapstart.can_break_connections()
    if reason:
        pytest.skip(f"SnapStart's dead connections cannot be simulated here: {reason}")
    from tools.lambda_sandbox import FunctionSpec

    sb = sandbox_factory(None, FunctionSpec(handler="app.handler", code_dir=_code(tmp_path)),
                         {"PEER_PORT": str(peer.getsockname()[1])}, snapstart=True,
                         snapshot_freeze_s=0.3)
    init = sb.start()
    assert init.ok
    accepted, _ = peer.accept()
    accepted.settimeout(5)
    assert accepted.recv(100) == b"hello before the snapshot"
    assert sb.frozen  # the snapshot: everything stays stopped until the first invoke

    started = time.monotonic()
    result = sb.invoke()
    assert time.monotonic() - started >= 0.3
    assert result.status == "success"
    assert result.response["connection"] in ("ConnectionAbortedError", "ConnectionResetError",
                                             "BrokenPipeError", "closed")
    [restore] = sb.restores
    assert restore.connections == restore.broken == 1 and restore.frozen_s == 0.3
    try:  # the peer's end is gone too: a reset (or at least the end of the stream)
        data = accepted.recv(100)
    except ConnectionResetError:
        data = b""
    assert data == b""
    accepted.close()

    # SnapStart's environment: credentials from the endpoint, not from variables
    assert result.response["init_type"] == "snap-start"
    assert result.response["access_key"] is None and result.response["has_token"]
    assert result.response["credentials_uri"] == f"http://{sb.runtime_api}{CREDENTIALS_PATH}"

    types = [e["type"] for e in sb.telemetry_events]
    order = ["platform.initReport", "platform.restoreStart", "platform.restoreRuntimeDone",
             "platform.restoreReport", "platform.start", "platform.runtimeDone",
             "platform.report"]
    assert [t for t in types if t in order] == order
    events = {e["type"]: e["record"] for e in sb.telemetry_events}
    assert events["platform.restoreStart"]["runtimeVersion"].startswith("python:")
    assert events["platform.restoreRuntimeDone"]["status"] == "success"
    assert events["platform.restoreReport"]["metrics"]["durationMs"] == restore.duration_ms
    metrics = result.report["metrics"]
    assert metrics["restoreDurationMs"] == restore.duration_ms and "initDurationMs" not in metrics
    assert metrics["billedRestoreDurationMs"] >= 1
    second = sb.invoke()  # restored once: later invocations are ordinary
    assert len(sb.restores) == 1 and "restoreDurationMs" not in second.report["metrics"]


def test_the_credentials_endpoint_wants_the_token(sandbox_factory):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(snapstart=True, snapshot_freeze_s=0.0)
    status, body = api_call(sb.runtime_api, "GET", CREDENTIALS_PATH,
                            headers={"Authorization": sb.config.credentials_token})
    assert status == 200 and set(body) == {"AccessKeyId", "SecretAccessKey", "Token",
                                           "Expiration"}
    assert body["Expiration"].endswith("Z")
    status, _ = api_call(sb.runtime_api, "GET", CREDENTIALS_PATH,
                         headers={"Authorization": "wrong"})
    assert status == 401
    ordinary = sandbox_factory()
    assert api_call(ordinary.runtime_api, "GET", CREDENTIALS_PATH)[0] == 404
    env = ordinary.config.extension_environment("127.0.0.1:1")
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env and env["AWS_ACCESS_KEY_ID"]


def test_snapstart_excludes_managed_instances() -> None:
    from tools.lambda_sandbox import Sandbox

    with pytest.raises(ValueError, match="snapstart"):
        Sandbox(snapstart=True, managed_instances=True)


def test_connections_are_listed_from_proc() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            accepted, _ = server.accept()
            with accepted:
                mine = snapstart.established([os.getpid()])
                assert snapstart.Connection(os.getpid(), client.getsockname(),
                                            client.getpeername()) in mine


def test_json_records_python_cannot_hold_are_forwarded_as_written(sandbox_factory, tmp_path):  # type: ignore[no-untyped-def]
    """JSON log format: a line Lambda's parser takes but Python's cannot (5,000 levels deep on
    3.11, 1e999, a 5,000-digit integer) arrives as written; NaN, not JSON, stays text."""
    from tools.lambda_sandbox import FunctionSpec

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        "def handler(event, context):\n"
        "    print('{\"a\":' * 50000 + '1' + '}' * 50000)\n"
        "    print('{\"v\": 1e999}')\n"
        "    print('{\"n\": ' + '7' * 5000 + '}')\n"
        "    print('{\"p99\": NaN}')\n"
        "    return {}\n")
    sb = sandbox_factory(None, FunctionSpec(handler="app.handler", code_dir=code),
                         log_format="JSON")
    assert sb.invoke().status == "success"
    records = [e["record"] for e in sb.telemetry_events if e["type"] == "function"]
    assert records[0].startswith('{"a":{"a":') and type(records[0]).__name__ == "RawJSON"
    assert records[1] == '{"v": 1e999}' and records[2].startswith('{"n": 7777')
    assert records[3] == '{"p99": NaN}\n' and type(records[3]) is str
    assert json.loads(json.dumps(records[3])) == records[3]
