"""HTTP_FORMAT=splunk_hec: HEC events, read the way the HTTP Event Collector reads them
(``tests/support/hec``), checked against Splunk's documented examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_logs_http.delivery.batching import Batch, Framing
from lambda_logs_http.http.result import answered
from lambda_logs_http.records.encoders import encoder_class
from lambda_logs_http.records.record import EntryContext, Record
from tests.support import hec
from tests.support import vendor_examples as vendor

CONTEXT = EntryContext("orders", "12", 1024, "ap-south-1", "arm64", account_id="123456789012",
                       extension_version="2.0.0", instance="2024/01/15/[12]f00",
                       extra_fields={"team": "pay", "tier": 2, "beta": True})


def encoder(context: EntryContext = CONTEXT) -> Any:
    return encoder_class("splunk_hec")(context)


def record(**values: Any) -> Record:
    out = Record()
    out.time, out.level, out.message = "2024-01-15T10:30:00.123Z", "INFO", "hi"
    out.log_type = out.event_type = "function"
    for name, value in values.items():
        setattr(out, name, value)
    return out


def test_the_documented_examples_are_read_by_our_hec_reader() -> None:
    assert len(hec.read_events(vendor.HEC_BATCH)) == 3
    (with_fields,) = hec.read_events(vendor.HEC_EVENT_WITH_FIELDS)
    assert with_fields["event"]["severity"] == "INFO"
    (metadata,) = hec.read_events(vendor.HEC_EVENT_WITH_METADATA)
    assert metadata["time"] == 1426279439
    with pytest.raises(hec.Refused, match="code 15"):
        hec.read_events(b'{"event":"x","fields":{"nested":{"a":"b"}}}')


def test_an_event_has_the_documented_metadata_and_flat_string_fields() -> None:
    entry = encoder().entry(record(request_id="r-1", tenant_id="t-1", cold_start=True,
                                   trace_id="1-5759e988-bd862e3fe1be46a994272793"))
    (event,) = hec.read_events(entry.encode())
    assert event == {
        "time": 1705314600.123, "host": "2024/01/15/[12]f00", "source": "lambda:orders",
        "sourcetype": "aws:lambda", "event": "hi",
        "fields": {"level": "INFO", "log_type": "function", "function_name": "orders",
                   "function_version": "12", "aws_region": "ap-south-1",
                   "architecture": "arm64", "function_memory_size": "1024",
                   "account_id": "123456789012", "extension_version": "2.0.0",
                   "team": "pay", "tier": "2", "beta": "true", "request_id": "r-1",
                   "tenant_id": "t-1", "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
                   "cold_start": "true"},
    }
    # Milliseconds, exactly: the text is 1705314600.123, not a float's rounding.
    assert '"time":1705314600.123,' in entry
    assert encoder().check_entry(event) == ""


def test_the_time_keeps_its_milliseconds_whatever_lambda_wrote() -> None:
    enc = encoder()
    times = {"2024-01-15T10:30:00Z": "1705314600.000", "2024-01-15T10:30:00.5Z": "1705314600.500",
             "2024-01-15T10:30:00.999999Z": "1705314600.999",
             "2024-01-15T11:30:00.010+01:00": "1705314600.010"}
    for stamp, expected in times.items():
        assert f'"time":{expected},' in enc.entry(record(time=stamp))


def test_a_json_log_line_is_the_event_object_not_a_string() -> None:
    enc = encoder(EntryContext("fn", "1", None, "us-east-1", "x86_64"))
    (event,) = hec.read_events(enc.entry(record(message="order placed",
                                                fields={"order": {"id": 7}, "ok": True})).encode())
    assert event["event"] == {"message": "order placed", "order": {"id": 7}, "ok": True}
    (own,) = hec.read_events(enc.entry(record(fields={"message": "own", "n": 1})).encode())
    assert own["event"] == {"message": "own", "n": 1}


@pytest.mark.parametrize("message", ["", "   ", "\t"])
def test_a_blank_line_is_never_a_blank_event(message: str) -> None:
    (event,) = hec.read_events(encoder().entry(record(message=message)).encode())
    assert event["event"] == {"message": message}


def test_a_batch_is_events_one_after_the_other_counted_exactly() -> None:
    enc = encoder()
    framing = Framing.of(enc)
    batch = Batch(0.0, [enc.entry(record(message=f"line {i}")) for i in range(4)], framing)
    body = batch.body()
    assert len(body) == batch.size and body.count(b'}{"time":') == 3
    assert [e["event"] for e in hec.read_events(body)] == [f"line {i}" for i in range(4)]


def test_hec_error_codes_are_named_in_the_failure() -> None:
    enc = encoder()
    assert enc.explain(403, vendor.HEC_INVALID_TOKEN) == "HEC code 4: invalid token: check HTTP_AUTH_CREDENTIALS"
    assert enc.explain(400, vendor.HEC_INVALID_DATA) == "HEC code 6: invalid data format (event #2 of the batch)"
    assert enc.explain(502, b"<html>") == ""
    assert enc.answer_limit(100) == 0  # a 2xx is the whole batch taken: nothing to read


def test_the_code_reaches_the_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender adds the meaning to the failure it logs (through Sender.send)."""
    from lambda_logs_http.delivery.sender import Sender
    from lambda_logs_http.settings.load import load
    from tests.support.fakes import FakeClock, ScriptedTransport

    enc = encoder()
    clock = FakeClock()
    transport = ScriptedTransport(clock, [{"status": 403, "body": vendor.HEC_INVALID_TOKEN}])
    sender = Sender(transport, load({"HTTP_ENDPOINT": "http://x/"}).batching, 5.0, clock)
    sent = sender.send(Batch(0.0, [enc.entry(record())], Framing.of(enc)), None)
    assert sent.result.error.endswith("(HEC code 4: invalid token: check HTTP_AUTH_CREDENTIALS)")
    assert answered(200, vendor.HEC_SUCCESS, None).ok
    assert json.loads(vendor.HEC_SUCCESS)["code"] == 0
