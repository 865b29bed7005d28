"""The built layer in the sandbox, sending in the elasticsearch, splunk_hec and datadog formats
to receivers that read each body the way the vendor's server does (``vendor_receiver``):
Elasticsearch's ``_bulk`` (answering one documented partial failure), Splunk's HTTP Event
Collector, Datadog's logs intake — each with its own authentication header.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.e2e.test_extension import APP, EXTENSION_PYTHON, all_output
from tests.support.vendor_receiver import VendorReceiver
from tools.lambda_sandbox import FunctionSpec, Sandbox

SECRET = "e2e-Secret-9f8e7d"
AUTH = {
    # Elasticsearch's API keys: Authorization: ApiKey <base64 id:key>.
    "elasticsearch": {"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_HEADER_NAME": "Authorization",
                      "HTTP_AUTH_CREDENTIALS": f"ApiKey {SECRET}"},
    "splunk_hec": {"HTTP_AUTH_TYPE": "splunk", "HTTP_AUTH_CREDENTIALS": SECRET},
    "datadog": {"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_HEADER_NAME": "DD-API-KEY",
                "HTTP_AUTH_CREDENTIALS": SECRET},
}


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def run(real_layer: Path, code_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def start(receiver: VendorReceiver, env: dict[str, str] | None = None) -> Sandbox:
        settings = {
            "HTTP_ENDPOINT": receiver.url,
            "HTTP_FORMAT": receiver.vendor,
            "HTTP_LISTENER_PORT": "0",
            "HTTP_SPILL_DIR": str(tmp_path / "spill"),
            **AUTH[receiver.vendor],
            **({"LAMBDA_LOGS_HTTP_PYTHON": EXTENSION_PYTHON} if EXTENSION_PYTHON else {}),
            **(env or {}),
        }
        sandbox = Sandbox(real_layer, FunctionSpec(handler="app.handler", code_dir=code_dir),
                          settings, function_name="e2e-fn")
        made.append(sandbox)
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        return sandbox

    yield start
    for sandbox in made:
        sandbox.shutdown()


def message_of(vendor: str, document: dict[str, Any]) -> str:
    if vendor == "splunk_hec":
        event = document["event"]
        return str(event if isinstance(event, str) else event["message"])
    return str(document["message"])


def summary(sandbox: Sandbox) -> str:
    (line,) = [x for x in all_output(sandbox).splitlines() if "shutdown summary:" in x]
    return line


@pytest.mark.timeout(90)
@pytest.mark.parametrize("vendor", ["elasticsearch", "splunk_hec", "datadog"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_each_vendor_receives_every_record_structured(
    run: Callable[..., Sandbox], tmp_path: Path, vendor: str, compression: str
) -> None:
    with VendorReceiver(tmp_path, vendor, SECRET) as receiver:
        sandbox = run(receiver, {"HTTP_COMPRESSION": compression})
        result = sandbox.invoke({"n": 1})
        assert result.status == "success"
        sandbox.shutdown()
        assert receiver.problems() == []
        documents = receiver.documents()
        got = [message_of(vendor, d) for d in documents]
        assert {"line-1-0", "line-1-1", "json-1", f"END RequestId: {result.request_id}"} <= set(got)
        assert any(m.startswith(f"REPORT RequestId: {result.request_id}") for m in got)
        (as_json,) = [d for d in documents if message_of(vendor, d) == "json-1"]
        warning = next(d for d in documents if message_of(vendor, d).endswith("warning-1"))
        report = next(d for d in documents if message_of(vendor, d).startswith("REPORT"))
        if vendor == "elasticsearch":
            assert as_json["record"]["k"] == 1 and as_json["log.level"] == "warn"
            assert warning["log.level"] == "warn" and warning["faas.name"] == "e2e-fn"
            assert warning["faas.execution"] == result.request_id
            assert isinstance(report["record"]["metrics"]["durationMs"], (int, float))
        elif vendor == "splunk_hec":
            assert as_json["event"]["k"] == 1 and as_json["fields"]["level"] == "WARN"
            assert warning["fields"]["request_id"] == result.request_id
            assert isinstance(report["event"]["metrics"]["durationMs"], (int, float))
            assert isinstance(warning["time"], float) and warning["sourcetype"] == "aws:lambda"
        else:
            assert as_json["record"]["k"] == 1 and as_json["status"] == "warning"
            assert warning["lambda"]["request_id"] == result.request_id
            assert "functionname:e2e-fn" in warning["ddtags"].split(",")
            assert isinstance(report["record"]["metrics"]["durationMs"], (int, float))
        requests = receiver.requests()
        assert all((r["headers"].get("Content-Encoding") == "gzip") == (compression == "gzip")
                   for r in requests)
        assert "dropped=0" in summary(sandbox)
        assert SECRET not in all_output(sandbox)


@pytest.mark.timeout(90)
def test_a_bulk_partial_failure_retries_the_refused_for_now_and_counts_the_refused_for_good(
    run: Callable[..., Sandbox], tmp_path: Path
) -> None:
    with VendorReceiver(tmp_path, "elasticsearch", SECRET, bulk_fail_first=True) as receiver:
        sandbox = run(receiver)
        result = sandbox.invoke({"n": 2})
        assert result.status == "success"
        sandbox.invoke({"n": 3})
        sandbox.shutdown()
        requests = receiver.requests()
        assert receiver.problems() == []
        first = requests[0]
        assert "filter_path=" in first["path"]
        refused_for_now = message_of("elasticsearch", first["documents"][0])
        refused_for_good = message_of("elasticsearch", first["documents"][1])
        later = [message_of("elasticsearch", d) for r in requests[1:] for d in r["documents"]]
        assert later.count(refused_for_now) == 1  # sent again, once
        assert refused_for_good not in later  # never sent again
        assert "LOGS_DROPPED lambda-logs-http dropped 1 records: bulk_rejected" in later
        line = summary(sandbox)
        assert "bulk_rejected=1" in line and "dropped=1" in line
        output = all_output(sandbox)
        assert "document_parsing_exception" in output and "es_rejected_execution_exception" in output
        assert SECRET not in output
