"""Extensions API: registration, its errors, what extensions see, init failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.sandbox_helpers import api_call, write_function
from tools.lambda_sandbox import FunctionSpec

pytestmark = pytest.mark.timeout(30)

REGISTER = "/2020-01-01/extension/register"
NEXT = "/2020-01-01/extension/event/next"

ENV_HANDLER = """
import os

def handler(event, context):
    return {k: v for k, v in os.environ.items()}
"""


def test_register_answers_function_metadata_and_account_id(layer, sandbox_factory):
    layer.add("with-account", accept_account_id=True, subscribe=None)
    layer.add("without-account", subscribe=None)
    sb = sandbox_factory(layer.root, function_name="fn-under-test")
    assert sb.start().ok

    with_account = layer.records("with-account", "register")[0]
    assert with_account["status"] == 200
    assert with_account["body"] == {"functionName": "fn-under-test",
                                    "functionVersion": "$LATEST",
                                    "handler": "app.handler",
                                    "accountId": "123456789012"}
    assert "accountId" not in layer.records("without-account", "register")[0]["body"]
    assert sorted(r.name for r in sb.registrations) == ["with-account", "without-account"]
    assert len({r.extension_id for r in sb.registrations}) == 2


def test_extension_and_function_environments(layer, sandbox_factory, tmp_path):
    layer.add("env-dump", subscribe=None)
    code = write_function(tmp_path / "fn", ENV_HANDLER)
    sb = sandbox_factory(layer.root, FunctionSpec(code_dir=code), {"USER_SETTING": "42"},
                         memory_mb=256, function_name="envy", region="eu-west-1")
    result = sb.invoke()
    assert result.status == "success"

    ext_env = layer.records("env-dump", "register")[0]["env"]
    fn_env = result.response
    for env in (ext_env, fn_env):
        assert env["AWS_LAMBDA_RUNTIME_API"] == sb.runtime_api
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == "envy"
        assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
        assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert env["AWS_LAMBDA_LOG_FORMAT"] == "Text"
        assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert fn_env["USER_SETTING"] == "42"
    assert fn_env["_HANDLER"] == "app.handler"
    assert fn_env["LAMBDA_TASK_ROOT"] == str(code)
    assert "_HANDLER" not in ext_env and "LAMBDA_TASK_ROOT" not in ext_env
    assert "_LAMBDA_TELEMETRY_LOG_FD" not in fn_env  # awslambdaric consumes it


def test_reserved_variables_are_refused(layer):
    from tools.lambda_sandbox import Sandbox

    with pytest.raises(ValueError, match="AWS_REGION"):
        Sandbox(layer.root, env={"AWS_REGION": "x"})


def test_registration_errors(layer, sandbox_factory):
    layer.add(
        "picky",
        subscribe=None,
        register_attempts=[
            {"name": "", "events": ["INVOKE"]},
            {"name": "not-an-executable", "events": ["INVOKE"]},
            {"events": ["INVOKE", "BOGUS"]},
            {"body": "this is not json"},
        ],
        init_calls=[{"method": "POST", "path": REGISTER, "body": {"events": ["INVOKE"]},
                     "headers": {"Lambda-Extension-Name": "picky"}}],
        invoke_calls=[
            {"method": "POST", "path": REGISTER, "body": {"events": ["INVOKE"]},
             "headers": {"Lambda-Extension-Name": "latecomer"}},
        ],
    )
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    assert sb.invoke().status == "success"

    attempts = [(r["status"], r["body"]["errorType"]) for r in
                layer.records("picky", "register_attempt")]
    assert attempts == [
        (403, "Extension.InvalidExtensionName"),
        (403, "Extension.InvalidExtensionName"),
        (403, "Extension.InvalidEventType"),
        (403, "InvalidRequestFormat"),
    ]
    duplicate, late = [(r["status"], r["body"]["errorType"]) for r in
                       layer.records("picky", "call")]
    assert duplicate == (403, "Extension.InvalidExtensionState")
    assert late == (403, "Extension.RegistrationClosed")
    assert all("errorMessage" in r["body"] for r in layer.records("picky", "register_attempt"))


def test_identifier_errors(sandbox_factory):
    sb = sandbox_factory()
    assert api_call(sb.runtime_api, "GET", NEXT)[1]["errorType"] == \
        "Extension.MissingExtensionIdentifier"
    status, body = api_call(sb.runtime_api, "GET", NEXT,
                            headers={"Lambda-Extension-Identifier": "nope"})
    assert (status, body["errorType"]) == (403, "Extension.InvalidExtensionIdentifier")
    status, body = api_call(sb.runtime_api, "GET", NEXT, headers={
        "Lambda-Extension-Identifier": "6d3c6b2c-0a3a-4f54-9b43-1d8f0f2f4a51"})
    assert (status, body["errorType"]) == (403, "Extension.UnknownExtensionIdentifier")


def test_init_error_fails_init(layer, sandbox_factory):
    layer.add("bad-config", subscribe=None, init_error="Extension.ConfigInvalid")
    sb = sandbox_factory(layer.root)
    init = sb.start()
    assert not init.ok
    assert init.error["errorType"] == "Extension.InitError"
    assert init.error["extensionErrorType"] == "Extension.ConfigInvalid"
    assert layer.records("bad-config", "init_error")[0]["status"] == 202
    reported = [e for e in sb.errors if e.endpoint == "init/error"]
    assert reported[0].name == "bad-config"
    assert reported[0].error_type == "Extension.ConfigInvalid"
    assert reported[0].body["errorMessage"] == "bad config"
    statuses = [e["record"]["status"] for e in sb.telemetry_events
                if e["type"] == "platform.initReport"]
    assert statuses == ["failure"]


def test_extension_exiting_during_init_fails_init(layer, sandbox_factory):
    layer.add("quitter", exit_before_register=3)
    sb = sandbox_factory(layer.root)
    init = sb.start()
    assert not init.ok
    assert init.error["errorType"] == "Extension.Crash"
    assert "exit status 3" in init.error["errorMessage"]
    # The next invoke initialises again (and fails again, the layer is still broken).
    assert sb.invoke().status == "failure"
    assert len(sb.init_results) == 2


def test_init_times_out(layer, sandbox_factory):
    layer.add("sleepy", subscribe=None, sleep_before_register=5)
    sb = sandbox_factory(layer.root, init_timeout_s=0.5)
    init = sb.start()
    assert not init.ok
    assert init.error["errorType"] == "Sandbox.Timedout"
    assert 450 <= init.duration_ms < 2000
    assert sb.resets[-1].killed == ["sleepy"]


def test_extensions_start_before_runtime_and_registration_gates_it(layer, sandbox_factory):
    layer.add("slow-register", subscribe=None, sleep_before_register=0.3)
    sb = sandbox_factory(layer.root)
    init = sb.start()
    assert init.ok
    assert init.extensions_registered_ms >= 300
    # The runtime only started after the registration, so it became ready after it.
    assert init.runtime_ready_ms > init.extensions_registered_ms
    assert init.extensions_registered_ms <= init.extensions_ready_ms <= init.duration_ms


def test_non_executable_files_are_ignored(layer, sandbox_factory):
    (Path(layer.root) / "extensions" / "README").write_text("not an extension")
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    assert sb.registrations == []


def test_runtime_init_error_fails_init(sandbox_factory, tmp_path):
    code = write_function(tmp_path / "fn", "import no_such_module\n")
    sb = sandbox_factory(function=FunctionSpec(code_dir=code))
    init = sb.start()
    assert not init.ok
    assert init.error["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in init.error["errorMessage"]
    [reported] = [e for e in sb.errors if e.endpoint == "init/error"]
    assert reported.source == "runtime"
    [report] = [e["record"] for e in sb.telemetry_events if e["type"] == "platform.initReport"]
    assert (report["status"], report["errorType"]) == ("error", "Runtime.ImportModuleError")
