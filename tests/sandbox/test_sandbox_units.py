"""Unit tests of the sandbox's pure parts: parsers, records, retry policy, routing, frames."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.lambda_sandbox.config import DeliveryPolicy, FunctionSpec, SandboxConfig
from tools.lambda_sandbox.lifecycle import describe_exit
from tools.lambda_sandbox.log_records import strip_newline, to_record
from tools.lambda_sandbox.processes import Chunk, OutputPump
from tools.lambda_sandbox.server import ApiRequest, Router, json_response
from tools.lambda_sandbox.telemetry import SubscriptionError, parse_subscription

pytestmark = pytest.mark.timeout(30)

BASE = {"schemaVersion": "2022-12-13", "types": ["platform"],
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/"}}


def _body(**changes):
    body = json.loads(json.dumps(BASE))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize("buffering, expected", [
    (None, (10000, 262144, 1000)),
    ({}, (10000, 262144, 1000)),
    ({"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25}, (1000, 262144, 25)),
    ({"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 30000}, (10000, 1048576, 30000)),
])
def test_buffering_accepted(buffering, expected):
    body = _body() if buffering is None else _body(buffering=buffering)
    b = parse_subscription(body, managed_instances=False).buffering
    assert (b.max_items, b.max_bytes, b.timeout_ms) == expected


@pytest.mark.parametrize("buffering", [
    {"maxItems": 999}, {"maxItems": 10001}, {"maxBytes": 262143}, {"maxBytes": 1048577},
    {"timeoutMs": 24}, {"timeoutMs": 30001}, {"maxItems": "1000"}, {"timeoutMs": True},
    {"maxItems": 1000.5}, [],
])
def test_buffering_rejected(buffering):
    with pytest.raises(SubscriptionError):
        parse_subscription(_body(buffering=buffering), managed_instances=False)


@pytest.mark.parametrize("uri, ok", [
    ("http://sandbox.localdomain:8080/", True),
    ("http://sandbox.localdomain:8080", True),
    ("http://sandbox.localdomain:8080/logs?x=1", True),
    ("http://sandbox.localdomain/", False),
    ("http://sandbox.localdomain:9001/", False),
    ("https://sandbox.localdomain:8080/", False),
    ("http://127.0.0.1:8080/", False),
    ("", False),
])
def test_destination_uri(uri, ok):
    body = _body(destination={"protocol": "HTTP", "URI": uri})
    if ok:
        dest = parse_subscription(body, managed_instances=False).destination
        assert dest.host == "127.0.0.1" and dest.port == 8080 and dest.path.startswith("/")
    else:
        with pytest.raises(SubscriptionError):
            parse_subscription(body, managed_instances=False)


@pytest.mark.parametrize("version, managed, ok", [
    ("2022-07-01", False, True), ("2022-12-13", False, True), ("2025-01-29", False, True),
    ("2022-12-13", True, False), ("2025-01-29", True, True), ("2023-01-01", False, False),
])
def test_schema_versions(version, managed, ok):
    body = _body(schemaVersion=version)
    if ok:
        assert parse_subscription(body, managed_instances=managed).schema_version == version
    else:
        with pytest.raises(SubscriptionError):
            parse_subscription(body, managed_instances=managed)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12))
def test_parse_subscription_only_raises_validation_errors(doc):
    try:
        parse_subscription(json.dumps(doc).encode(), managed_instances=False)
    except SubscriptionError:
        pass


@pytest.mark.parametrize("text, fmt, expected", [
    ("hello\n", "Text", "hello\n"),
    ('{"a": 1}\n', "Text", '{"a": 1}\n'),
    ('{"a": 1}\n', "JSON", {"a": 1}),
    ("[1, 2]\n", "JSON", "[1, 2]\n"),
    ("{not json}\n", "JSON", "{not json}\n"),
    ("plain\n", "JSON", "plain\n"),
])
def test_to_record(text, fmt, expected):
    assert to_record(text, fmt) == expected


def test_strip_newline():
    assert strip_newline("a\n") == "a"
    assert strip_newline("a\r\n") == "a"
    assert strip_newline("a") == "a"
    assert strip_newline("a\n\n") == "a\n"


@pytest.mark.parametrize("code, words", [
    (0, "exit status 0"), (1, "exit status 1"), (-9, "signal: killed"),
    (-15, "signal: terminated"), (None, "unknown exit status"),
])
def test_describe_exit(code, words):
    assert describe_exit(code) == words


def test_backoff_is_exponential_and_capped():
    policy = DeliveryPolicy(backoff_s=0.1, backoff_max_s=0.3)
    assert 0.1 <= policy.backoff(1) <= 0.11
    assert 0.2 <= policy.backoff(2) <= 0.22
    assert 0.3 <= policy.backoff(5) <= 0.33
    with pytest.raises(ValueError):
        DeliveryPolicy(attempts=0)


def test_router_answers_404_and_405():
    router = Router()
    router.add("GET", r"/thing/(?P<id>\w+)", lambda r: json_response(200, r.params))
    get = router.dispatch(ApiRequest("GET", "/thing/42", {}, b""))
    assert (get.status, json.loads(get.body)) == (200, {"id": "42"})
    assert router.dispatch(ApiRequest("POST", "/thing/42", {}, b"")).status == 405
    assert router.dispatch(ApiRequest("GET", "/other", {}, b"")).status == 404


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="log_format"):
        SandboxConfig(None, FunctionSpec(), log_format="XML")
    with pytest.raises(ValueError, match="telemetry"):
        SandboxConfig(None, FunctionSpec(), telemetry="some")
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxConfig(None, FunctionSpec(), memory_mb=64)
    with pytest.raises(ValueError, match="layer_dir"):
        SandboxConfig(tmp_path / "missing", FunctionSpec())
    cfg = SandboxConfig(None, FunctionSpec(), log_format="JSON")
    assert cfg.function_environment("h:1", "stream")["AWS_LAMBDA_LOG_LEVEL"] == "INFO"
    assert "AWS_LAMBDA_LOG_LEVEL" not in SandboxConfig(None, FunctionSpec()).lambda_environment(
        "h:1")


def _frame(message: bytes, frame_type: int = 0xA55A0003, micros: int = 1_700_000_000_000_000):
    return (frame_type.to_bytes(4, "big") + len(message).to_bytes(4, "big")
            + micros.to_bytes(8, "big") + message)


def test_output_pump_splits_lines_and_frames_and_drains():
    chunks: list[Chunk] = []
    pump = OutputPump("unit", chunks.append)
    out_r, out_w = os.pipe()
    fd_r, fd_w = os.pipe()
    pump.add(out_r, "stdout")
    pump.add(fd_r, "telemetry-fd")
    pump.start()
    try:
        os.write(out_w, b"one\ntw")
        os.write(fd_w, _frame(b"multi\nline frame\n")[:10])
        assert pump.drain(2.0)
        assert [c.text for c in chunks] == ["one\n"]
        os.write(fd_w, _frame(b"multi\nline frame\n")[10:] + _frame("é".encode()))
        os.write(out_w, b"o\n")
        assert pump.drain(2.0)
        texts = sorted(c.text for c in chunks)
        assert texts == sorted(["one\n", "two\n", "multi\nline frame\n", "é"])
        frame = next(c for c in chunks if c.stream == "telemetry-fd")
        assert frame.frame_type == 0xA55A0003 and frame.time == pytest.approx(1.7e9)
        os.write(out_w, b"no newline at the end")
    finally:
        os.close(out_w)
        os.close(fd_w)
    assert pump.join(2.0)
    assert chunks[-1].text == "no newline at the end"


def test_output_pump_stop_is_bounded():
    pump = OutputPump("stuck", lambda chunk: None)
    read_end, write_end = os.pipe()
    pump.add(read_end, "stdout")
    pump.start()
    started = time.monotonic()
    pump.stop()
    assert pump.join(2.0)
    assert time.monotonic() - started < 1.0
    os.close(write_end)
