"""Tests of the RIE harness itself, with a stand-in extension — and pins of the RIE's behaviour.

Why both: the extension's conformance tests will trust this harness, so it must be shown to start
the RIE, deliver invokes, capture what an extension sends and always clean up. And every fact the
extension's design relies on about AWS's emulator (what register returns, which Telemetry schema
is accepted, what records arrive, how SHUTDOWN and its deadline behave) is asserted here, so a new
RIE version that changes one fails loudly instead of silently invalidating the conformance tests.

The stand-in extension (standin_extension.py) reports everything it sees to the harness's capture
receiver under ``/standin/<kind>``. Scenarios are module-scoped: one RIE run serves many asserts.
All skip with the reason from ``rie_available()`` where the RIE cannot run (not root, no unshare).
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.rie.harness import (
    STANDIN_RUNTIME_BOOTSTRAP,
    RieResult,
    _Receiver,
    awslambdaric_bootstrap,
    rie_available,
    rie_binary,
    run_rie_scenario,
    standin_runtime_files,
)

HERE = Path(__file__).resolve().parent
SCHEMAS = ["2022-07-01", "2022-12-13", "2025-01-29"]


@pytest.fixture(scope="session")
def rie_ok() -> None:
    """Skip (with the reason) where the RIE cannot run; checked lazily, not at collection, since
    the first check may download the binary."""
    ok, why = rie_available()
    if not ok:
        pytest.skip(f"RIE unavailable: {why}")


needs_rie = pytest.mark.usefixtures("rie_ok")


def make_standin_layer(dest: Path, names: tuple[str, ...] = ("standin",)) -> Path:
    """An unpacked layer: ``extensions/<name>`` launchers for the stand-in, code in ``standin/``.

    Laid out like a real Python extension layer (a shell launcher exec'ing the interpreter of the
    Python runtime), so the harness is exercised the way the real layer will be.
    """
    (dest / "extensions").mkdir(parents=True)
    (dest / "standin").mkdir()
    shutil.copy(HERE / "standin_extension.py", dest / "standin" / "main.py")
    for name in names:
        launcher = dest / "extensions" / name
        launcher.write_text(
            '#!/bin/sh\nexec /var/lang/bin/python3 /opt/standin/main.py "${0##*/}"\n'
        )
        launcher.chmod(0o755)
    return dest


def reports(result: RieResult, kind: str) -> list[dict[str, Any]]:
    """The stand-in's reports of one kind, in arrival order."""
    return result.receiver_json(f"/standin/{kind}")


def telemetry_records(result: RieResult) -> list[dict[str, Any]]:
    """Every Telemetry API record the stand-in's listeners got, in arrival order."""
    return [record for push in reports(result, "telemetry") for record in push["body"]]


def events(result: RieResult) -> list[dict[str, Any]]:
    """The stand-in's ``/event/next`` answers, with the body parsed."""
    return [{**e, "event": json.loads(e["body"])} for e in reports(result, "event")]


def fn_out_ids(records: list[Any]) -> set[str]:
    """Request ids named by the stand-in runtime's ``fn-out <id> ...`` function records."""
    return {
        r["record"].split()[1] for r in records if str(r.get("record", "")).startswith("fn-out")
    }


# --------------------------------------------------------------------------------------------------
# Without the RIE
# --------------------------------------------------------------------------------------------------


def test_rie_available_gives_a_reason() -> None:
    """Skips must say why: False always comes with a reason, True with none."""
    ok, why = rie_available()
    assert isinstance(ok, bool)
    assert (ok and why == "") or (not ok and why)


def test_receiver_records_gunzips_and_scripts_statuses() -> None:
    """The capture receiver: a scripted status first, then 200; gzip bodies stored decoded."""
    receiver = _Receiver([503], 0.0, port=0)
    try:
        url = f"http://127.0.0.1:{receiver.port}/logs?x=1"
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(urllib.request.Request(url, data=b"plain"), timeout=5)
        assert failed.value.code == 503
        packed = urllib.request.Request(
            url, data=gzip.compress(b'{"a":1}'), headers={"Content-Encoding": "gzip"}
        )
        with urllib.request.urlopen(packed, timeout=5) as response:
            assert response.status == 200
    finally:
        captured = receiver.close()
    assert [r["status_sent"] for r in captured] == [503, 200]
    assert captured[0]["body"] == "plain" and captured[0]["path"] == "/logs?x=1"
    assert captured[1]["body"] == '{"a":1}' and captured[1]["headers"]["content-encoding"] == "gzip"
    assert captured[1]["raw_size"] == len(gzip.compress(b'{"a":1}'))


def test_receiver_decodes_chunked_bodies() -> None:
    """A chunked upload (no Content-Length) is captured whole."""
    receiver = _Receiver([], 0.0, port=0)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{receiver.port}/c",
            data=iter([b"hello ", b"chunked"]),
            headers={"Transfer-Encoding": "chunked"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        captured = receiver.close()
    assert [r["body"] for r in captured] == ["hello chunked"]


@needs_rie
def test_binary_is_cached_outside_the_tracked_tree() -> None:
    """The RIE binary lives only in the gitignored .cache/ (or where $RIE_BINARY says)."""
    path = rie_binary(fetch=False)
    assert path.is_file()
    repo = HERE.parents[1]
    if repo in path.parents:
        assert (repo / ".cache") in path.parents


# --------------------------------------------------------------------------------------------------
# Default mode: real Extensions + Runtime APIs, Telemetry API stubbed
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(rie_ok: None, tmp_path_factory: pytest.TempPathFactory) -> RieResult:
    """Two sequential invokes; the receiver fails the very first report with 503."""
    layer = make_standin_layer(tmp_path_factory.mktemp("default") / "layer")
    result = run_rie_scenario(
        layer,
        STANDIN_RUNTIME_BOOTSTRAP,
        task_files=standin_runtime_files(),
        env={"AWS_LAMBDA_FUNCTION_NAME": "rie-fn", "AWS_LAMBDA_FUNCTION_TIMEOUT": "30"},
        invocations=[{"msg": "one"}, {"msg": "two"}],
        receiver_statuses=[503],
        settle_s=0.3,
        timeout_s=40,
    )
    assert result.error is None, result.describe()
    return result


@pytest.mark.timeout(90)
def test_default_invokes_answer_through_the_custom_runtime(default_run: RieResult) -> None:
    """Invoke responses are the runtime's bodies; its output reaches the RIE's stdout."""
    bodies = [r.json() for r in default_run.responses]
    assert [r.status for r in default_run.responses] == [200, 200]
    assert [b["echo"] for b in bodies] == [{"msg": "one"}, {"msg": "two"}]
    assert all(b["uid"] == 0 for b in bodies)  # default mode runs everything as root
    lines = default_run.program_lines()
    for body in bodies:
        rid = body["requestId"]
        assert f"fn-out {rid} {body['echo']['msg']}" in lines
        assert f"fn-err {rid}" in lines
        assert f"START RequestId: {rid} Version: $LATEST" in lines
        assert f"END RequestId: {rid}" in lines
    assert "standin standin: registered, waiting for events" in lines


def test_default_register_has_no_account_id(default_run: RieResult) -> None:
    """Register answers 200 with an identifier; no accountId even when the feature is asked."""
    (attempt,) = reports(default_run, "register")[0]["attempts"]
    assert attempt["events"] == ["INVOKE", "SHUTDOWN"]
    assert attempt["status"] == 200
    assert attempt["headers"]["Content-Type"] == "application/json"
    assert len(attempt["headers"]["Lambda-Extension-Identifier"]) == 36
    body = json.loads(attempt["body"])
    assert body == {"functionName": "rie-fn", "functionVersion": "$LATEST", "handler": ""}


def test_default_telemetry_is_stubbed_for_every_schema(default_run: RieResult) -> None:
    """Every schema version gets 202 Telemetry.NotSupported, and nothing is ever pushed."""
    attempts = reports(default_run, "subscribe")[0]["attempts"]
    assert [a["schema"] for a in attempts] == SCHEMAS
    for attempt in attempts:
        assert attempt["status"] == 202
        assert json.loads(attempt["body"]) == {
            "errorMessage": "Telemetry API is not supported",
            "errorType": "Telemetry.NotSupported",
        }
    assert reports(default_run, "telemetry") == []


def test_default_invoke_events(default_run: RieResult) -> None:
    """INVOKE events carry the request id, ARN and deadline (timeout from INIT start); no tracing."""
    invokes = [e for e in events(default_run) if e["event"]["eventType"] == "INVOKE"]
    ids = [r.json()["requestId"] for r in default_run.responses]
    assert [e["event"]["requestId"] for e in invokes] == ids
    for item in invokes:
        event = item["event"]
        assert set(event) == {"eventType", "deadlineMs", "requestId", "invokedFunctionArn"}
        assert (
            event["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:012345678912:function:rie-fn"
        )
        assert item["headers"]["Content-Type"] == "application/json"
        assert "Lambda-Extension-Event-Identifier" in item["headers"]
        remaining = event["deadlineMs"] / 1000 - item["t"]
        assert 25 < remaining <= 30  # AWS_LAMBDA_FUNCTION_TIMEOUT=30


def test_default_shutdown_event(default_run: RieResult) -> None:
    """SIGTERM -> SHUTDOWN 'SandboxTerminated', as text/plain, deadline 2 s after the signal."""
    shutdown = events(default_run)[-1]
    assert shutdown["event"]["eventType"] == "SHUTDOWN"
    assert shutdown["event"]["shutdownReason"] == "SandboxTerminated"
    assert shutdown["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert "Lambda-Extension-Event-Identifier" not in shutdown["headers"]
    assert default_run.sigterm_epoch is not None
    budget = shutdown["event"]["deadlineMs"] / 1000 - default_run.sigterm_epoch
    assert 1.9 < budget < 2.1
    assert reports(default_run, "exit")
    assert default_run.rie_exit_code == 0 and not default_run.killed
    assert default_run.leftover_processes == []


def test_default_environment_is_lambda_like(default_run: RieResult) -> None:
    """Extensions see Lambda's variables, not the host's; sandbox.localdomain resolves."""
    start = reports(default_run, "start")[0]
    env = start["env"]
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "rie-fn"
    assert env["AWS_REGION"] == "us-east-1"
    assert "AWS_LAMBDA_INITIALIZATION_TYPE" not in env  # the RIE does not set it in this mode
    assert start["executable"] == "/var/lang/bin/python3"
    assert start["cwd"] == "/var/task"
    assert start["sandbox_localdomain"] == "127.0.0.1"


def test_receiver_scripts_statuses_inside_the_namespace(default_run: RieResult) -> None:
    """``receiver_statuses`` applies to the first requests; every request is captured anyway."""
    captured = default_run.receiver_requests
    assert captured[0].status_sent == 503 and captured[0].path == "/standin/start"
    assert all(r.status_sent == 200 for r in captured[1:])
    assert all(r.method == "POST" for r in captured)
    assert captured[0].headers["content-type"] == "application/json"


# --------------------------------------------------------------------------------------------------
# Managed-instances mode: real Telemetry API, SHUTDOWN-only extensions, concurrent invokes
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managed_run(rie_ok: None, tmp_path_factory: pytest.TempPathFactory) -> RieResult:
    """Three overlapping invokes on a two-thread runtime; the stand-in first tries INVOKE."""
    layer = make_standin_layer(tmp_path_factory.mktemp("managed") / "layer")
    result = run_rie_scenario(
        layer,
        STANDIN_RUNTIME_BOOTSTRAP,
        task_files=standin_runtime_files(),
        env={
            "STANDIN_EVENTS": "INVOKE,SHUTDOWN",
            "STANDIN_RETRY_SHUTDOWN_ONLY": "1",
            "STANDIN_RUNTIME_THREADS": "2",
        },
        managed_instances=True,
        max_concurrency=2,
        invocations=[{"msg": f"m{i}", "sleep": 0.3} for i in range(3)],
        concurrent=True,
        settle_s=0.5,
        timeout_s=40,
    )
    assert result.error is None, result.describe()
    return result


@pytest.mark.timeout(90)
def test_managed_register_is_shutdown_only_with_account_id(managed_run: RieResult) -> None:
    """INVOKE is refused with 403 Extension.InvalidEventType; SHUTDOWN-only gets the accountId."""
    refused, accepted = reports(managed_run, "register")[0]["attempts"]
    assert refused["status"] == 403
    assert json.loads(refused["body"]) == {
        "errorMessage": "INVOKE: ErrorInvalidEventType",
        "errorType": "Extension.InvalidEventType",
    }
    assert accepted["events"] == ["SHUTDOWN"] and accepted["status"] == 200
    assert json.loads(accepted["body"]) == {
        "accountId": "123456789012",
        "functionName": "test_function",
        "functionVersion": "$LATEST",
        "handler": "",
    }


def test_managed_telemetry_accepts_only_the_2025_schema(managed_run: RieResult) -> None:
    """2022-07-01 and 2022-12-13 get 400 ValidationError; 2025-01-29 gets 200 "OK"."""
    by_schema = {a["schema"]: a for a in reports(managed_run, "subscribe")[0]["attempts"]}
    for old in SCHEMAS[:2]:
        assert by_schema[old]["status"] == 400
        body = by_schema[old]["body"]
        assert body.startswith(
            '{"errorType": "ValidationError", "errorMessage": "schema validation'
        )
        assert 'value must be "2025-01-29"' in body
        # Surprise: the quotes inside errorMessage are not escaped, so this body is not JSON.
        with pytest.raises(ValueError):
            json.loads(body)
    assert by_schema["2025-01-29"]["status"] == 200
    assert json.loads(by_schema["2025-01-29"]["body"]) == "OK"
    assert {p["schema"] for p in reports(managed_run, "telemetry")} == {"2025-01-29"}


def test_managed_telemetry_push_format(managed_run: RieResult) -> None:
    """Pushes are POST / (the URI's path is dropped) of a JSON array, with a Sequence-Id."""
    pushes = reports(managed_run, "telemetry")
    assert pushes
    for push in pushes:
        assert push["path"] == "/"
        assert push["headers"]["Content-Type"] == "application/json"
        assert push["headers"]["Host"] == "127.0.0.1:4245"
        assert push["headers"]["Sequence-Id"]
        assert isinstance(push["body"], list)
        for record in push["body"]:
            assert set(record) == {"time", "type", "record"}
            assert record["time"].endswith("Z")


def test_managed_telemetry_record_shapes(managed_run: RieResult) -> None:
    """Per invoke: platform.start and platform.report (no runtimeDone); logs as plain strings."""
    records = telemetry_records(managed_run)
    types = {r["type"] for r in records}
    assert {
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.telemetrySubscription",
        "platform.extension",
        "platform.start",
        "platform.report",
        "function",
        "extension",
    } <= types
    assert "platform.runtimeDone" not in types
    init_start = next(r["record"] for r in records if r["type"] == "platform.initStart")
    assert init_start["initializationType"] == "lambda-managed-instances"
    assert init_start["phase"] == "init"
    ids = {r.json()["requestId"] for r in managed_run.responses}
    starts = [r["record"] for r in records if r["type"] == "platform.start"]
    reports_ = [r["record"] for r in records if r["type"] == "platform.report"]
    assert {s["requestId"] for s in starts} == ids
    assert {r["requestId"] for r in reports_} == ids
    for start in starts:
        assert set(start) == {"requestId", "version", "functionArn"}
    for report in reports_:
        assert report["status"] == "success"
        assert set(report["metrics"]) == {"durationMs"}
        assert [s["name"] for s in report["spans"]] == ["responseLatency", "responseDuration"]
    for record in records:
        if record["type"] in ("function", "extension"):
            assert isinstance(record["record"], str)
    assert fn_out_ids(records) == ids


def test_managed_invokes_overlap(managed_run: RieResult) -> None:
    """Invocations run concurrently on the runtime's threads, as the unprivileged user."""
    responses = managed_run.responses
    assert [r.status for r in responses] == [200, 200, 200]
    bodies = [r.json() for r in responses]
    assert len({b["thread"] for b in bodies}) == 2
    assert all(b["uid"] != 0 for b in bodies)
    spans = sorted((r.started_s, r.started_s + r.duration_s) for r in responses)
    assert spans[1][0] < spans[0][1]  # the first two were in flight together


def test_managed_shutdown_event_and_environment(managed_run: RieResult) -> None:
    """SHUTDOWN reason 'spindown', deadline +2 s; the RIE sets the managed-mode variables."""
    (shutdown,) = events(managed_run)  # no INVOKE events in this mode
    assert shutdown["event"]["shutdownReason"] == "spindown"
    assert shutdown["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert managed_run.sigterm_epoch is not None
    budget = shutdown["event"]["deadlineMs"] / 1000 - managed_run.sigterm_epoch
    assert 1.9 < budget < 2.1
    start = reports(managed_run, "start")[0]
    assert start["uid"] != 0
    assert start["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
    assert start["env"]["AWS_LAMBDA_MAX_CONCURRENCY"] == "2"
    assert start["env"]["AWS_LAMBDA_LOG_FORMAT"] == "json"
    assert any('msg="Shutting down"' in line for line in managed_run.rie_lines())
    assert managed_run.rie_exit_code == 0 and managed_run.leftover_processes == []


@needs_rie
@pytest.mark.timeout(90)
def test_managed_destination_rules(tmp_path: Path) -> None:
    """Only the hosts sandbox.localdomain and sandbox are accepted; the path is ignored.

    Run without the harness's /etc/hosts entry: sandbox.localdomain then does not resolve in the
    namespace, yet pushes arrive — the RIE never resolves the name, it posts to 127.0.0.1:<port>.
    """
    uris = [
        "http://127.0.0.1:4301/",
        "http://localhost:4302/",
        "http://SANDBOX.LOCALDOMAIN:4303/",
        "http://sandbox:4304/",
        "http://sandbox.localdomain:4305/some/path?q=1",
    ]
    layer = make_standin_layer(tmp_path / "layer", tuple(f"probe{i}" for i in range(len(uris))))
    result = run_rie_scenario(
        layer,
        STANDIN_RUNTIME_BOOTSTRAP,
        task_files=standin_runtime_files(),
        env={"STANDIN_PROBE_URIS": " ".join(uris), "STANDIN_SCHEMAS": "2025-01-29"},
        managed_instances=True,
        invocations=[{"msg": "probe"}],
        settle_s=0.3,
        sandbox_hosts=False,
        timeout_s=40,
    )
    assert result.error is None, result.describe()
    status = {}
    for rep in reports(result, "subscribe"):
        (attempt,) = rep["attempts"]
        status[attempt["request"]["destination"]["URI"]] = attempt["status"]
    assert status == {uris[0]: 400, uris[1]: 400, uris[2]: 400, uris[3]: 200, uris[4]: 200}
    delivered = {(p["port"], p["path"]) for p in reports(result, "telemetry")}
    assert delivered == {(4304, "/"), (4305, "/")}
    assert {r["sandbox_localdomain"] for r in reports(result, "start")} == {None}


# --------------------------------------------------------------------------------------------------
# Shutdown deadline and cleanup
# --------------------------------------------------------------------------------------------------


@needs_rie
@pytest.mark.timeout(90)
@pytest.mark.parametrize("managed", [False, True], ids=["default", "managed"])
def test_lingering_extension_is_killed_at_the_deadline(tmp_path: Path, managed: bool) -> None:
    """An extension still running 2 s after SIGTERM is SIGKILLed; the RIE then exits 0."""
    layer = make_standin_layer(tmp_path / "layer")
    result = run_rie_scenario(
        layer,
        STANDIN_RUNTIME_BOOTSTRAP,
        task_files=standin_runtime_files(),
        env={"STANDIN_LINGER_S": "6", "STANDIN_SCHEMAS": "2025-01-29" if managed else ""},
        managed_instances=managed,
        invocations=[{"msg": "x"}],
        settle_s=0.2,
        shutdown_wait_s=8,
        timeout_s=30,
    )
    assert result.error is None, result.describe()
    assert result.sigterm_epoch is not None and result.shutdown_s is not None
    beats = [b["t"] - result.sigterm_epoch for b in reports(result, "heartbeat")]
    assert beats and 1.7 < beats[-1] < 2.05
    assert not reports(result, "exit")
    assert 1.9 < result.shutdown_s < 3.0
    assert result.rie_exit_code == 0 and not result.killed
    assert result.leftover_processes == []
    if managed:
        # Extension output keeps flowing through the Telemetry API during the shutdown phase.
        lines = [r["record"] for r in telemetry_records(result) if r["type"] == "extension"]
        assert "standin standin: SHUTDOWN received" in lines
        assert "standin standin: heartbeat 3" in lines


@needs_rie
@pytest.mark.timeout(90)
def test_a_hung_runtime_is_bounded_and_cleaned_up(tmp_path: Path) -> None:
    """A runtime that never answers: the invoke times out, and nothing outlives the scenario."""
    started = time.monotonic()
    result = run_rie_scenario(
        None,
        "#!/bin/sh\nexec sleep 600\n",
        invocations=[{"msg": "never answered"}],
        shutdown_wait_s=2,
        timeout_s=6,
    )
    assert time.monotonic() - started < 6 + 10
    assert result.error is None, result.describe()
    (response,) = result.responses
    assert response.status is None and "timed out" in (response.error or "")
    assert result.rie_exit_code is not None
    assert result.leftover_processes == [] or result.killed


# --------------------------------------------------------------------------------------------------
# awslambdaric as the runtime
# --------------------------------------------------------------------------------------------------

HANDLER = """
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    print("print", context.aws_request_id)
    logger.info("info %s", event["msg"])
    return {"requestId": context.aws_request_id}
"""


@needs_rie
@pytest.mark.timeout(90)
@pytest.mark.parametrize("managed", [False, True], ids=["default-text", "managed-json"])
def test_awslambdaric_runtime(tmp_path: Path, managed: bool) -> None:
    """AWS's Python runtime client works as bootstrap; JSON log lines arrive as *strings*."""
    pytest.importorskip("awslambdaric")
    layer = make_standin_layer(tmp_path / "layer")
    result = run_rie_scenario(
        layer,
        awslambdaric_bootstrap("app.handler"),
        task_files={"app.py": HANDLER},
        env={
            "AWS_LAMBDA_LOG_FORMAT": "JSON" if managed else "Text",
            "STANDIN_SCHEMAS": "2025-01-29" if managed else "",
        },
        managed_instances=managed,
        invocations=[{"msg": "first"}, {"msg": "second"}],
        settle_s=0.5,
        timeout_s=40,
    )
    assert result.error is None, result.describe()
    ids = [r.json()["requestId"] for r in result.responses]
    assert [r.status for r in result.responses] == [200, 200]
    if not managed:
        lines = result.program_lines()
        for rid, msg in zip(ids, ["first", "second"]):
            assert any(
                line.startswith("[INFO]\t") and line.endswith(f"\t{rid}\tinfo {msg}")
                for line in lines
            )
        return
    function = [r["record"] for r in telemetry_records(result) if r["type"] == "function"]
    assert all(isinstance(line, str) for line in function)
    parsed = [json.loads(line) for line in function if line.startswith("{")]
    infos = [p for p in parsed if p.get("level") == "INFO"]
    assert [(p["requestId"], p["message"]) for p in infos] == [
        (ids[0], "info first"),
        (ids[1], "info second"),
    ]
    assert set(infos[0]) == {"timestamp", "level", "message", "logger", "requestId"}
