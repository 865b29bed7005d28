"""HTTP_FORMAT=datadog: logs intake v2 arrays, read the way the intake reads them
(``tests/support/datadog_intake``), against Datadog's documented example and limits."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from lambda_logs_http import log
from lambda_logs_http.delivery.batching import Batch, Batcher, Framing
from lambda_logs_http.records.encoders import encoder_class
from lambda_logs_http.records.encoders.datadog import tag
from lambda_logs_http.records.record import EntryContext, Record
from tests.support import datadog_intake as intake
from tests.support import vendor_examples as vendor

CONTEXT = EntryContext("checkout", "$LATEST", 512, "us-east-1", "x86_64",
                       account_id="123456789012", extension_version="1.0.0",
                       service_name="shop", extra_fields={"env": "prod", "team": "a,b c"})


def encoder(context: EntryContext = CONTEXT) -> Any:
    return encoder_class("datadog")(context)


def record(**values: Any) -> Record:
    out = Record()
    out.time, out.level, out.message = "2024-01-15T10:30:00.123Z", "WARN", "careful"
    out.log_type = out.event_type = "function"
    for name, value in values.items():
        setattr(out, name, value)
    return out


def test_the_documented_example_is_read_by_our_intake_reader() -> None:
    (example,) = intake.read_logs(vendor.DD_LOGS_REQUEST)
    assert intake.tags(example) == {"env": "staging", "version": "5.1"}
    assert (intake.MAX_PAYLOAD_BYTES, intake.MAX_LOG_BYTES, intake.MAX_ENTRIES) == (
        vendor.DD_MAX_PAYLOAD_BYTES, vendor.DD_MAX_LOG_BYTES, vendor.DD_MAX_ENTRIES)


def test_a_log_has_the_documented_reserved_attributes_and_the_invocation() -> None:
    entry = encoder().entry(record(request_id="r-1", cold_start=True, tenant_id="t-1",
                                   trace_id="1-5759e988-bd862e3fe1be46a994272793"))
    (got,) = intake.read_logs(("[" + entry + "]").encode())
    example = json.loads(vendor.DD_LOGS_REQUEST)[0]
    assert example.keys() <= got.keys()  # every attribute the example has, ours has
    assert got == {
        "ddsource": "lambda",
        "ddtags": "functionname:checkout,executedversion:_LATEST,region:us-east-1,"
                  "account_id:123456789012,memorysize:512,architecture:x86_64,"
                  "extension_version:1.0.0,env:prod,team:a_b_c",
        "hostname": "checkout", "service": "shop", "message": "careful", "status": "warning",
        "timestamp": 1705314600123,
        "lambda": {"log_type": "function", "request_id": "r-1", "tenant_id": "t-1",
                   "trace_id": "1-5759e988-bd862e3fe1be46a994272793", "cold_start": True},
    }
    assert encoder().check_entry(got) == ""


def test_tags_never_hold_a_comma() -> None:
    assert tag("a,b c/d:e.f-g_h") == "a_b_c/d:e.f-g_h"


@pytest.mark.parametrize(("level", "status"), [("TRACE", "debug"), ("DEBUG", "debug"),
                                               ("INFO", "info"), ("WARN", "warning"),
                                               ("ERROR", "error"), ("FATAL", "critical")])
def test_levels_are_datadogs_status_words(level: str, status: str) -> None:
    assert json.loads(encoder().entry(record(level=level)))["status"] == status


def test_a_structured_record_is_attributes_not_a_string() -> None:
    got = json.loads(encoder().entry(record(fields={"cart": {"items": 3}, "msg": "x"})))
    assert got["record"] == {"cart": {"items": 3}, "msg": "x"}
    assert got["lambda"] == {"log_type": "function"}


def test_batches_are_clamped_to_datadogs_limits_and_say_so() -> None:
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        batcher = Batcher(16 << 20, 10_000, Framing.of(encoder()))
    finally:
        import sys

        log.set_stream(sys.stdout)
    assert (batcher.max_bytes, batcher.max_records) == (5_000_000, 1000)
    assert "HTTP_MAX_BATCH_BYTES to 5000000 and HTTP_MAX_BATCH_RECORDS to 1000" in stream.getvalue()
    assert Batcher(1_000_000, 500, Framing.of(encoder())).max_records == 500  # lower: kept


def test_a_full_batch_is_what_the_intake_takes() -> None:
    enc = encoder()
    batcher = Batcher(16 << 20, 10_000, Framing.of(enc))
    full = None
    for n in range(1001):
        full = batcher.add(enc.entry(record(message=f"line {n}")), 0.0) or full
    assert full is not None and len(full) == 1000
    assert len(intake.read_logs(full.body())) == 1000


def test_a_log_above_1_mb_is_cut_below_it() -> None:
    enc = encoder()
    batcher = Batcher(5_000_000, 1000, Framing.of(enc))
    batcher.add(enc.entry(record(message="z" * 1_500_000)), 0.0)
    batch = batcher.take()
    assert batch is not None and batcher.truncated == 1
    (got,) = intake.read_logs(batch.body())
    assert len(batch.entries[0]) <= 1_000_000 and "truncated by lambda-logs-http" in got["message"]


def test_documented_failures_are_named() -> None:
    enc = encoder()
    meaning = enc.explain(403, vendor.DD_FORBIDDEN)
    assert "HTTP_AUTH_HEADER_NAME=DD-API-KEY" in meaning and "API key is invalid" in meaning
    assert enc.explain(413, b"") == "payload too large: above 5 MB uncompressed"
    assert enc.explain(400, b"not json").startswith("bad request")
    assert enc.explain(502, b"") == ""


def test_the_body_is_an_array_counted_exactly() -> None:
    enc = encoder()
    batch = Batch(0.0, [enc.entry(record(message=f"m{i}")) for i in range(3)], Framing.of(enc))
    assert len(batch.body()) == batch.size
    assert [g["message"] for g in intake.read_logs(batch.body())] == ["m0", "m1", "m2"]


@pytest.mark.parametrize(("stamp", "millis"), [
    ("2024-01-15T10:30:00.123Z", 1705314600123), ("2024-01-15T10:30:00Z", 1705314600000),
    ("2024-01-15T12:30:00.123456+02:00", 1705314600123), ("1970-01-01T00:00:00.007Z", 7),
    ("1969-12-31T23:59:58.500Z", -1500),
])
def test_the_timestamp_is_epoch_milliseconds(stamp: str, millis: int) -> None:
    assert json.loads(encoder().entry(record(time=stamp)))["timestamp"] == millis
