"""Records nobody vouches for: whatever a function logs, every record encodes as strict JSON, and
one that cannot is counted, never taking its push (or the worker) with it.

The cases a function really produces: a value nested 5,000 levels deep, Python's default NaN,
a pushed ``1e999``, a 5,000-digit integer (which Python 3.11+ refuses to convert), a lone
surrogate in a record that must be truncated, keys that are not strings. The fuzz targets for
the same parsers and encoders are in ``test_properties.py``.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lambda_logs_http.delivery.batching import Batcher, truncate_entry
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.listener.server import TelemetryListener, parse_push
from lambda_logs_http.records import jsonsafe, levels, platform_events
from lambda_logs_http.records.transform import UNENCODABLE, EntryContext, Transformer
from lambda_logs_http.stats import Stats
from tests.unit.test_delivery_policy import Rig, captured_log, lines

__all__ = ["captured_log"]  # a fixture, used by name

DEEP = '{"a":' * 5000 + "1" + "}" * 5000  # what a function logs; 3.13's C decoder reads it
# Deeper than any C decoder goes, on every version: where the careful paths must take over.
VERY_DEEP = '{"a":' * 300_000 + "1" + "}" * 300_000
DEEP_LIST = "[" * 300_000 + "]" * 300_000
LONG_DIGITS = "9" * 5000
SURROGATE = os.fsdecode(b"\xff")  # '\udcff'
RID = "459921b5-681c-4a96-beb0-81e0aa586026"


def _refuse(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def strict(text: str | bytes) -> Any:
    """What a strict receiver accepts: JSON, no NaN/Infinity."""
    return json.loads(text, parse_constant=_refuse)


def depth(value: object) -> int:
    """Nesting depth without recursion (a value from the careful decoder may be deep text)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


@pytest.fixture
def transformer() -> Transformer:
    return Transformer(EntryContext("fn", "$LATEST", 128, "us-east-1", "x86_64"))


def entry(transformer: Transformer, record: object, kind: str = "function") -> dict[str, Any]:
    encoded = transformer.encode({"time": "2024-01-15T10:30:00.000Z", "type": kind,
                                  "record": record})
    assert encoded and encoded.isascii()
    return strict(encoded)  # type: ignore[no-any-return]


# -- jsonsafe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"p99": float("nan")}, '{"p99":"NaN"}'),
        ([float("inf"), float("-inf")], '["Infinity","-Infinity"]'),
        ({7: "a", None: "b", True: "c", 2.5: "d", (1, 2): "e"},
         '{"7":"a","null":"b","true":"c","2.5":"d","(1, 2)":"e"}'),
        (b"\xff", '"b\'\\\\xff\'"'),
        ({"s": SURROGATE}, '{"s":"\\udcff"}'),
        ({"n": 10**5000}, '{"n":"' + hex(10**5000) + '"}'),
        ({"n": 10**4000}, '{"n":' + str(10**4000) + "}"),
    ],
)
def test_dumps_writes_strict_json_for_what_json_refuses(value: object, expected: str) -> None:
    assert jsonsafe.dumps(value) == expected
    strict(jsonsafe.dumps(value))


def test_dumps_keeps_a_too_deep_value_as_its_text() -> None:
    deep: list[object] = []
    for _ in range(300_000):  # deeper than any C encoder goes
        deep = [deep]
    encoded = jsonsafe.dumps({"deep": deep, "nan": float("nan")})
    decoded = strict(encoded)
    assert depth(decoded) == jsonsafe.MAX_DEPTH and encoded.isascii()
    inner = decoded["deep"]
    for _ in range(jsonsafe.MAX_DEPTH - 2):
        inner = inner[0]
    levels_left = 300_002 - jsonsafe.MAX_DEPTH  # the innermost list is at depth 300,002
    assert inner == ["[" * levels_left + "]" * levels_left]


def test_dumps_and_text_of_survive_cycles() -> None:
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    assert jsonsafe.text_of(cyclic) == '[1,"<cycle>"]'
    strict(jsonsafe.dumps({"c": cyclic}))


def test_text_depth_and_capped() -> None:
    assert jsonsafe.text_depth('{"a":["[[[[", {"b": []}]}') == 4
    assert jsonsafe.text_depth('"no containers"') == 0
    value = json.loads("[" * 900 + "]" * 900)
    encoded = json.dumps(value, separators=(",", ":"))
    assert depth(strict(jsonsafe.capped(encoded, value))) == jsonsafe.MAX_DEPTH
    shallow = {"a": "{" * 100}
    assert jsonsafe.capped(json.dumps(shallow), shallow) == json.dumps(shallow)


def test_text_of_matches_json_for_ordinary_values() -> None:
    value = {"a": [1, 2.5, None, True, False, "é\n\"", {"b": {}}], "": []}
    assert jsonsafe.text_of(value) == json.dumps(value, separators=(",", ":"))


def test_loads_keeps_a_too_deep_value_as_its_original_text() -> None:
    value = jsonsafe.loads('{"level":"ERROR","x":' + VERY_DEEP + ',"after":[1,2]}')
    assert isinstance(value, dict) and value["level"] == "ERROR" and value["after"] == [1, 2]
    assert depth(value) == jsonsafe.MAX_DEPTH
    inner = value["x"]
    for _ in range(jsonsafe.MAX_DEPTH - 1):
        inner = inner["a"]
    assert inner == VERY_DEEP[5 * (jsonsafe.MAX_DEPTH - 1):-(jsonsafe.MAX_DEPTH - 1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"p99": NaN, "v": Infinity, "w": -Infinity}',
         {"p99": "NaN", "v": "Infinity", "w": "-Infinity"}),
        ('{"v": 1e999}', {"v": float("inf")}),  # a float; dumps writes it "Infinity"
        ('{"n": ' + LONG_DIGITS + "}", {"n": LONG_DIGITS}),
        ('{"t": "a\tb"}', {"t": "a\tb"}),  # a raw control character
        (b'{"b": "\xff\xfe"}', {"b": "\udcff\udcfe"}),  # not UTF-8
    ],
)
def test_loads_takes_what_json_loads_refuses(text: str | bytes, expected: object) -> None:
    assert jsonsafe.loads(text) == expected


@pytest.mark.parametrize("text", ["", "[", "{]", '{"a":1,}', "[1 2]", "[1]x", "[" * 3000,
                                  '{"a":' * 3000, "nul", '{"a"' + "[" * 2000])
def test_loads_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        jsonsafe.loads(text)


def test_the_token_parser_agrees_with_json() -> None:
    text = json.dumps({"a": [1, -2.5e-3, None, True, False, "\u00e9\\\"", {"b": {}}],
                       "c": [], "d": {"e": [[[]]]}}, indent=2)
    value, end = jsonsafe.parse_capped(text, 0, 100, fast_depth=0)
    assert value == json.loads(text) and end == len(text)


# -- levels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "check"),
    [
        (DEEP, lambda fields: fields["a"]),
        (VERY_DEEP, lambda fields: depth(fields) == jsonsafe.MAX_DEPTH),
        (json.dumps({"level": "error", "p99": float("nan")}),
         lambda fields: fields["p99"] == "NaN"),
        ('{"level": "warn", "n": ' + LONG_DIGITS + "}", lambda fields: fields["n"] == LONG_DIGITS),
    ],
)
def test_parse_text_reads_hostile_json_lines(line: str, check: Any) -> None:
    _, message, _, fields = levels.parse_text(line + "\n")
    assert isinstance(message, str) and fields is not None and check(fields)


def test_parse_text_keeps_a_deep_line_that_is_not_an_object_as_text() -> None:
    level, message, _, fields = levels.parse_text(DEEP_LIST + "\n")
    assert (level, message, fields) == ("INFO", DEEP_LIST, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"errorType": 10**5000, "errorMessage": {"deep": json.loads("[" * 500 + "]" * 500)}},
        {"message": [float("nan")]},
        {"level": 10**5000, "n": 10**5000},
        {(1, 2): float("inf")},
    ],
)
def test_parse_fields_never_raises(fields: dict[object, object]) -> None:
    level, message, request_id, _ = levels.parse_fields(fields)  # type: ignore[arg-type]
    assert level in levels.LEVEL_NAMES.values() and isinstance(message, str)
    assert isinstance(request_id, str)


def test_platform_rendering_survives_numbers_beyond_float() -> None:
    _, message, _ = platform_events.render(
        "platform.report", {"requestId": RID, "metrics": {"durationMs": 10**400}})
    assert message.startswith(f"REPORT RequestId: {RID}\tDuration: 1000")


# -- the transformer ---------------------------------------------------------------------------


HOSTILE_RECORDS = [
    DEEP,
    VERY_DEEP,
    DEEP_LIST,
    '{"message":"deep inside","x":' + DEEP + "}",
    '{"message":"deep inside","x":' + VERY_DEEP + "}",
    json.dumps({"p99": float("nan")}),
    '{"v": 1e999}',
    '{"n": ' + LONG_DIGITS + "}",
    {"message": "m", "p99": float("nan"), "v": float("inf")},
    {"message": "m", "n": 10**5000},
    {"message": "m", "x": jsonsafe.loads(VERY_DEEP)},
    {"message": "m", "x": json.loads("[" * 900 + "]" * 900)},  # the C encoder takes it
    {"message": "m", "x": jsonsafe.loads(DEEP)},
    {"message": SURROGATE * 3},
    {(1, 2): "tuple key", 3: "int key"},
    [float("nan"), 10**5000],
    SURROGATE + " lone surrogate",
]


@pytest.mark.parametrize("record", HOSTILE_RECORDS, ids=range(len(HOSTILE_RECORDS)))
def test_every_hostile_record_encodes_as_strict_json(
    transformer: Transformer, record: object
) -> None:
    result = entry(transformer, record)
    assert result["log_type"] == "function" and isinstance(result["message"], str)
    # no deeper than receivers' parsers go, whatever this Python's C encoder can write
    assert depth(result) <= jsonsafe.MAX_DEPTH + 1
    # and the stream goes on
    assert entry(transformer, "next line\n")["message"] == "next line"


def test_nan_is_written_as_a_string(transformer: Transformer) -> None:
    result = entry(transformer, json.dumps({"p99": float("nan")}) + "\n")
    assert result["record"] == {"p99": "NaN"}
    result = entry(transformer, {"message": "m", "v": float("inf"), "w": float("-inf")})
    assert (result["record"]["v"], result["record"]["w"]) == ("Infinity", "-Infinity")


@pytest.mark.parametrize("kind", ["platform.report", "platform.start", "platform.weird"])
def test_hostile_platform_records_encode(transformer: Transformer, kind: str) -> None:
    record = {"requestId": RID, "version": 10**5000, "metrics": {"durationMs": float("nan")},
              "x": jsonsafe.loads(VERY_DEEP)}
    result = entry(transformer, record, kind)
    assert result["log_type"] == "platform" and result["request_id"] == RID


class Exploding(list):  # type: ignore[type-arg]
    """A value no encoder can read: iterating it fails."""

    def __iter__(self) -> Any:
        raise RuntimeError("cannot be read")


def test_what_cannot_be_encoded_comes_back_as_unencodable(
    transformer: Transformer, captured_log: io.StringIO
) -> None:
    event = {"type": "function", "record": {"message": "m", "x": Exploding([1])}}
    assert transformer.encode(event) == UNENCODABLE
    assert transformer.encode(event) == UNENCODABLE
    warnings = [line for line in captured_log.getvalue().splitlines() if "unencodable" in line]
    assert len(warnings) == 1 and "RuntimeError" in warnings[0]  # once, and no record text
    assert entry(transformer, "after")["message"] == "after"


def test_an_unencodable_record_is_counted_and_the_push_goes_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HTTP_BATCH_MAX_AGE_MS="60000")
    push = lines(2, "r-1")
    push.insert(1, {"time": "t", "type": "function", "record": {"x": Exploding([1])}})
    rig.push(push)
    assert rig.messages()[:3] == ["line 0", "line 1", "END RequestId: r-1"]
    assert rig.delivered("r-1")
    assert rig.stats.dropped == {"unencodable": 1} and rig.stats.skipped == 0
    # reported to the receiver like any drop, once a send succeeded
    assert rig.messages()[3:] == ["LOGS_DROPPED lambda-logs-http dropped 1 records: unencodable"]


# -- truncation --------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_truncated_record_is_kept_escaped(transformer: Transformer) -> None:
    encoded = transformer.encode({"type": "function", "record": SURROGATE * 3000 + "\n"})
    assert encoded
    shrunk = truncate_entry(encoded, 2000)
    assert len(shrunk) <= 2000 and shrunk.isascii()
    message = strict(shrunk)["message"]
    assert message.startswith(SURROGATE * 100) and "bytes removed]" in message
    batcher = Batcher(4096, 100)
    batcher.add(encoded, 0.0)
    assert batcher.truncated == 1


def test_a_deep_record_in_a_truncated_entry(transformer: Transformer) -> None:
    record = {"message": "x" * 5000, "deep": json.loads("[" * 900 + "]" * 900)}
    encoded = transformer.encode({"type": "function", "record": record})
    assert encoded
    shrunk = truncate_entry(encoded, 2000)
    assert len(shrunk) <= 2000 and "record" not in strict(shrunk)


# -- the listener -------------------------------------------------------------------------------


def push_body(*records: str) -> bytes:
    events = ",".join(f'{{"time":"t","type":"function","record":{r}}}' for r in records)
    done = f'{{"time":"t","type":"platform.runtimeDone","record":{{"requestId":"{RID}"}}}}'
    return f"[{events},{done}]".encode()


@pytest.mark.parametrize(
    "record",
    [
        '{"message":"m","x":' + DEEP + "}",  # a JSON-format record nested 5,000 deep
        '{"message":"m","x":' + VERY_DEEP + "}",
        json.dumps(DEEP),  # a text line holding it
        json.dumps(VERY_DEEP),
        '{"message":"m","p99":NaN}',
        '{"message":"m","v":1e999}',
        '{"message":"m","n":' + LONG_DIGITS + "}",
        '"\xff not utf-8"',
    ],
)
def test_a_hostile_record_does_not_take_its_push_down(
    transformer: Transformer, record: str
) -> None:
    body = push_body('"before"', record, '"after"')
    body = body.replace("\xff".encode(), b"\xff")  # a raw byte that is not UTF-8
    events = parse_push(body)
    assert events is not None and len(events) == 4
    assert events[-1]["type"] == "platform.runtimeDone"
    encoded = [transformer.encode(event) for event in events]
    assert all(e and e.isascii() for e in encoded)
    messages = [strict(e)["message"] for e in encoded if e]
    assert messages[0] == "before" and messages[2] == "after"
    assert messages[3] == f"END RequestId: {RID}"


def test_the_listener_accepts_a_deep_push_and_notes_its_runtime_done() -> None:
    progress = InvocationProgress()
    pushed: list[list[dict[str, object]]] = []
    listener = TelemetryListener(0, lambda events, _size: pushed.append(events) or True,
                                 progress, Stats())
    assert listener.handle_body(push_body('{"x":' + VERY_DEEP + "}")) == 200
    assert len(pushed[0]) == 2
    # arrived (not delivered): the budget, counted from the arrival, ends the wait at once
    assert progress.wait(RID, deadline=time.monotonic() + 10, budget=0.0) == "budget"


def test_parse_push_still_refuses_what_is_not_a_json_array() -> None:
    assert parse_push(b"[" * 100_000) is None
    assert parse_push(b'{"a":1}') is None
    assert parse_push(b'[{"a":1}') is None
    assert parse_push(b"[NaN, Infinity]") == []
