"""Each output format end to end: the built layer in the local sandbox, a real function
(awslambdaric), and the format's receiver — a real one where it installs here (``otlp``:
rotel, an OpenTelemetry collector), else a capture receiver that reads the body as the
vendor's server does and answers 400 what it would refuse (``tests.support.vendor_checks``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.checking_receiver import CheckingReceiver
from tests.support.process import wait_until
from tests.support.rotel import Rotel
from tests.support.vendor_checks import loki
from tools.lambda_sandbox import FunctionSpec, Sandbox

APP = '''
import json, logging, os
logger = logging.getLogger()
logger.setLevel(logging.DEBUG)

def handler(event, context):
    n = event["n"]
    print("TRACE " + os.environ.get("_X_AMZN_TRACE_ID", ""))
    print(f"plain-{n}")
    logger.debug(f"debug-{n}")
    logger.warning(f"warning-{n}")
    logger.error(f"error-{n}")
    print(json.dumps({"level": "WARN", "message": f"json-{n}", "order": {"id": n}}))
    return {"n": n}
'''
INVOCATIONS = 2
WAIT_SECONDS = 15.0
SEVERITIES = {"plain": ("INFO", 9), "debug": ("DEBUG", 5), "warning": ("WARN", 13),
              "error": ("ERROR", 17), "json": ("WARN", 13)}  # fmt: skip


def run_sandbox(layer: Path, directory: Path, settings: dict[str, str]) -> list[Any]:
    """Invoke the function ``INVOCATIONS`` times with ``settings``; shut down; the results."""
    code = directory / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    sandbox = Sandbox(
        layer,
        FunctionSpec(handler="app.handler", code_dir=code),
        {"HTTP_LISTENER_PORT": "0", "HTTP_SPILL_DIR": str(directory / "spill"), **settings},
        function_name="formats-fn",
        memory_mb=256,
        region="eu-west-1",
    )
    try:
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        results = [sandbox.invoke({"n": n}) for n in range(INVOCATIONS)]
        assert all(r.status == "success" for r in results), results
    finally:
        sandbox.shutdown()
    output = "\n".join(sandbox.extension_output)
    assert "[EXTENSION] ERROR" not in output, output
    return results


# -- otlp against rotel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def otlp_delivery(
    real_layer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[dict[str, Any]], list[Any]]]:
    directory = tmp_path_factory.mktemp("otlp-e2e")
    with Rotel(directory) as collector:
        results = run_sandbox(real_layer, directory,
                              {"HTTP_ENDPOINT": collector.url, "HTTP_FORMAT": "otlp"})  # fmt: skip
        wanted = INVOCATIONS * len(SEVERITIES)

        def function_records() -> list[dict[str, Any]]:
            return [r for r in collector.records()
                    if r["attributes"].get("log.type") == "Str(function)"]  # fmt: skip

        wait_until(lambda: len(function_records()) >= wanted + INVOCATIONS, WAIT_SECONDS)
        yield collector.records(), results


def test_otlp_rotel_accepts_every_record_with_its_severity_body_and_resource(
    otlp_delivery: tuple[list[dict[str, Any]], list[Any]],
) -> None:
    records, results = otlp_delivery
    assert records, "rotel printed no log record"
    by_body = {r["Body"]: r for r in records}
    for n, result in enumerate(results):
        for kind, (text, number) in SEVERITIES.items():
            body = (f"Map(level:Str(WARN), message:Str(json-{n}), order:Map(id:Int({n})))"
                    if kind == "json" else f"Str({kind}-{n})")  # fmt: skip
            found = by_body.get(body)
            assert found is not None, (body, sorted(by_body)[:40])
            assert found["SeverityText"] == text
            assert found["SeverityNumber"].endswith(f"({number})")
            assert found["attributes"]["faas.invocation_id"] == f"Str({result.request_id})"
            assert found["attributes"]["log.type"] == "Str(function)"
            assert int(found["Timestamp"]) > 1_600_000_000 * 10**9
    resource = records[0]["resource"]
    assert resource["service.name"] == "Str(formats-fn)"
    assert resource["faas.name"] == "Str(formats-fn)"
    assert resource["faas.version"] == "Str($LATEST)"
    assert resource["faas.max_memory"] == f"Int({256 * 1024 * 1024})"
    assert resource["cloud.provider"] == "Str(aws)"
    assert resource["cloud.platform"] == "Str(aws_lambda)"
    assert resource["cloud.region"] == "Str(eu-west-1)"
    assert resource["host.arch"] in ("Str(amd64)", "Str(arm64)")
    assert resource["cloud.account.id"] == "Str(123456789012)"  # the sandbox's account
    reports = [r for r in records if r["attributes"].get("aws.lambda.event_type")
               == "Str(platform.report)"]  # fmt: skip
    assert len(reports) == INVOCATIONS
    assert reports[0]["attributes"]["aws.lambda.metrics.durationMs"].startswith("Double(")


def test_otlp_records_carry_the_invocations_xray_trace(
    otlp_delivery: tuple[list[dict[str, Any]], list[Any]],
) -> None:
    records, _ = otlp_delivery
    roots = {}  # the function's own view of its trace header, by request
    for record in records:
        body = record["Body"]
        if body.startswith("Str(TRACE Root="):
            header = dict(part.split("=", 1) for part in body[4:-1].split(" ", 1)[1].split(";"))
            root = header["Root"]
            roots[record["attributes"]["faas.invocation_id"]] = (
                root[2:10] + root[11:], header["Parent"]
            )  # fmt: skip
    assert len(roots) == INVOCATIONS
    function = [r for r in records if r["attributes"].get("log.type") == "Str(function)"]
    assert function
    for record in function:
        trace_id, parent = roots[record["attributes"]["faas.invocation_id"]]
        assert record.get("Trace ID") == trace_id
        assert record.get("Span ID") == parent  # the X-Ray Parent, 16 hex digits


# -- loki against a capture receiver that reads pushes as Loki does -------------------------


def test_loki_pushes_are_what_a_loki_distributor_takes(
    real_layer: Path, tmp_path: Path
) -> None:
    with CheckingReceiver(tmp_path, body_check="loki") as receiver:
        url = receiver.url.replace("/ingest", "/loki/api/v1/push")
        results = run_sandbox(real_layer, tmp_path, {"HTTP_ENDPOINT": url, "HTTP_FORMAT": "loki",
                                                     "HTTP_COMPRESSION": "gzip"})  # fmt: skip
        requests = receiver.requests()
    assert requests and not [r for r in requests if not r["accepted"]], requests
    assert all(r["headers"].get("Content-Encoding") == "gzip" for r in requests)
    assert all(r["headers"].get("Content-Type") == "application/json" for r in requests)
    lines = [line for r in requests for line in loki(r["body"].encode())]
    streams = {json.dumps(labels, sort_keys=True) for labels, _, _, _ in lines}
    assert len(streams) <= 18  # a fixed label set, never a stream per request
    by_line = {line: (labels, metadata) for labels, _, line, metadata in lines}
    for n, result in enumerate(results):
        labels, metadata = by_line[f"error-{n}"]
        assert labels == {"service_name": "formats-fn", "level": "error",
                          "log_type": "function", "region": "eu-west-1"}  # fmt: skip
        assert metadata["request_id"] == result.request_id
        json_line = next(line for line in by_line if line.startswith("{") and f"json-{n}" in line)
        assert json.loads(json_line) == {"level": "WARN", "message": f"json-{n}",
                                         "order": {"id": n}}  # fmt: skip
        assert by_line[json_line][0]["level"] == "warn"
    assert any(labels["log_type"] == "platform" for labels, _, _, _ in lines)


# -- ndjson against a capture receiver that reads it line by line --------------------------


def test_ndjson_lines_are_the_seed_entries(real_layer: Path, tmp_path: Path) -> None:
    with CheckingReceiver(tmp_path, body_check="ndjson") as receiver:
        results = run_sandbox(real_layer, tmp_path, {"HTTP_ENDPOINT": receiver.url,
                                                     "HTTP_FORMAT": "ndjson"})  # fmt: skip
        requests = receiver.requests()
    assert requests and all(r["accepted"] for r in requests), requests
    assert all(r["headers"].get("Content-Type") == "application/x-ndjson" for r in requests)
    entries = [json.loads(line) for r in requests for line in r["body"].splitlines()]
    by_message = {e["message"]: e for e in entries}
    for n, result in enumerate(results):
        entry = by_message[f"error-{n}"]
        assert (entry["level"], entry["request_id"]) == ("ERROR", result.request_id)
        assert entry["function_name"] == "formats-fn" and entry["log_type"] == "function"
        assert by_message[f"json-{n}"]["record"] == {"level": "WARN", "message": f"json-{n}",
                                                      "order": {"id": n}}  # fmt: skip
