"""HTTP_FORMAT=elasticsearch: the ``_bulk`` body, the ECS document, and the ``_bulk`` answer.

The body is read as Elasticsearch reads it (NDJSON: an action line, then the document; each
line ends with a newline), and answers are the ones its documentation shows
(``tests/support/vendor_examples``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http import log
from lambda_logs_http.delivery.batching import Batch, Framing
from lambda_logs_http.http.transport import with_query
from lambda_logs_http.records.encoders import encoder_class
from lambda_logs_http.records.encoders.elasticsearch import FILTER_PATH, read_bulk_answer
from lambda_logs_http.records.record import EntryContext, Record
from lambda_logs_http.records.transform import Transformer
from tests.support import vendor_examples as vendor
from tests.unit.test_delivery_policy import Rig, lines

CONTEXT = EntryContext("fn", "7", 256, "eu-west-1", "arm64", account_id="123456789012",
                       extension_version="1.2.3", instance="2024/01/15/[7]abc",
                       extra_fields={"team": "pay", "tier": 2})
XRAY_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"


def encoder(context: EntryContext = CONTEXT) -> Any:
    return encoder_class("elasticsearch")(context)


def record(**values: Any) -> Record:
    out = Record()
    out.time, out.level, out.message, out.log_type = "2024-01-15T10:30:00.123Z", "INFO", "hi", "function"
    out.event_type = "function"
    for name, value in values.items():
        setattr(out, name, value)
    return out


def bulk_documents(body: bytes) -> list[dict[str, Any]]:
    """The documents of a ``_bulk`` body, read as Elasticsearch reads it: UTF-8 NDJSON, the
    last line ending with a newline, an action line before each document (a ``create``
    naming no index: the URL does)."""
    text = body.decode("utf-8")
    assert text.endswith("\n"), "the bulk body must end with a newline"
    parsed = [json.loads(line) for line in text[:-1].split("\n")]
    assert len(parsed) % 2 == 0
    actions, documents = parsed[0::2], parsed[1::2]
    assert all(action == {"create": {}} for action in actions)
    return documents


def test_the_documented_request_example_is_read_the_way_ours_is() -> None:
    """Our reader takes the documented example's create/source pairs as Elasticsearch does."""
    lines_ = vendor.ES_BULK_REQUEST.decode().splitlines()
    assert vendor.ES_BULK_REQUEST.endswith(b"\n")
    assert json.loads(lines_[3]) == {"create": {"_index": "test", "_id": "3"}}
    assert json.loads(lines_[4]) == {"field1": "value3"}


def test_a_document_is_ecs_with_the_function_context_and_the_invocation() -> None:
    enc = encoder()
    entry = enc.entry(record(request_id="r-1", trace_id=XRAY_ROOT, span_id=PARENT,
                             tenant_id="t-9", cold_start=True, level="WARN"))
    document = json.loads(entry)
    assert document == {
        "@timestamp": "2024-01-15T10:30:00.123Z", "log.level": "warn", "message": "hi",
        "ecs.version": "8.11.0", "agent.name": "lambda-logs-http", "agent.version": "1.2.3",
        "service.name": "fn", "faas.name": "fn", "faas.version": "7",
        "faas.max_memory": 256 * 1024 * 1024, "faas.instance": "2024/01/15/[7]abc",
        "cloud.provider": "aws", "cloud.service.name": "lambda", "cloud.region": "eu-west-1",
        "cloud.account.id": "123456789012", "host.architecture": "arm64",
        "labels": {"team": "pay", "tier": 2}, "aws.lambda.log_type": "function",
        "faas.execution": "r-1", "aws.lambda.tenant_id": "t-9",
        "trace.id": "5759e988bd862e3fe1be46a994272793", "span.id": "53995c3f42cd8ad8",
        "faas.coldstart": True,
    }
    assert entry.isascii() and "\n" not in entry
    assert enc.check_entry(document) == ""


def test_a_json_log_line_and_a_platform_report_stay_structure() -> None:
    enc = encoder(EntryContext("fn", "1", None, "us-east-1", "x86_64"))
    json_line = json.loads(enc.entry(record(fields={"user": {"id": 7}, "msg": "x"})))
    assert json_line["record"] == {"user": {"id": 7}, "msg": "x"}
    report = json.loads(enc.entry(record(
        log_type="platform", event_type="platform.report", message="REPORT RequestId: r-1",
        fields={"requestId": "r-1", "metrics": {"durationMs": 1.5, "maxMemoryUsedMB": 60}})))
    assert report["event.action"] == "platform.report"
    assert report["record"]["metrics"] == {"durationMs": 1.5, "maxMemoryUsedMB": 60}
    assert "faas.max_memory" not in report and "labels" not in report


def test_the_body_is_bulk_ndjson_with_a_trailing_newline_and_counted_exactly() -> None:
    enc = encoder()
    framing = Framing.of(enc)
    entries = [enc.entry(record(message=f"line {i} é\n")) for i in range(5)]
    batch = Batch(0.0, entries, framing)
    body = batch.body()
    assert len(body) == batch.size
    assert [d["message"] for d in bulk_documents(body)] == [f"line {i} é\n" for i in range(5)]
    assert framing.content_type == "application/x-ndjson"


def test_the_documented_partial_failure_drops_the_refused_and_keeps_the_rest() -> None:
    report = read_bulk_answer(vendor.ES_BULK_PARTIAL_FAILURE, 3)
    assert report is not None
    assert report.rejected == [0, 1] and report.retry == [] and report.unchecked == 0
    assert report.first_error == "document_missing_exception: [5]: document missing"


def test_a_filtered_answer_sorts_retryable_from_refused_items() -> None:
    report = read_bulk_answer(vendor.ES_BULK_FILTERED_MIXED, 5)
    assert report is not None
    assert report.retry == [1, 3] and report.rejected == [2] and report.unchecked == 0
    assert report.retry_error.startswith("es_rejected_execution_exception")
    assert report.first_error.startswith("document_parsing_exception")


def test_no_errors_means_nothing_to_do() -> None:
    assert read_bulk_answer(b'{"errors":false,"items":[{"create":{"status":201}}]}', 1) is None
    assert read_bulk_answer(b'{"errors":false,"items":[{"create":{"sta', 10) is None


def test_an_answer_cut_at_its_bound_is_read_to_its_last_whole_item() -> None:
    cut = vendor.ES_BULK_FILTERED_MIXED[: vendor.ES_BULK_FILTERED_MIXED.index(b"unavailable")]
    report = read_bulk_answer(cut, 5)
    assert report is not None
    assert report.retry == [1] and report.rejected == [2] and report.unchecked == 2


def test_the_answer_limit_covers_a_filtered_answer_with_an_error_per_item() -> None:
    enc = encoder()
    per_item = len(b'{"create":{"status":400,"error":{"type":"document_parsing_exception",'
                   b'"reason":""}}},') + 200  # a reason is cut at 200 characters by us, not ES
    assert enc.answer_limit(1000) > 1000 * per_item


def test_the_filter_path_is_added_to_the_endpoint_unless_the_user_set_one() -> None:
    assert with_query("/logs/_bulk", FILTER_PATH) == f"/logs/_bulk?{FILTER_PATH}"
    assert with_query("/logs/_bulk?pipeline=p", FILTER_PATH) == f"/logs/_bulk?pipeline=p&{FILTER_PATH}"
    assert with_query("/_bulk?filter_path=took", FILTER_PATH) == "/_bulk?filter_path=took"


def test_an_error_answer_is_explained_with_what_to_do() -> None:
    meaning = encoder().explain(400, vendor.ES_INDEX_MISSING)
    assert meaning.startswith("action_request_validation_exception: Validation Failed")
    assert "/<index>/_bulk" in meaning
    assert encoder().explain(502, b"<html>bad gateway</html>") == ""


# -- the sender: a partial failure through the delivery policy --------------------------------

def es_rig(tmp_path: Path, answers: list[Any], **env: str) -> Rig:
    transformer = Transformer(CONTEXT, encoder=encoder())
    return Rig(tmp_path, answers=answers, transformer=transformer, **env)


def sent_messages(request: dict[str, Any]) -> list[str]:
    return [d["message"] for d in bulk_documents(request["body"])]


@pytest.fixture
def captured_log() -> Any:
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    import sys

    log.set_stream(sys.stdout)


def test_retryable_items_go_again_alone_and_refused_ones_are_counted_and_reported(
    tmp_path: Path, captured_log: io.StringIO
) -> None:
    answer = vendor.ES_BULK_FILTERED_MIXED  # of 5: #1 429, #2 400, #3 503
    rig = es_rig(tmp_path, [{"status": 200, "body": answer}], HTTP_BATCH_MAX_AGE_MS="60000")
    rig.push(lines(4, "r-1"))  # 4 lines + END = 5 documents
    first = rig.transport.requests[0]
    assert first["query"] == FILTER_PATH and first["answer_limit"] > 0
    assert first["headers"]["Content-Type"] == "application/x-ndjson"
    assert not rig.delivered("r-1")  # two of its records are still to be delivered
    rig.pipeline.flush(rig.clock.now + 10)
    later = [sent_messages(r) for r in rig.transport.requests[1:]]
    # The loss is reported to the receiver (first in line, as every loss is), and the two
    # refused for now go again, alone.
    assert later == [["LOGS_DROPPED lambda-logs-http dropped 1 records: bulk_rejected"],
                     ["line 1", "line 3"]]
    assert rig.delivered("r-1")
    assert rig.stats.dropped == {"bulk_rejected": 1} and rig.stats.delivered == 4
    text = captured_log.getvalue()
    assert "document_parsing_exception" in text and "bulk_rejected" in text
    assert "es_rejected_execution_exception" in text
    assert "bulk_rejected=1" in rig.stats.summary()


def test_items_refused_for_now_again_and_again_are_never_lost(tmp_path: Path) -> None:
    busy = {"status": 200, "body": b'{"errors":true,"items":[{"create":{"status":429}}]}'}
    rig = es_rig(tmp_path, [busy] * 6)
    rig.push([{"time": "t", "type": "function", "record": "only line\n"}])
    rig.pipeline.flush(rig.clock.now + 60)
    assert [sent_messages(r) for r in rig.transport.requests] == [["only line"]] * 7
    assert rig.stats.dropped == {} and rig.stats.delivered == 1


def test_a_mapping_error_is_never_retried(tmp_path: Path) -> None:
    refused = {"status": 200, "body": b'{"errors":true,"items":[{"create":{"status":400,'
                                      b'"error":{"type":"mapper_parsing_exception",'
                                      b'"reason":"failed to parse"}}}]}'}
    rig = es_rig(tmp_path, [refused])
    rig.push([{"time": "t", "type": "function", "record": "bad line\n"}])
    rig.pipeline.flush(rig.clock.now + 60)
    sent = [m for r in rig.transport.requests for m in sent_messages(r)]
    assert sent == ["bad line", "LOGS_DROPPED lambda-logs-http dropped 1 records: bulk_rejected"]
    assert rig.stats.dropped == {"bulk_rejected": 1}


@pytest.mark.parametrize(("stamp", "kept"), [
    ("2024-01-15T10:30:00.123Z", True), ("2024-01-15T10:30:00Z", True),
    ("2024-01-15T12:30:00.123456+02:00", True), ("2024-01-15 10:30:00Z", False),
    ("t", False), ("", False), ("2024-13-45T99:99:99Z", False),
])
def test_a_timestamp_elasticsearch_cannot_read_becomes_now(stamp: str, kept: bool) -> None:
    got = json.loads(encoder().entry(record(time=stamp)))["@timestamp"]
    assert (got == stamp) == kept
    assert got.endswith(("Z", "+02:00")) and got[10] == "T"


@settings(max_examples=300, deadline=None)
@given(answer=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda items, cut: (json.dumps({"errors": True, "items": items}).encode())[:cut],
              st.lists(st.one_of(
                  st.fixed_dictionaries({"create": st.fixed_dictionaries(
                      {"status": st.integers(-5, 700)},
                      optional={"error": st.one_of(st.text(max_size=10), st.dictionaries(
                          st.sampled_from(["type", "reason"]), st.text(max_size=10)))})}),
                  st.integers(), st.text(max_size=5), st.none()), max_size=12),
              st.integers(0, 2000))),
    records=st.integers(1, 10))
def test_any_answer_is_read_without_raising_and_within_the_batch(answer: bytes, records: int) -> None:
    report = read_bulk_answer(answer, records)
    if report is None:
        return
    indices = report.retry + report.rejected
    assert len(set(indices)) == len(indices) and all(0 <= i < records for i in indices)
    assert 0 <= report.unchecked <= records
    assert len(indices) + report.unchecked <= records
