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
from lambda_logs_http.records import jsonsafe, levels
from lambda_logs_http.records.transform import UNENCODABLE, EntryContext, Transformer
from lambda_logs_http.stats import Stats

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


def _nested(value: object, levels: int) -> object:
    for _ in range(levels):
        value = {"a": value}
    return value


# Whatever json.loads can return, and what Python code can put in a record besides: NaN and the
# infinities, integers too long for decimal text, keys that are not strings, bytes, values
# nested deeper than the C encoder goes (about 1,000 levels up to 3.11, more since).
hostile_scalars = (
    st.floats() | st.integers()
    # built when drawn: a strategy holding such an int could not even be printed
    | st.integers(min_value=4290, max_value=5000).map(lambda digits: -(10**digits))
    | st.binary(max_size=8) | st.text(alphabet=st.characters(codec=None), max_size=8)
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.lists(children, max_size=4) | st.tuples(children)
    | st.dictionaries(st.text(max_size=4) | st.integers() | st.none() | st.floats(), children,
                      max_size=4)
    | st.builds(_nested, children, st.sampled_from([1, 70, 1500, 12_000])),
    max_leaves=10,
)
hostile_events = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "extension", "platform.report", "platform.start"]),
     "record": hostile_values | hostile_values.map(jsonsafe.text_of)},
    optional={"time": hostile_values},
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


def _refuse(name: str) -> object:
    raise ValueError(name)


def strict_loads(text: str | bytes) -> object:
    """A strict receiver's parser: JSON only, no NaN/Infinity."""
    return json.loads(text, parse_constant=_refuse)


@settings(max_examples=150, deadline=None)
@given(hostile_events)
def test_transformer_encodes_any_hostile_event_as_strict_json(event: dict[str, object]) -> None:
    transformer = Transformer(EntryContext("fn", "1", 128, "us-east-1", "x86_64"))
    encoded = transformer.encode(event)
    assert encoded is not None and encoded != UNENCODABLE  # all of these are encodable
    assert encoded.isascii()
    assert jsonsafe.text_depth(encoded) <= jsonsafe.MAX_DEPTH + 1  # what receivers can parse
    entry = strict_loads(encoded)
    assert isinstance(entry, dict) and isinstance(entry["message"], str)
    assert json.loads(transformer.encode(VALID[0]) or "{}")["message"] == "still flowing"


@settings(max_examples=150, deadline=None)
@given(hostile_values)
def test_parse_fields_never_raises_on_hostile_values(value: object) -> None:
    fields = value if isinstance(value, dict) else {"message": value, "level": value}
    level, message, request_id, _ = levels.parse_fields(fields)  # type: ignore[arg-type]
    assert level in levels.LEVEL_NAMES.values()
    assert isinstance(message, str) and isinstance(request_id, str)


@settings(max_examples=150, deadline=None)
@given(hostile_values)
def test_parse_text_never_raises_on_json_lines(value: object) -> None:
    line = jsonsafe.text_of(value).replace('"NaN"', "NaN") + "\n"
    level, message, request_id, _ = levels.parse_text(line)
    assert level in levels.LEVEL_NAMES.values()
    assert isinstance(message, str) and isinstance(request_id, str)


@settings(max_examples=150, deadline=None)
@given(hostile_values)
def test_jsonsafe_dumps_any_value_as_strict_ascii_json(value: object) -> None:
    encoded = jsonsafe.dumps(value)
    assert encoded.isascii()
    strict_loads(encoded)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_jsonsafe_agrees_with_json_on_ordinary_values(value: object) -> None:
    assert jsonsafe.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert jsonsafe.text_of(value) == json.dumps(value, separators=(",", ":"))
    for text in (json.dumps(value), json.dumps(value, indent=1, ensure_ascii=False)):
        assert jsonsafe.loads(text) == json.loads(text)
        assert jsonsafe.parse_capped(text, 0, 1000, fast_depth=0) == (json.loads(text), len(text))


@settings(max_examples=100, deadline=None)
@given(st.lists(hostile_events, max_size=3))
def test_parse_push_takes_any_json_push_whole(events: list[dict[str, object]]) -> None:
    body = ("[" + ",".join(jsonsafe.text_of(e) for e in events) + "]").encode()
    parsed = parse_push(body)
    assert parsed is not None and len(parsed) == len(events)
    transformer = Transformer(EntryContext("fn", "1", 128, "us-east-1", "x86_64"))
    for event in parsed:
        encoded = transformer.encode(event)
        assert encoded and encoded.isascii()
        strict_loads(encoded)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda tail: b'[{"type":"function","record":' + tail))
def test_parse_push_never_raises_on_json_like_bytes(body: bytes) -> None:
    result = parse_push(body)
    assert result is None or all(isinstance(event, dict) for event in result)
