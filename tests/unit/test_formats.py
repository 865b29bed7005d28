"""The output formats (``HTTP_FORMAT``): each body read the way its receiver reads it
(``tests.support.vendor_checks``), against the vendor's documented example shape
(``tests/unit/vendor``), with every piece of enrichment written where the format puts it."""

from __future__ import annotations

import calendar
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lambda_logs_http.delivery.batching import Batcher, Framing
from lambda_logs_http.http.compression import gzip_bytes
from lambda_logs_http.records import encoders
from lambda_logs_http.records.encoders.base import Encoder
from lambda_logs_http.records.record import EntryContext, Record
from lambda_logs_http.records.transform import Transformer
from lambda_logs_http.settings import model
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.names import HTTP_FORMAT
from lambda_logs_http.settings.parse import ConfigError
from tests.support import datadog_intake, hec, vendor_checks, vendor_receiver
from tests.support.vendor_checks import BodyRefused

ENV = {"HTTP_ENDPOINT": "https://logs.example.com/ingest"}
VENDOR = Path(__file__).parent / "vendor"
RID = "459921b5-681c-4a96-beb0-81e0aa586026"
XRAY_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
NOW = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
TIME = NOW + ".123Z"
TIME_NS = calendar.timegm(time.strptime(NOW, "%Y-%m-%dT%H:%M:%S")) * 10**9 + 123_000_000


def context(**extra: Any) -> EntryContext:
    values: dict[str, Any] = {
        "account_id": "123456789012", "extension_version": "1.4.0", "service_name": "",
        "instance": "2024/01/15/[$LATEST]abcdef0123456789", "extra_fields": {},
    }  # fmt: skip
    values.update(extra)
    return EntryContext("my-fn", "$LATEST", 256, "eu-west-1", "arm64", **values)


def record(**values: Any) -> Record:
    out = Record()
    out.time, out.level, out.message, out.log_type = TIME, "ERROR", "boom", "function"
    out.event_type = "function"
    for name, value in values.items():
        setattr(out, name, value)
    return out


def encoder(name: str, ctx: EntryContext | None = None) -> Encoder:
    return encoders.encoder_class(name)(ctx or context())


def body_of(enc: Encoder, records: list[Record]) -> bytes:
    framing = Framing.of(enc)
    batcher = Batcher(1_000_000, 10_000, framing)
    for rec in records:
        assert batcher.add(enc.entry(rec), 0.0) is None
    batch = batcher.take()
    assert batch is not None
    body = batch.body()
    assert len(body) == batch.size
    return body


def needs_otlp_proto() -> None:
    pytest.importorskip(
        "opentelemetry.proto",
        reason="opentelemetry-proto (pip install -r requirements-dev.txt) parses OTLP bodies",
    )


# -- the registry and the setting ------------------------------------------------------------


def test_every_format_the_setting_accepts_is_registered() -> None:
    assert tuple(encoders.MODULES) == model.FORMATS
    assert model.FORMATS[0] == encoders.DEFAULT
    for name in model.FORMATS:
        cls = encoders.encoder_class(name)
        assert cls.name == name
        assert cls(context()).entry(record()).isascii()


def test_http_format_defaults_to_seed_and_takes_any_case() -> None:
    assert load(ENV).batching.output_format == "seed"
    assert load({**ENV, HTTP_FORMAT: " OTLP "}).batching.output_format == "otlp"


def test_an_unknown_format_names_the_variable_and_the_valid_values() -> None:
    with pytest.raises(ConfigError) as caught:
        load({**ENV, HTTP_FORMAT: "protobuf"})
    assert caught.value.variable == HTTP_FORMAT
    message = str(caught.value)
    assert message.startswith("HTTP_FORMAT: ")
    assert "'protobuf'" in message
    for name in model.FORMATS:
        assert name in message


# -- ndjson ------------------------------------------------------------------------------------


def test_ndjson_is_one_seed_entry_per_line() -> None:
    nd, seed = encoder("ndjson"), encoder("seed")
    records = [record(), record(message="two\nlines", request_id=RID, trace_id=XRAY_ROOT,
                                cold_start=True, fields={"k": [1, {"x": None}]})]  # fmt: skip
    body = body_of(nd, records)
    assert nd.content_type == "application/x-ndjson"
    values = vendor_checks.ndjson(body)
    assert values == [json.loads(seed.entry(r)) for r in records]
    assert values[1]["message"] == "two\nlines" and values[1]["record"] == {"k": [1, {"x": None}]}
    assert (values[1]["trace_id"], values[1]["cold_start"]) == (XRAY_ROOT, True)
    assert body.count(b"\n") == 2


def test_ndjson_entries_carry_extra_fields_at_top_level() -> None:
    nd = encoder("ndjson", context(extra_fields={"env": "prod", "shard": 3}))
    (value,) = vendor_checks.ndjson(body_of(nd, [record()]))
    assert (value["env"], value["shard"], value["account_id"]) == ("prod", 3, "123456789012")
    assert nd.check_entry(value) == ""


# -- otlp --------------------------------------------------------------------------------------


def test_the_documented_otlp_example_is_what_the_parser_takes() -> None:
    needs_otlp_proto()
    example = json.loads((VENDOR / "otlp_logs_example.json").read_text())
    del example["_source"]
    message = vendor_checks.otlp(json.dumps(example).encode())
    (log_record,) = message.resource_logs[0].scope_logs[0].log_records
    assert log_record.time_unix_nano == 1700000000123000000
    assert log_record.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    with pytest.raises(BodyRefused):  # the strict parser refuses what it does not know
        vendor_checks.otlp(b'{"resourceLogs":[{"resource":{},"bogus":1}]}')


def _otlp_records(body: bytes) -> tuple[dict[str, Any], Any, list[Any]]:
    message = vendor_checks.otlp(body)
    (resource_logs,) = message.resource_logs
    (scope_logs,) = resource_logs.scope_logs
    resource = vendor_checks.otlp_attributes(resource_logs.resource.attributes)
    return resource, scope_logs.scope, list(scope_logs.log_records)


def test_otlp_resource_attributes_follow_the_semantic_conventions() -> None:
    needs_otlp_proto()
    enc = encoder("otlp", context(extra_fields={"deployment.environment.name": "prod",
                                                "shard": 3}))  # fmt: skip
    resource, scope, _ = _otlp_records(body_of(enc, [record()]))
    assert resource == {
        "service.name": "my-fn", "cloud.provider": "aws", "cloud.platform": "aws_lambda",
        "cloud.region": "eu-west-1", "cloud.account.id": "123456789012", "faas.name": "my-fn",
        "faas.version": "$LATEST", "faas.max_memory": 256 * 1024 * 1024,
        "faas.instance": "2024/01/15/[$LATEST]abcdef0123456789", "host.arch": "arm64",
        "deployment.environment.name": "prod", "shard": 3,
    }  # fmt: skip
    assert (scope.name, scope.version) == ("lambda-logs-http", "1.4.0")
    service = _otlp_records(body_of(encoder("otlp", context(service_name="checkout")),
                                    [record()]))[0]  # fmt: skip
    assert service["service.name"] == "checkout" and service["faas.name"] == "my-fn"
    x86 = EntryContext("f", "1", None, "us-east-1", "x86_64")
    resource = _otlp_records(body_of(encoder("otlp", x86), [record()]))[0]
    assert resource["host.arch"] == "amd64" and "faas.max_memory" not in resource


def test_otlp_log_records_carry_times_severity_body_and_the_invocation() -> None:
    needs_otlp_proto()
    enc = encoder("otlp")
    before = time.time_ns()
    plain = record(request_id=RID, trace_id=XRAY_ROOT, span_id=PARENT, cold_start=True,
                   tenant_id="blue")  # fmt: skip
    warn = record(level="WARN", message="careful", log_type="extension", event_type="extension")
    _, _, (first, second) = _otlp_records(body_of(enc, [plain, warn]))
    assert first.time_unix_nano == TIME_NS
    assert before <= first.observed_time_unix_nano <= time.time_ns()
    assert (first.severity_number, first.severity_text) == (17, "ERROR")
    assert vendor_checks.otlp_value(first.body) == "boom"
    assert first.trace_id.hex() == "5759e988bd862e3fe1be46a994272793"
    assert first.span_id.hex() == PARENT
    assert vendor_checks.otlp_attributes(first.attributes) == {
        "faas.invocation_id": RID, "faas.coldstart": True, "aws.lambda.tenant_id": "blue",
        "log.type": "function",
    }  # fmt: skip
    assert (second.severity_number, second.severity_text) == (13, "WARN")
    assert vendor_checks.otlp_attributes(second.attributes) == {"log.type": "extension"}
    assert second.trace_id == b"" and second.span_id == b""


def test_otlp_body_of_a_json_line_is_structure_not_a_string() -> None:
    needs_otlp_proto()
    fields = {"level": "INFO", "msg": "ordered", "order": {"id": 17, "items": ["a", "b"]},
              "ok": True, "ratio": 0.5, "none": None, "big": 1 << 70}  # fmt: skip
    _, _, (log_record,) = _otlp_records(
        body_of(encoder("otlp"), [record(message="ordered", fields=fields)])
    )
    body = vendor_checks.otlp_value(log_record.body)
    assert body == {"message": "ordered", "level": "INFO", "msg": "ordered",
                    "order": {"id": 17, "items": ["a", "b"]}, "ok": True, "ratio": 0.5,
                    "none": None, "big": str(1 << 70)}  # fmt: skip
    own = _otlp_records(body_of(encoder("otlp"), [record(fields={"message": "m", "n": 1})]))[2]
    assert vendor_checks.otlp_value(own[0].body) == {"message": "m", "n": 1}


def test_otlp_report_metrics_are_numeric_attributes() -> None:
    needs_otlp_proto()
    fields = {"requestId": RID, "status": "success",
              "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 256,
                          "maxMemoryUsedMB": 70}}  # fmt: skip
    report = record(level="INFO", message="REPORT ...", log_type="platform",
                    event_type="platform.report", request_id=RID, fields=fields)  # fmt: skip
    _, _, (log_record,) = _otlp_records(body_of(encoder("otlp"), [report]))
    assert vendor_checks.otlp_value(log_record.body) == "REPORT ..."
    attributes = vendor_checks.otlp_attributes(log_record.attributes)
    assert attributes["aws.lambda.event_type"] == "platform.report"
    assert attributes["aws.lambda.metrics.durationMs"] == 12.5
    assert attributes["aws.lambda.metrics.billedDurationMs"] == 13
    assert attributes["aws.lambda.status"] == "success"
    assert attributes["faas.invocation_id"] == RID
    assert "aws.lambda.requestId" not in attributes


def test_otlp_values_strict_json_refuses_are_retried_sanitized() -> None:
    """NaN and a deep object go through the transformer's careful path, and still parse."""
    needs_otlp_proto()
    enc = encoder("otlp")
    transformer = Transformer(context(), encoder=enc)
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"d": deep}
    entries = [
        transformer.encode({"time": TIME, "type": "function",
                            "record": {"message": "m", "x": float("nan")}}),
        transformer.encode({"time": TIME, "type": "function", "record": {"message": "m",
                                                                         "deep": deep}}),
    ]  # fmt: skip
    assert all(entries)
    body = Framing.of(enc).body(entries)  # type: ignore[arg-type]
    message = vendor_checks.otlp(body)
    assert len(message.resource_logs[0].scope_logs[0].log_records) == 2
    assert json_depth(body) < 128  # serde_json's limit, for receivers written in Rust


def json_depth(body: bytes) -> int:
    """The deepest nesting of brackets in a JSON text (none inside its strings here)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in body.decode():
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def test_an_otlp_record_with_an_unparseable_time_gets_now() -> None:
    needs_otlp_proto()
    before = time.time_ns()
    _, _, (log_record,) = _otlp_records(body_of(encoder("otlp"), [record(time="yesterday")]))
    assert before <= log_record.time_unix_nano <= time.time_ns()


def test_no_trace_ids_for_what_is_not_an_xray_trace() -> None:
    needs_otlp_proto()
    bad = [
        record(trace_id="1-zzzzzzzz-bd862e3fe1be46a994272793", span_id=PARENT),
        record(trace_id="1-00000000-000000000000000000000000"),
        record(trace_id="short"),
    ]
    for log_record in _otlp_records(body_of(encoder("otlp"), bad))[2]:
        assert log_record.trace_id == b"" and log_record.span_id == b""


# -- loki --------------------------------------------------------------------------------------


def test_the_documented_loki_example_is_what_the_check_takes() -> None:
    example = json.loads((VENDOR / "loki_push_example.json").read_text())
    del example["_source"]
    lines = vendor_checks.loki(json.dumps(example).encode(), now_ns=1700000000200000000)
    assert [line[2] for line in lines] == ["order placed", "payment failed"]
    assert lines[1][3] == {"trace_id": "0af7651916cd43dd", "user_id": "u-17"}
    with pytest.raises(BodyRefused):
        vendor_checks.loki(b'{"streams":[{"stream":{"bad-name":"x"},"values":[["1","l"]]}]}')


def test_loki_streams_by_a_small_label_set_with_per_line_metadata() -> None:
    enc = encoder("loki", context(extra_fields={"env": "prod", "team.name": "pay"}))
    records = [
        record(request_id=RID, trace_id=XRAY_ROOT, cold_start=True),
        record(level="INFO", message="hello", request_id=RID, trace_id=XRAY_ROOT),
        record(message="again", request_id="other"),
        record(level="INFO", message="START ...", log_type="platform",
               event_type="platform.start", fields={"requestId": RID, "version": "$LATEST"}),
    ]  # fmt: skip
    body = body_of(enc, records)
    document = json.loads(body)
    assert len(document["streams"]) == 3  # ERROR/function twice, INFO/function, INFO/platform
    lines = vendor_checks.loki(body)
    labels, ns, line, metadata = lines[0]
    assert labels == {"service_name": "my-fn", "level": "error", "log_type": "function",
                      "region": "eu-west-1", "env": "prod"}  # fmt: skip
    assert (ns, line) == (TIME_NS, "boom")
    assert metadata == {"request_id": RID, "trace_id": XRAY_ROOT, "cold_start": "true",
                        "account_id": "123456789012", "extension_version": "1.4.0",
                        "team_name": "pay"}  # fmt: skip
    assert [entry[2] for entry in lines] == ["boom", "again", "hello", lines[3][2]]
    assert lines[1][3]["request_id"] == "other"
    platform = json.loads(lines[3][2])
    assert platform == {"message": "START ...", "requestId": RID, "version": "$LATEST"}
    assert lines[3][0]["log_type"] == "platform" and lines[3][0]["level"] == "info"


def test_loki_line_of_a_json_record_is_its_object() -> None:
    enc = encoder("loki", context(service_name="checkout"))
    fields = {"level": "WARN", "message": "slow", "ms": 812}
    ((labels, _, line, _),) = vendor_checks.loki(body_of(enc, [record(fields=fields)]))
    assert json.loads(line) == fields
    assert labels["service_name"] == "checkout"


# -- every format ------------------------------------------------------------------------------

CHECK = {"seed": lambda body: json.loads(body)["logs"], "ndjson": vendor_checks.ndjson,
         "otlp": lambda body: vendor_checks.otlp(body).resource_logs[0].scope_logs[0]
         .log_records, "loki": vendor_checks.loki,
         "elasticsearch": vendor_receiver.read_bulk,
         "splunk_hec": hec.read_events,
         "datadog": datadog_intake.read_logs}  # fmt: skip


@pytest.mark.parametrize("name", model.FORMATS)
def test_gzip_of_every_format_decompresses_to_the_body(name: str) -> None:
    if name == "otlp":
        needs_otlp_proto()
    enc = encoder(name)
    body = body_of(enc, [record(message=f"line {i}", request_id=RID) for i in range(50)])
    wire = gzip_bytes(body, 1)
    assert gzip.decompress(wire) == body
    assert len(CHECK[name](gzip.decompress(wire))) == 50


# -- what the receivers answer -----------------------------------------------------------------


def test_an_otlp_partial_success_counts_the_rejected_records() -> None:
    """OTLP/HTTP specification, "Partial Success": a 200 whose ExportLogsServiceResponse has
    partialSuccess.rejectedLogRecords (an int64: a string in JSON) and an errorMessage."""
    enc = encoder("otlp")
    assert enc.answer_limit(10) > 0
    for accepted in (b"{}", b'{"partialSuccess":null}', b'{"partialSuccess":{}}', b"",
                     b"<html>", b'{"partialSuccess":{"rejectedLogRecords":"0"}}'):  # fmt: skip
        assert enc.read_answer(accepted, 10) is None
    answer = b'{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}'
    report = enc.read_answer(answer, 10)
    assert report is not None
    assert (report.rejected, report.retry) == ([7, 8, 9], [])
    assert report.first_error == "OTLP partial success: too old"
    report = enc.read_answer(b'{"partialSuccess":{"rejectedLogRecords":40}}', 10)
    assert report is not None and report.rejected == list(range(10))


def test_error_answers_are_named_in_the_failure() -> None:
    """OTLP/HTTP: a failure's body is a google.rpc.Status; Loki: one line of text."""
    otlp, loki = encoder("otlp"), encoder("loki")
    status = b'{"code":3,"message":"logRecords[0].traceId: invalid length"}'
    assert otlp.explain(400, status) == "logRecords[0].traceId: invalid length"
    assert otlp.explain(502, b"<html>bad gateway</html>") == ""
    refusal = b"entry for stream '{service_name=\"f\"}' has timestamp too old: 2020-01-01\n"
    assert loki.explain(400, refusal).startswith("entry for stream")
    assert loki.explain(502, b"<html>bad gateway</html>") == ""
