"""The built layer, end to end: the local Lambda sandbox runs it with a real function (AWS's
awslambdaric) and freezes it between invocations; a real receiver process records what arrives.

"Delivered before release" is checked the strict way: right after ``invoke()`` returns the
sandbox has frozen the extension (SIGSTOP), so whatever the receiver holds then was sent before
the extension called ``/event/next``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.packaging.layer_helpers import interpreter_params
from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

APP = '''
import json, logging, time
logger = logging.getLogger()
logger.setLevel(logging.DEBUG)
print("init line")

def handler(event, context):
    n = event.get("n", 0)
    for i in range(event.get("lines", 2)):
        print(f"line-{n}-{i}")
    logger.debug(f"debug-{n}")
    logger.info(f"info-{n}")
    logger.warning(f"warning-{n}")
    logger.error(f"error-{n}")
    print(json.dumps({"level": "WARN", "message": f"json-{n}", "k": n}))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("raise"):
        raise ValueError(f"raised-{n}")
    return {"n": n}
'''
CREDENTIAL = "s3cr3t-Cred-value"
# The interpreter the extension runs on in every test of this file, e.g. CI's own Python 3.14:
# E2E_EXTENSION_PYTHON=.cache/python3.14/bin/python3.14. Unset: the launcher's own choice.
EXTENSION_PYTHON = os.environ.get("E2E_EXTENSION_PYTHON", "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def run(
    real_layer: Path, code_dir: Path, receiver: Receiver, tmp_path: Path
) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox running the real layer against ``receiver``; always shut down."""
    made: list[Sandbox] = []

    def start(env: dict[str, str] | None = None, **options: Any) -> Sandbox:
        settings = {
            "HTTP_ENDPOINT": receiver.url,
            "HTTP_LISTENER_PORT": "0",  # the system picks a free port; the subscription names it
            "HTTP_AUTH_TYPE": "bearer",
            "HTTP_AUTH_CREDENTIALS": CREDENTIAL,
            "HTTP_SPILL_DIR": str(tmp_path / "spill"),
            **({"LAMBDA_LOGS_HTTP_PYTHON": EXTENSION_PYTHON} if EXTENSION_PYTHON else {}),
            **(env or {}),
        }
        sandbox = Sandbox(
            real_layer,
            FunctionSpec(handler="app.handler", code_dir=code_dir),
            settings,
            function_name="e2e-fn",
            **options,
        )
        made.append(sandbox)
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        wanted = settings.get("LAMBDA_LOGS_HTTP_PYTHON")
        if wanted:
            assert running_interpreter(sandbox) in (os.path.realpath(wanted), None)
        return sandbox

    yield start
    for sandbox in made:
        sandbox.shutdown()


def running_interpreter(sandbox: Sandbox) -> str | None:
    """The executable the extension process runs (the launcher execs Python), while it runs."""
    pid = sandbox.pids().get("lambda-logs-http")
    if pid is None:
        return None
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except FileNotFoundError:  # exited meanwhile
        return None


def messages(receiver: Receiver) -> list[str]:
    return [str(e["message"]) for e in receiver.entries()]


def all_output(sandbox: Sandbox) -> str:
    return "\n".join(sandbox.extension_output)


def test_registers_and_subscribes_as_documented(run: Callable[..., Sandbox]) -> None:
    sandbox = run()
    (registration,) = sandbox.registrations
    assert registration.name == "lambda-logs-http"
    assert set(registration.events) == {"INVOKE", "SHUTDOWN"}
    assert registration.account_id_feature
    (subscription,) = sandbox.telemetry_subscriptions
    assert subscription.schema_version == "2022-12-13"
    assert set(subscription.types) == {"platform", "function", "extension"}
    assert subscription.buffering == {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25}
    assert subscription.uri.startswith("http://sandbox.localdomain:")


def test_each_invocation_is_delivered_before_it_is_released(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run()
    for n in range(3):
        result = sandbox.invoke({"n": n, "lines": 5})
        assert result.status == "success"
        got = messages(receiver)  # the extension is frozen now: this arrived before release
        assert {f"line-{n}-{i}" for i in range(5)} <= set(got)
        assert {f"info-{n}", f"warning-{n}", f"error-{n}", f"json-{n}"} <= set(got)
        assert f"END RequestId: {result.request_id}" in got
        # Held for one receiver round trip, not for the flush budget.
        assert result.post_runtime_extensions_ms is not None
        assert result.post_runtime_extensions_ms < 400


def test_what_init_logged_is_delivered_before_the_first_invocation_is_released(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    """Pushes that come during init are kept unparsed until the first event: they go out
    first, before that invocation is released."""
    sandbox = run()
    result = sandbox.invoke({"n": 1})
    got = messages(receiver)  # frozen now: this arrived before release
    assert "init line" in got and f"END RequestId: {result.request_id}" in got
    assert got.index("init line") < got.index("line-1-0")


def test_a_shutdown_right_after_init_delivers_what_init_logged(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    """No invocation at all: delivery starts with the SHUTDOWN event, in time for its
    deadline."""
    sandbox = run()
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0 and not shutdown.killed
    assert "init line" in messages(receiver)
    summary = [line for line in sandbox.extension_output if "shutdown summary" in line]
    assert len(summary) == 1 and "dropped=0" in summary[0], sandbox.extension_output


def test_shutdown_delivers_the_last_report_and_prints_a_summary(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run()
    results = [sandbox.invoke({"n": n}) for n in range(2)]
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0 and not shutdown.killed
    reports = [m for m in messages(receiver) if m.startswith("REPORT RequestId:")]
    assert [r.split()[2] for r in reports] == [r.request_id for r in results]
    summary = [line for line in sandbox.extension_output if "shutdown summary" in line]
    assert len(summary) == 1
    assert "dropped=0" in summary[0] and "delivered=" in summary[0]


def test_payload_fields_and_levels(run: Callable[..., Sandbox], receiver: Receiver) -> None:
    sandbox = run(region="eu-west-1", memory_mb=256)
    result = sandbox.invoke({"n": 7})
    sandbox.shutdown()
    requests = receiver.requests()
    body = json.loads(requests[0]["body"])
    assert set(body) == {"logs", "source", "timestamp"} and body["source"] == "aws-lambda-extension"
    by_message = {e["message"]: e for e in receiver.entries()}
    line = by_message["line-7-0"]
    assert line["function_name"] == "e2e-fn" and line["function_version"] == "$LATEST"
    assert line["function_memory_size"] == 256 and line["aws_region"] == "eu-west-1"
    assert line["architecture"] in ("x86_64", "arm64") and line["source"] == "lambda"
    assert line["log_type"] == "function" and line["request_id"] == result.request_id
    levels = {m: by_message[m]["level"] for m in ("debug-7", "info-7", "warning-7", "error-7",
                                                  "json-7", "line-7-0")}
    assert levels == {"debug-7": "DEBUG", "info-7": "INFO", "warning-7": "WARN",
                      "error-7": "ERROR", "json-7": "WARN", "line-7-0": "INFO"}
    report = by_message[next(m for m in by_message if m.startswith("REPORT"))]
    assert report["log_type"] == "platform" and report["record"]["metrics"]["memorySizeMB"] == 256
    assert requests[0]["headers"]["Authorization"] == f"Bearer {CREDENTIAL}"
    assert requests[0]["headers"]["Idempotency-Key"]


def test_json_log_format(run: Callable[..., Sandbox], receiver: Receiver) -> None:
    sandbox = run(log_format="JSON")
    result = sandbox.invoke({"n": 3, "raise": True})
    assert result.status == "error"
    sandbox.shutdown()
    by_message = {e["message"]: e for e in receiver.entries()}
    warning = by_message["warning-3"]
    assert warning["level"] == "WARN" and warning["record"]["logger"] == "root"
    assert warning["request_id"] == result.request_id
    raised = [e for e in receiver.entries() if "raised-3" in e["message"]]
    assert raised and all(e["level"] == "ERROR" for e in raised)


@pytest.mark.parametrize(
    ("settings", "header", "value"),
    [
        ({"HTTP_AUTH_TYPE": "none"}, "Authorization", None),
        ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "user"}, "Authorization",
         "Basic dXNlcjpzM2NyM3QtQ3JlZC12YWx1ZQ=="),
        ({"HTTP_AUTH_TYPE": "bearer"}, "Authorization", f"Bearer {CREDENTIAL}"),
        ({"HTTP_AUTH_TYPE": "apikey"}, "X-API-Key", CREDENTIAL),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_HEADER_NAME": "DD-API-KEY"}, "DD-API-KEY",
         CREDENTIAL),
    ],
)
def test_auth_types(
    run: Callable[..., Sandbox], receiver: Receiver, settings: dict[str, str], header: str,
    value: str | None,
) -> None:
    sandbox = run(settings)
    sandbox.invoke({"n": 1})
    headers = receiver.requests()[0]["headers"]
    assert headers.get(header) == value
    assert CREDENTIAL not in all_output(sandbox) + "\n".join(sandbox.function_output)


def test_test_mode_prints_redacted_payloads_and_sends_nothing(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_TEST_MODE": "true"})
    result = sandbox.invoke({"n": 4})
    assert result.post_runtime_extensions_ms is not None
    sandbox.shutdown()
    assert receiver.requests() == []
    printed = [line for line in sandbox.extension_output if "TEST MODE would POST" in line]
    assert printed and "Authorization': 'Bearer ***'" in printed[0]
    assert any("line-4-0" in line for line in printed)
    assert CREDENTIAL not in all_output(sandbox)
    assert "dropped=0" in all_output(sandbox)


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"HTTP_ENDPOINT": ""}, "HTTP_ENDPOINT"),
        ({"HTTP_AUTH_TYPE": "kerberos"}, "HTTP_AUTH_TYPE"),
        ({"HTTP_AUTH_TYPE": "basic"}, "HTTP_AUTH_USERNAME"),
        ({"HTTP_TIMEOUT_SECONDS": "thirty"}, "HTTP_TIMEOUT_SECONDS"),
        ({"HTTP_ENDPOINT": "ftp://logs.example.com"}, "HTTP_ENDPOINT"),
    ],
)
def test_bad_configuration_leaves_the_function_working(
    run: Callable[..., Sandbox], receiver: Receiver, settings: dict[str, str], variable: str
) -> None:
    sandbox = run(settings)
    results = [sandbox.invoke({"n": n}) for n in range(2)]
    assert [r.response for r in results] == [{"n": 0}, {"n": 1}]
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0
    errors = [line for line in sandbox.extension_output if "[EXTENSION] ERROR" in line]
    assert errors and errors[0].startswith(f"[EXTENSION] ERROR configuration error: {variable}")
    assert "Traceback" not in all_output(sandbox)
    assert receiver.requests() == []
    (registration,) = sandbox.registrations
    assert registration.events == ("SHUTDOWN",)  # a no-op never holds an invocation


def test_strict_configuration_fails_init(
    real_layer: Path, code_dir: Path, receiver: Receiver
) -> None:
    with Sandbox(real_layer, FunctionSpec(handler="app.handler", code_dir=code_dir),
                 {"HTTP_ENDPOINT": "", "HTTP_STRICT_CONFIG": "true"}) as sandbox:
        init = sandbox.start()
        assert not init.ok
        assert any(e.error_type == "Extension.ConfigInvalid" for e in sandbox.errors)
        assert "Traceback" not in all_output(sandbox)


def test_malformed_pushes_are_refused_and_the_listener_keeps_working(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    port = free_port()
    sandbox = run({"HTTP_LISTENER_PORT": str(port)}, freeze=False)  # reachable between invokes

    def post(body: bytes) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/", body=body)
        status = connection.getresponse().status
        connection.close()
        return status

    # Until init has ended (the first event) a push is answered at once and parsed later.
    assert post(b"not json during init") == 200
    sandbox.invoke({"n": 8})
    for body, expected in ((b"not json", 400), (b'{"a":1}', 400), (b"[1,2]", 200)):
        assert post(body) == expected
    result = sandbox.invoke({"n": 9})
    assert f"END RequestId: {result.request_id}" in messages(receiver)
    sandbox.shutdown()
    assert "(malformed_push=3)" in all_output(sandbox)  # the one kept during init counted too


def test_a_slow_receiver_holds_an_invocation_no_longer_than_the_budget(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_FLUSH_BUDGET_MS": "300", "HTTP_TIMEOUT_SECONDS": "5"})
    receiver.script([{"delay": 1.5}])
    slow = sandbox.invoke({"n": 1})
    assert slow.post_runtime_extensions_ms is not None
    assert slow.post_runtime_extensions_ms < 300 + 250
    later = sandbox.invoke({"n": 2})
    sandbox.shutdown()
    got = messages(receiver)
    for n, result in ((1, slow), (2, later)):
        assert f"line-{n}-0" in got and f"END RequestId: {result.request_id}" in got
    assert "released invocation" in all_output(sandbox)


def test_receiver_down_then_up_loses_nothing(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_FLUSH_BUDGET_MS": "200"})
    receiver.script([{"status": 503, "times": 1000}])
    down = [sandbox.invoke({"n": n}) for n in range(3)]
    assert all(r.post_runtime_extensions_ms is not None
               and r.post_runtime_extensions_ms < 200 + 250 for r in down)
    receiver.script([])
    up = sandbox.invoke({"n": 3})
    got = messages(receiver)
    for n, result in enumerate([*down, up]):
        assert f"line-{n}-1" in got and f"END RequestId: {result.request_id}" in got
    sandbox.shutdown()
    assert "dropped=0" in all_output(sandbox)
    entries = [e for e in receiver.entries() if e["log_type"] == "function"]
    assert len({(e["message"], e.get("request_id")) for e in entries}) == len(entries)


def test_a_timed_out_invocation_is_reported_and_delivered(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run(timeout_s=1.0)
    result = sandbox.invoke({"n": 5, "sleep": 3})
    assert result.status == "timeout"
    # The extension got SHUTDOWN (timeout), delivered what it held and exited cleanly.
    assert sandbox.resets and "shutdown summary" in all_output(sandbox)
    after = sandbox.invoke({"n": 6})  # the environment was reset and re-initialised
    assert after.status == "success"
    got = {e["message"]: e for e in receiver.entries()}
    assert "line-5-0" in got
    (timed_out,) = [e for m, e in got.items()
                    if m.startswith(f"END RequestId: {result.request_id}\tStatus: timeout")]
    assert timed_out["level"] == "ERROR"
    (report,) = [e for m, e in got.items() if m.startswith(f"REPORT RequestId: {result.request_id}")]
    assert report["level"] == "ERROR" and report["record"]["status"] == "timeout"
    assert "line-6-0" in got


@pytest.mark.parametrize("python", interpreter_params())
def test_runs_on_every_lambda_python(
    run: Callable[..., Sandbox], receiver: Receiver, python: Any
) -> None:
    sandbox = run({"LAMBDA_LOGS_HTTP_PYTHON": python.path})
    assert running_interpreter(sandbox) == os.path.realpath(python.path)
    result = sandbox.invoke({"n": 1})
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0, all_output(sandbox)
    got = messages(receiver)
    assert "line-1-0" in got and f"REPORT RequestId: {result.request_id}" in " ".join(got)
