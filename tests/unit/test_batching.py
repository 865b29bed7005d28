from __future__ import annotations

import json

from lambda_logs_http.delivery.batching import ENVELOPE_BYTES, Batcher


def entry(n: int, size: int = 50) -> str:
    return json.dumps({"n": n, "pad": "x" * size})


def test_body_is_the_seed_envelope() -> None:
    batcher = Batcher(10_000, 100)
    batcher.add(entry(1), 0.0)
    batch = batcher.take()
    assert batch is not None
    body = json.loads(batch.body("2024-01-15T10:30:00.000Z"))
    assert body == {"logs": [{"n": 1, "pad": "x" * 50}], "source": "aws-lambda-extension",
                    "timestamp": "2024-01-15T10:30:00.000Z"}


def test_size_is_exact_and_never_exceeds_the_limit() -> None:
    limit = 1_000
    batcher = Batcher(limit, 10_000)
    batches = []
    for n in range(200):
        full = batcher.add(entry(n, size=n % 37), float(n))
        if full:
            batches.append(full)
    last = batcher.take()
    assert last is not None
    batches.append(last)
    for batch in batches:
        body = batch.body()
        assert len(body) == batch.size <= limit
    numbers = [e["n"] for b in batches for e in json.loads(b.body())["logs"]]
    assert numbers == list(range(200))


def test_record_limit() -> None:
    batcher = Batcher(1 << 20, 3)
    fulls = [batcher.add(entry(n), 0.0) for n in range(7)]
    assert [len(f) for f in fulls if f] == [3, 3]


def test_oversized_entry_goes_alone() -> None:
    batcher = Batcher(200, 100)
    assert batcher.add(entry(1, 10), 0.0) is None
    full = batcher.add(entry(2, 500), 0.0)
    assert full is not None and len(full) == 1
    alone = batcher.take()
    assert alone is not None and len(alone) == 1


def test_marks_and_ids() -> None:
    batcher = Batcher(1 << 20, 100)
    batcher.add(entry(1), 5.0)
    batcher.add(entry(2), 6.0, mark="req-1")
    batch = batcher.take()
    assert batch is not None
    assert batch.marks == ["req-1"] and batch.created == 5.0
    assert batcher.take() is None
    batcher.add(entry(3), 7.0)
    other = batcher.take()
    assert other is not None and other.batch_id != batch.batch_id


def test_envelope_size_constant_matches() -> None:
    batcher = Batcher(1 << 20, 100)
    batcher.add("{}", 0.0)
    batch = batcher.take()
    assert batch is not None
    assert len(batch.body()) == ENVELOPE_BYTES + 2


def test_truncate_entry_cuts_the_message_and_drops_the_record() -> None:
    from lambda_logs_http.delivery.batching import truncate_entry

    entry = json.dumps({"message": "m" * 5000 + "\n" * 100, "level": "INFO",
                        "record": {"big": "x" * 5000}})
    shrunk = truncate_entry(entry, 1000)
    assert len(shrunk) <= 1000 and shrunk.isascii()
    fields = json.loads(shrunk)
    assert "record" not in fields and fields["level"] == "INFO"
    assert fields["message"].startswith("mmm") and "truncated by lambda-logs-http" in fields["message"]
    assert truncate_entry('{"message":"short"}', 1000) == '{"message":"short"}'


def test_an_entry_larger_than_any_batch_is_truncated_to_fit() -> None:
    batcher = Batcher(2048, 100)
    batcher.add(json.dumps({"message": "z" * 10_000}), 0.0)
    batch = batcher.take()
    assert batch is not None and len(batch.body()) <= 2048
