"""Function and extension log records, Text and JSON, with the real awslambdaric."""

from __future__ import annotations

import sys

import pytest

from tests.sandbox.sandbox_helpers import events_of, write_function
from tools.lambda_sandbox import FunctionSpec

pytestmark = pytest.mark.timeout(30)

BOOTSTRAP = '''
import json, os, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
print("custom runtime up", flush=True)
while True:
    with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    print(json.dumps({"level": "WARN", "message": "structured", "requestId": rid}), flush=True)
    print("plain text", flush=True)
    body = json.dumps({"echo": event}).encode()
    urllib.request.urlopen(urllib.request.Request(
        f"http://{api}/2018-06-01/runtime/invocation/{rid}/response", data=body,
        method="POST")).read()
'''


def _function_records(sb, request_id):
    records = [e["record"] for e in events_of(sb.telemetry_events, "function")]
    start = next(i for i, e in enumerate(sb.telemetry_events)
                 if e["type"] == "platform.start" and e["record"]["requestId"] == request_id)
    done = next(i for i, e in enumerate(sb.telemetry_events)
                if e["type"] == "platform.runtimeDone"
                and e["record"]["requestId"] == request_id)
    window = sb.telemetry_events[start:done]
    return [e["record"] for e in window if e["type"] == "function"], records


def test_text_format_records_are_raw_strings(sandbox_factory):
    sb = sandbox_factory(log_format="Text")
    result = sb.invoke({"raise": True})
    records, _ = _function_records(sb, result.request_id)
    assert all(isinstance(r, str) for r in records)
    info = [r for r in records if r.startswith("[INFO]\t")]
    assert info == [f"[INFO]\t{info[0].split(chr(9))[1]}\t{result.request_id}\tan info message\n"]
    assert info[0].split("\t")[1].endswith("Z")
    assert "a JSON-looking line" in "".join(records)  # printed JSON stays a string in Text
    # logger.exception: one record (one telemetry-fd frame), traceback included.
    [exc] = [r for r in records if "an exception with its traceback" in r]
    assert exc.startswith("[ERROR]\t") and "Traceback (most recent call last):" in exc
    assert "KeyError: 'missing'" in exc
    # The unhandled error, as awslambdaric logs it: one record, lines joined by newlines.
    [unhandled] = [r for r in records if r.startswith("[ERROR] RuntimeError:")]
    assert "\nTraceback (most recent call last):\n" in unhandled
    assert "handling request" in sb.function_output[1]


def test_json_format_records_are_objects(sandbox_factory):
    sb = sandbox_factory(log_format="JSON")
    result = sb.invoke({"raise": True})
    records, _ = _function_records(sb, result.request_id)
    objects = [r for r in records if isinstance(r, dict)]
    strings = [r for r in records if isinstance(r, str)]
    info = next(r for r in objects if r.get("message") == "an info message")
    assert info["level"] == "INFO" and info["logger"] == "root"
    assert info["requestId"] == result.request_id and info["timestamp"].endswith("Z")
    # AWS_LAMBDA_LOG_LEVEL defaults to INFO with JSON: no debug record.
    assert not any(r.get("level") == "DEBUG" for r in objects)
    exc = next(r for r in objects if r.get("message") == "an exception with its traceback")
    assert exc["errorType"] == "KeyError" and exc["stackTrace"] and "location" in exc
    unhandled = next(r for r in objects if r.get("errorType") == "RuntimeError")
    assert unhandled["level"] == "ERROR"
    assert unhandled["errorMessage"] == "the sample function was asked to raise"
    # print(): plain text stays a string, a printed JSON object becomes an object.
    assert f"handling request {result.request_id}\n" in strings
    assert {"level": "INFO", "message": "a JSON-looking line", "n": 1} in objects


def test_json_log_level_is_honoured(sandbox_factory):
    sb = sandbox_factory(log_format="JSON", log_level="DEBUG")
    result = sb.invoke()
    records, _ = _function_records(sb, result.request_id)
    assert any(isinstance(r, dict) and r.get("level") == "DEBUG" for r in records)


def test_stdout_only_runtime_splits_tracebacks_into_lines(sandbox_factory):
    # Without the telemetry fd (as under the plain emulator) awslambdaric logs to stdout, and
    # every line of a traceback becomes its own record.
    sb = sandbox_factory(function=FunctionSpec(telemetry_log_fd=False), log_format="Text")
    result = sb.invoke()
    records, _ = _function_records(sb, result.request_id)
    assert "Traceback (most recent call last):\n" in records
    assert all(r.count("\n") <= 1 for r in records)


def test_custom_runtime_command(tmp_path, sandbox_factory):
    code = write_function(tmp_path / "fn", BOOTSTRAP, module="bootstrap")
    spec = FunctionSpec(command=[sys.executable, str(code / "bootstrap.py")], code_dir=code)
    sb = sandbox_factory(function=spec, log_format="JSON")
    result = sb.invoke({"n": 7})
    assert result.status == "success" and result.response == {"echo": {"n": 7}}
    records, _ = _function_records(sb, result.request_id)
    assert records == [{"level": "WARN", "message": "structured",
                        "requestId": result.request_id}, "plain text\n"]


def test_extension_lines_are_extension_records(layer, sandbox_factory):
    layer.add("chatty", subscribe=None)
    sb = sandbox_factory(layer.root)
    result = sb.invoke()
    records = [e["record"] for e in events_of(sb.telemetry_events, "extension")]
    assert f"chatty: INVOKE {result.request_id}\n" in records
    assert f"chatty: INVOKE {result.request_id}" in sb.extension_output
    sources = {line.source for line in sb.output}
    assert sources == {"chatty", "function"}


def test_init_output_is_delivered_to_late_subscribers(layer, sandbox_factory):
    layer.add("late", sleep_before_register=0.0)
    sb = sandbox_factory(layer.root)
    assert sb.start().ok
    sb.shutdown()
    events = layer.telemetry("late")
    assert events[0]["type"] == "platform.initStart"
    assert "late: starting\n" in [e["record"] for e in events if e["type"] == "extension"]
    assert "sample function: module loaded (init phase)\n" in [
        e["record"] for e in events if e["type"] == "function"]
