"""Property-based tests: whatever bytes or JSON arrive, no exception escapes and valid records
still flow. The listener and the transformer face input we don't control (Lambda's pushes, any
text a function prints), so they are fuzzed rather than only shown examples."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.delivery.batching import ENVELOPE_BYTES, Batcher
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.listener.server import TelemetryListener, parse_push
from lambda_logs_http.records import levels
from lambda_logs_http.records.transform import EntryContext, Transformer
from lambda_logs_http.stats import Stats

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
event_types = st.sampled_from([
    "function", "extension", "platform.start", "platform.runtimeDone", "platform.report",
    "platform.logsDropped", "platform.initStart", "platform.extension", "platform.unknownKind",
]) | st.text(max_size=12)
events = st.fixed_dictionaries(
    {"type": event_types, "record": json_values},
    optional={"time": st.text(max_size=30) | json_values},
)
VALID = [{"time": "t", "type": "function", "record": "still flowing\n"}]


class Sink:
    def __init__(self) -> None:
        self.pushes: list[list[dict[str, object]]] = []

    def __call__(self, pushed: list[dict[str, object]], body_bytes: int = 0) -> bool:
        self.pushes.append(pushed)
        return True


def listener() -> tuple[TelemetryListener, Sink]:
    sink = Sink()
    return TelemetryListener(0, sink, InvocationProgress(), Stats()), sink


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_push_never_raises_on_bytes(body: bytes) -> None:
    result = parse_push(body)
    assert result is None or all(isinstance(event, dict) for event in result)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_listener_answers_any_json_and_keeps_accepting(value: object) -> None:
    server, sink = listener()
    status = server.handle_body(json.dumps(value).encode())
    assert status in (200, 400)
    assert server.handle_body(json.dumps(VALID).encode()) == 200
    assert sink.pushes[-1] == VALID


@settings(max_examples=500, deadline=None)
@given(events)
def test_transformer_turns_any_event_into_valid_ascii_json(event: dict[str, object]) -> None:
    transformer = Transformer(EntryContext("fn", "1", 128, "us-east-1", "x86_64"))
    encoded = transformer.encode(event)
    if encoded is None:  # only the extension's own lines are skipped
        assert event["type"] == "extension" and str(event["record"]).startswith("[EXTENSION]")
        return
    assert encoded.isascii()
    entry = json.loads(encoded)
    assert isinstance(entry["message"], str)
    assert entry["level"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    assert entry["log_type"] in ("function", "extension", "platform")
    # and the stream goes on: a valid record after any event still encodes
    assert json.loads(transformer.encode(VALID[0]) or "{}")["message"] == "still flowing"


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_text_never_raises(line: str) -> None:
    level, message, request_id, _ = levels.parse_text(line)
    assert level in levels.LEVEL_NAMES.values()
    assert isinstance(message, str) and isinstance(request_id, str)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=3000), max_size=40), st.integers(min_value=1024, max_value=8192))
def test_batches_never_exceed_the_byte_limit(messages: list[str], limit: int) -> None:
    batcher = Batcher(limit, 1000)
    batches = []
    for message in messages:
        full = batcher.add(json.dumps({"message": message}), 0.0)
        if full:
            batches.append(full)
    last = batcher.take()
    batches.extend([last] if last else [])
    assert sum(len(b) for b in batches) == len(messages)
    for batch in batches:
        body = batch.body()
        assert len(body) == batch.size <= limit
        assert len(json.loads(body)["logs"]) == len(batch)
    assert all(b.size >= ENVELOPE_BYTES for b in batches)
