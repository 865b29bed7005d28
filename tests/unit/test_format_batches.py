"""What every output format owes the batching, whatever its framing: the body's size is counted
exactly and never passes the limit, an oversize entry is cut and stays an entry of its format,
a 413 splits a batch into bodies of the same format, gzip carries it unchanged, and a spilled
batch comes back from disk as it went (checked by its encoder) or not at all.

``FORMATS`` maps a format to a reader that parses a body the way its receiver does and returns
the entries' messages (plain text, or the structured message of a record).
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.delivery import spill
from lambda_logs_http.delivery.batching import Batcher, Framing
from lambda_logs_http.delivery.sender import Sender, split_too_large
from lambda_logs_http.records.encoders import encoder_class
from lambda_logs_http.records.record import EntryContext, Record
from lambda_logs_http.settings.load import load
from tests.support.fakes import FakeClock, ScriptedTransport

CONTEXT = EntryContext("fn", "3", 512, "us-west-2", "x86_64", account_id="111122223333",
                       extension_version="0.9", extra_fields={"env": "prod", "shard": 4})


def _bulk(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8")
    assert text.endswith("\n")
    parsed = [json.loads(line) for line in text[:-1].split("\n")]
    assert all(action == {"create": {}} for action in parsed[0::2])
    for document in parsed[1::2]:  # a date, or ES refuses the document (a mapping error)
        datetime.fromisoformat(document["@timestamp"].replace("Z", "+00:00"))
    return parsed[1::2]


def _hec(body: bytes) -> list[str]:
    from tests.support.hec import read_events

    events = [e["event"] for e in read_events(body)]
    return [e if isinstance(e, str) else e["message"] for e in events]


def _datadog(body: bytes) -> list[dict[str, Any]]:
    from tests.support.datadog_intake import read_logs

    return read_logs(body)


READERS: dict[str, Callable[[bytes], list[str]]] = {
    "elasticsearch": lambda body: [document["message"] for document in _bulk(body)],
    "splunk_hec": _hec,
    "datadog": lambda body: [entry["message"] for entry in _datadog(body)],
}
FORMATS = sorted(READERS)


def encoder(name: str) -> Any:
    return encoder_class(name)(CONTEXT)


def record(message: str, fields: dict[str, Any] | None = None, request_id: str = "") -> Record:
    out = Record()
    out.time, out.level, out.message = "2024-01-15T10:30:00.123Z", "ERROR", message
    out.log_type = out.event_type = "function"
    out.request_id, out.fields = request_id, fields
    return out


def messages(name: str, body: bytes) -> list[str]:
    return READERS[name](body)


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=60),
       limit=st.integers(min_value=1_200, max_value=6_000))
def test_every_body_is_exactly_its_counted_size_and_within_the_limit(
    name: str, texts: list[str], limit: int
) -> None:
    enc = encoder(name)
    framing = Framing.of(enc)
    batcher = Batcher(limit, 25, framing)
    batches = []
    for n, text in enumerate(texts):
        full = batcher.add(enc.entry(record(text, request_id=f"r-{n % 3}")), float(n))
        if full:
            batches.append(full)
    last = batcher.take()
    assert last is not None
    batches.append(last)
    got = []
    for batch in batches:
        body = batch.body()
        assert len(body) == batch.size <= limit
        assert len(batch) <= 25
        got += messages(name, body)
    cut = [m for m in got if "truncated by lambda-logs-http" in m]
    assert len(got) == len(texts) and len(cut) == batcher.truncated
    assert [m for m, t in zip(got, texts) if "truncated by" not in m] == [
        t for m, t in zip(got, texts) if "truncated by" not in m
    ]


@pytest.mark.parametrize("name", FORMATS)
def test_an_oversize_entry_is_cut_to_fit_and_stays_an_entry_of_its_format(name: str) -> None:
    enc = encoder(name)
    framing = Framing.of(enc)
    batcher = Batcher(4_000, 100, framing)
    huge = enc.entry(record("é" * 20_000, fields={"big": "x" * 20_000, "msg": "m"}))
    batcher.add(huge, 0.0)
    batch = batcher.take()
    assert batch is not None and batcher.truncated == 1
    body = batch.body()
    assert len(body) == batch.size <= 4_000
    (message,) = messages(name, body)
    assert message.startswith("ééé") and "truncated by lambda-logs-http" in message
    assert enc.check_entry(json.loads(batch.entries[0])) == ""


@pytest.mark.parametrize("name", FORMATS)
def test_a_413_splits_a_batch_into_two_bodies_of_the_same_format(name: str) -> None:
    enc = encoder(name)
    framing = Framing.of(enc)
    batcher = Batcher(1 << 20, 1000, framing)
    for n in range(9):
        batcher.add(enc.entry(record(f"line {n}")), 0.0)
    batch = batcher.take()
    assert batch is not None
    halves = split_too_large(batch, 1.0)
    assert [len(h) for h in halves] == [4, 5]
    assert [m for h in halves for m in messages(name, h.body())] == [f"line {n}" for n in range(9)]
    for half in halves:
        assert len(half.body()) == half.size
    (alone,) = split_too_large(halves[0].__class__(0.0, [enc.entry(record("y" * 9_000))],
                                                   framing), 1.0)
    (cut,) = messages(name, alone.body())
    assert len(alone.body()) == alone.size < 9_000 and "truncated by lambda-logs-http" in cut


@pytest.mark.parametrize("name", FORMATS)
def test_gzip_carries_the_body_unchanged_with_the_formats_content_type(name: str) -> None:
    enc = encoder(name)
    framing = Framing.of(enc)
    batcher = Batcher(1 << 20, 1000, framing)
    for n in range(3):
        batcher.add(enc.entry(record(f"line {n}")), 0.0)
    batch = batcher.take()
    assert batch is not None
    settings_ = load({"HTTP_ENDPOINT": "http://receiver.test/x", "HTTP_COMPRESSION": "gzip"})
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    sender = Sender(transport, settings_.batching, 5.0, clock)
    assert sender.send(batch, None).result.ok
    (request,) = transport.requests
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["headers"]["Content-Type"] == enc.content_type
    plain = gzip.decompress(request["body"])
    assert plain == batch.body() or messages(name, plain) == messages(name, batch.body())
    assert messages(name, plain) == ["line 0", "line 1", "line 2"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_spilled_batch_comes_back_as_it_went(name: str, tmp_path: Path) -> None:
    enc = encoder(name)
    framing = Framing.of(enc)
    batcher = Batcher(1 << 20, 1000, framing)
    batcher.add(enc.entry(record("plain")), 0.0)
    batcher.add(enc.entry(record("json", fields={"a": [1, {"b": None}], "msg": "json"})), 0.0)
    batch = batcher.take()
    assert batch is not None
    dropped: list[tuple[str, int]] = []
    store = spill.SpillStore(str(tmp_path), 1 << 20, lambda r, n: dropped.append((r, n)), framing)
    store.open()
    store.write(batch.batch_id, len(batch), batch.payload())
    back = store.read_oldest()
    assert back is not None and dropped == []
    assert back.entries == batch.entries and back.body() == batch.body()


@pytest.mark.parametrize("name", FORMATS)
def test_a_spilled_seed_batch_is_never_sent_in_another_format(name: str, tmp_path: Path) -> None:
    seed = encoder("seed")
    seed_batcher = Batcher(1 << 20, 1000, Framing.of(seed))
    seed_batcher.add(seed.entry(record("seed line")), 0.0)
    batch = seed_batcher.take()
    assert batch is not None
    spill.SpillStore(str(tmp_path), 1 << 20, framing=Framing.of(seed)).write(
        batch.batch_id, 1, batch.payload())
    dropped: list[tuple[str, int]] = []
    store = spill.SpillStore(str(tmp_path), 1 << 20, lambda r, n: dropped.append((r, n)),
                             Framing.of(encoder(name)))
    assert store.open() == 0 and store.read_oldest() is None
    assert dropped == [(spill.OTHER_FORMAT, 1)]


@pytest.mark.parametrize("name", FORMATS)
def test_a_planted_file_of_the_formats_name_but_foreign_entries_is_refused(
    name: str, tmp_path: Path
) -> None:
    framing = Framing.of(encoder(name))
    store = spill.SpillStore(str(tmp_path), 1 << 20, framing=framing)
    store.open()
    # A seed entry, then a line that would add an action of its own to a _bulk body.
    store.write("b-1", 2, b'{"timestamp":"t","level":"INFO","message":"m","log_type":"function"}'
                          b'\n{"delete":{"_index":"logs","_id":"1"}}')
    dropped: list[tuple[str, int]] = []
    again = spill.SpillStore(str(tmp_path), 1 << 20, lambda r, n: dropped.append((r, n)), framing)
    again.open()  # the header is checked at open, the entries when read
    assert again.read_oldest() is None and dropped == [("spill_invalid", 2)]


def test_the_settings_know_every_registered_format() -> None:
    from lambda_logs_http.records.encoders import MODULES
    from lambda_logs_http.settings.model import FORMATS

    assert set(FORMATS) == set(MODULES) and FORMATS[0] == "seed"
    assert set(READERS) <= set(FORMATS)


# -- whatever the function logs ---------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
_records = st.one_of(st.text(max_size=80), _json_values,
                     st.dictionaries(st.sampled_from(["level", "message", "msg", "requestId",
                                                      "tenantId", "x"]), _json_values, max_size=5))
_kinds = st.sampled_from(["function", "extension", "platform.start", "platform.report",
                          "platform.runtimeDone", "platform.weird"])


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=150, deadline=None)
@given(record_=_records, kind=_kinds, time=st.one_of(st.none(), st.text(max_size=30),
                                                     st.just("2024-01-15T10:30:00.123Z")))
def test_any_event_becomes_an_entry_its_receiver_reads_and_its_spill_check_accepts(
    name: str, record_: object, kind: str, time: object
) -> None:
    """Every event encodes in every format (the careful path included) to ASCII text on one
    line, that the receiver's reader takes in a body, and that the format's own spill check
    accepts once read back: a valid entry is never thrown away as "invalid" after a restart."""
    from lambda_logs_http.records.transform import UNENCODABLE, Transformer

    enc = encoder(name)
    transformer = Transformer(CONTEXT, encoder=enc)
    event: dict[str, object] = {"type": kind, "record": record_}
    if time is not None:
        event["time"] = time
    entry = transformer.encode(event)
    if entry is None:
        return
    assert entry != UNENCODABLE
    assert entry.isascii() and "\n" not in entry
    assert enc.check_entry(json.loads(entry)) == ""
    framing = Framing.of(enc)
    batcher = Batcher(1 << 20, 1000, framing)
    batcher.add(entry, 0.0)
    batcher.add(transformer.drop_report("bulk_rejected", 2), 0.0)
    batch = batcher.take()
    assert batch is not None
    assert len(messages(name, batch.body())) == 2
    assert spill.check_payload(batch.payload(), 2, framing) == batch.entries


@pytest.mark.parametrize("name", FORMATS)
def test_an_escape_heavy_entry_fits_the_smallest_batch_though_its_context_is_large(
    name: str,
) -> None:
    """Found by the property above: 256 characters that each encode as \\uXXXX plus a format's
    context exceed a 1,200-byte batch; the message is then cut further, never the limit."""
    enc = encoder(name)
    batcher = Batcher(1_200, 10, Framing.of(enc))
    batcher.add(enc.entry(record("0" * 28 + "\x1f" * 60 + "İıĲĳ̵̶" * 40)), 0.0)
    batch = batcher.take()
    assert batch is not None
    assert len(batch.body()) == batch.size <= 1_200
    (message,) = messages(name, batch.body())
    assert message.startswith("0000") and "truncated by lambda-logs-http" in message
