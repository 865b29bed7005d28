from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambda_logs_http.records.transform import EntryContext, Transformer, architecture

RID = "459921b5-681c-4a96-beb0-81e0aa586026"
SEED_FIELDS = [
    "timestamp", "level", "message", "source", "function_name", "function_version",
    "function_memory_size", "aws_region", "architecture", "service_name", "log_type",
]  # fmt: skip


@pytest.fixture
def transformer() -> Transformer:
    return Transformer(EntryContext("my-fn", "$LATEST", 256, "eu-west-1", "arm64"))


def entry(transformer: Transformer, event: dict[str, object]) -> dict[str, object]:
    encoded = transformer.encode(event)
    assert encoded is not None
    assert encoded.isascii()
    return json.loads(encoded)


def test_function_text_line_has_the_seed_fields_in_order(transformer: Transformer) -> None:
    event = {"time": "2024-01-15T10:30:00.000Z", "type": "function",
             "record": f"[ERROR]\t2024-01-15T10:30:00.000Z\t{RID}\tboom\n"}
    result = entry(transformer, event)
    assert list(result)[: len(SEED_FIELDS)] == SEED_FIELDS
    assert result == {
        "timestamp": "2024-01-15T10:30:00.000Z", "level": "ERROR", "message": "boom",
        "source": "lambda", "function_name": "my-fn", "function_version": "$LATEST",
        "function_memory_size": 256, "aws_region": "eu-west-1", "architecture": "arm64",
        "service_name": "my-fn", "log_type": "function", "request_id": RID,
    }  # fmt: skip


def test_json_format_record_keeps_its_fields(transformer: Transformer) -> None:
    record = {"timestamp": "t", "level": "WARN", "message": "m", "requestId": RID, "k": [1, 2]}
    result = entry(transformer, {"time": "t", "type": "function", "record": record})
    assert (result["level"], result["message"], result["request_id"]) == ("WARN", "m", RID)
    assert result["record"] == record


def test_platform_record_is_rendered_and_kept(transformer: Transformer) -> None:
    record = {"requestId": RID, "status": "success", "metrics": {"durationMs": 1.5,
              "billedDurationMs": 2, "memorySizeMB": 128, "maxMemoryUsedMB": 30}}
    result = entry(transformer, {"time": "t", "type": "platform.report", "record": record})
    assert result["log_type"] == "platform"
    assert result["message"].startswith(f"REPORT RequestId: {RID}\tDuration: 1.50 ms")
    assert result["record"]["metrics"]["maxMemoryUsedMB"] == 30


def test_extension_lines(transformer: Transformer) -> None:
    other = entry(transformer, {"time": "t", "type": "extension", "record": "other ext: hi\n"})
    assert (other["log_type"], other["message"]) == ("extension", "other ext: hi")
    own = {"time": "t", "type": "extension", "record": "[EXTENSION] INFO ready\n"}
    assert transformer.encode(own) is None


@pytest.mark.parametrize(
    "record",
    ["emoji 🎉 and ünïcode", "lone surrogate \ud800", 'quotes " and \\ backslash', "ctl \x00\x1f",
     12, None, [1, "a"], {"message": None}],
)
def test_any_record_encodes_to_valid_ascii_json(transformer: Transformer, record: object) -> None:
    result = entry(transformer, {"time": "t", "type": "function", "record": record})
    assert result["log_type"] == "function"
    if isinstance(record, str):
        assert result["message"] == record


def test_missing_time_gets_now(transformer: Transformer) -> None:
    result = entry(transformer, {"type": "function", "record": "x"})
    assert str(result["timestamp"]).endswith("Z")


def test_unknown_memory_size_is_null() -> None:
    transformer = Transformer(EntryContext("f", "1", None, "", "x86_64"))
    result = entry(transformer, {"time": "t", "type": "function", "record": "x"})
    assert result["function_memory_size"] is None


@pytest.mark.parametrize(("machine", "expected"), [("x86_64", "x86_64"), ("aarch64", "arm64")])
def test_architecture(machine: str, expected: str) -> None:
    assert architecture(machine) == expected


def test_lines_without_a_request_id_get_the_invocation_in_progress(transformer: Transformer) -> None:
    def start(rid: str) -> dict[str, object]:
        return {"time": "t", "type": "platform.start", "record": {"requestId": rid}}

    def done(rid: str) -> dict[str, object]:
        return {"time": "t", "type": "platform.runtimeDone", "record": {"requestId": rid}}

    def line(text: str) -> dict[str, object]:
        return {"time": "t", "type": "function", "record": text}

    before = entry(transformer, line("init output"))
    entry(transformer, start("r-1"))
    during = entry(transformer, line("print output"))
    named = entry(transformer, line(f"[INFO]\t2024-01-15T10:30:00.000Z\t{RID}\tnamed"))
    entry(transformer, done("r-1"))
    after = entry(transformer, line("between invocations"))
    assert "request_id" not in before and "request_id" not in after
    assert during["request_id"] == "r-1"
    assert named["request_id"] == RID


def test_no_attribution_on_managed_instances() -> None:
    transformer = Transformer(EntryContext("f", "1", 1, "r", "x86_64"), attribute_requests=False)
    entry(transformer, {"time": "t", "type": "platform.start", "record": {"requestId": "r-1"}})
    assert "request_id" not in entry(transformer, {"time": "t", "type": "function", "record": "x"})


TENANT = "tenant-blue"


def test_tenant_id_goes_on_every_entry_of_the_invocation(transformer: Transformer) -> None:
    start = {"requestId": RID, "version": "$LATEST", "tenantId": TENANT}
    assert entry(transformer, {"time": "t", "type": "platform.start", "record": start})[
        "tenant_id"] == TENANT
    text = entry(transformer, {"time": "t", "type": "function", "record": "plain print\n"})
    python = entry(transformer, {"time": "t", "type": "function",
                                 "record": f"[INFO]\t2024-01-15T10:30:00.000Z\t{RID}\thi\n"})
    json_record = entry(transformer, {"time": "t", "type": "function", "record": {
        "level": "INFO", "message": "m", "requestId": RID, "tenantId": TENANT}})
    done = entry(transformer, {"time": "t", "type": "platform.runtimeDone",
                               "record": {"requestId": RID, "status": "success"}})
    after = entry(transformer, {"time": "t", "type": "function", "record": "between\n"})
    report = entry(transformer, {"time": "t", "type": "platform.report", "record": {
        "requestId": RID, "status": "success", "metrics": {"durationMs": 1.0}}})
    assert [e.get("tenant_id") for e in (text, python, json_record, done, report)] == [TENANT] * 5
    assert "tenant_id" not in after  # between invocations: no request, no tenant


def test_a_json_record_names_its_own_tenant(transformer: Transformer) -> None:
    record = {"level": "INFO", "message": "m", "requestId": "r-2", "tenantId": "green"}
    assert entry(transformer, {"time": "t", "type": "function", "record": record})[
        "tenant_id"] == "green"
    later = entry(transformer, {"time": "t", "type": "function",
                                "record": "[INFO]\t2024-01-15T10:30:00.000Z\tr-2\tlater\n"})
    assert later["tenant_id"] == "green"


def test_no_tenant_field_without_tenant_isolation(transformer: Transformer) -> None:
    start = {"requestId": RID, "version": "$LATEST"}
    for event in ({"time": "t", "type": "platform.start", "record": start},
                  {"time": "t", "type": "function", "record": "x\n"},
                  {"time": "t", "type": "function", "record": {"tenantId": 7, "message": "m"}}):
        assert "tenant_id" not in entry(transformer, event)


def test_the_tenant_memory_is_bounded(transformer: Transformer) -> None:
    for n in range(500):
        transformer.encode({"time": "t", "type": "platform.start",
                            "record": {"requestId": f"r-{n}", "tenantId": f"t-{n}"}})
    assert len(transformer._tenants) <= 64
    last = entry(transformer, {"time": "t", "type": "function", "record": "x\n"})
    assert last["tenant_id"] == "t-499"


def test_every_key_an_entry_can_have_is_one_a_spill_file_may_hold(
    transformer: Transformer, tmp_path: Path
) -> None:
    """A batch spilled to disk is read back only if its entries hold known keys: an entry key
    the spill store does not know would make every spilled batch of it "invalid" and dropped."""
    from lambda_logs_http.delivery import spill
    from lambda_logs_http.delivery.batching import Batch
    from lambda_logs_http.records.encoders.seed import ENTRY_KEYS

    start = {"requestId": RID, "version": "$LATEST", "tenantId": TENANT}
    events = [{"time": "t", "type": "platform.start", "record": start},
              {"time": "t", "type": "function", "record": "with a tenant\n"}]
    entries = [transformer.encode(event) for event in events]
    entries.append(transformer.drop_report("buffer_full", 3))
    keys = set().union(*(json.loads(e or "{}") for e in entries))
    assert {"tenant_id", "request_id", "record"} <= keys
    assert keys <= ENTRY_KEYS, keys - ENTRY_KEYS

    dropped: list[tuple[str, int]] = []
    store = spill.SpillStore(str(tmp_path / "spill"), 1 << 20,
                             lambda reason, n: dropped.append((reason, n)))
    store.open()
    store.write("b-1", len(entries), Batch(0.0, [e for e in entries if e]).payload())
    back = store.read_oldest()
    assert back is not None and len(back) == len(entries) and dropped == []
