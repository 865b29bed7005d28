"""DeliveryWorker end to end with the real transport and a real receiver process.

The policy itself (backoff, Retry-After, 413, spill, drop accounting) is unit-tested against a
fake transport and clock in tests/unit/test_delivery_policy.py; these tests show the thread,
the transport and a real HTTP server doing it together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_logs_http.invocations import DELIVERED, InvocationProgress
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.model import Settings
from lambda_logs_http.stats import Stats
from tests.support.workers import started_worker
from tools.lambda_sandbox.receiver import Receiver


def function_lines(n: int, request_id: str = "r-1") -> list[dict[str, object]]:
    lines: list[dict[str, object]] = [
        {"time": "t", "type": "function", "record": f"line {i}\n"} for i in range(n)
    ]
    lines.append({"time": "t", "type": "platform.runtimeDone",
                  "record": {"requestId": request_id, "status": "success"}})
    return lines


class Running:
    def __init__(self, settings: Settings) -> None:
        self.progress = InvocationProgress()
        self.stats = Stats()
        self.worker = started_worker(settings, self.progress, self.stats)


@pytest.fixture
def make(receiver: Receiver, tmp_path: Path) -> Iterator[object]:
    started: list[Running] = []

    def build(**settings: str) -> Running:
        base = {"HTTP_ENDPOINT": receiver.url, "HTTP_SPILL_DIR": str(tmp_path / "spill")}
        running = Running(load({**base, **settings}))
        started.append(running)
        return running

    yield build
    for running in started:
        assert running.worker.stop(5)


def test_runtime_done_triggers_a_send(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_BATCH_MAX_AGE_MS="60000")
    running.worker.submit(function_lines(3))
    assert running.progress.wait("r-1", time.monotonic() + 5, 5) == DELIVERED
    messages = [e["message"] for e in receiver.entries()]
    assert messages == ["line 0", "line 1", "line 2", "END RequestId: r-1"]
    assert running.stats.delivered == 4


def test_batches_respect_limits_and_order(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_MAX_BATCH_RECORDS="10", HTTP_MAX_BATCH_BYTES="2000")
    for push in range(5):
        running.worker.submit(function_lines(20, request_id=f"r-{push}"))
    assert running.progress.wait("r-4", time.monotonic() + 10, 10) == DELIVERED
    requests = receiver.requests()
    assert all(len(r["body"]) <= 2000 for r in requests)
    entries = receiver.entries()
    assert len(entries) == 105
    assert [e["message"] for e in entries[:21]] == [f"line {i}" for i in range(20)] + [
        "END RequestId: r-0"
    ]


def test_old_partial_batch_is_sent_by_age(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_BATCH_MAX_AGE_MS="100")
    running.worker.submit([{"time": "t", "type": "function", "record": "no runtimeDone yet"}])
    deadline = time.monotonic() + 5
    while not receiver.requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e["message"] for e in receiver.entries()] == ["no runtimeDone yet"]


def test_retries_after_503_and_keeps_order(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 2}])
    running = make()
    running.worker.submit(function_lines(2))
    assert running.progress.wait("r-1", time.monotonic() + 10, 10) == DELIVERED
    assert [e["message"] for e in receiver.entries()] == ["line 0", "line 1", "END RequestId: r-1"]
    assert running.stats.retried == 6 and running.stats.delivered == 3


def test_permanent_error_drops_and_releases(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 400}])
    running = make()
    running.worker.submit(function_lines(2))
    assert running.progress.wait("r-1", time.monotonic() + 5, 5) == DELIVERED
    assert running.stats.dropped == {"http_400": 3}


def test_flush_delivers_everything_before_the_deadline(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_BATCH_MAX_AGE_MS="60000")
    running.worker.submit([{"time": "t", "type": "function", "record": "a"}])
    assert running.worker.flush(time.monotonic() + 5) is True
    assert [e["message"] for e in receiver.entries()] == ["a"]


def test_flush_gives_up_at_the_deadline_and_keeps_the_rest_on_disk(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make()
    running.worker.submit([{"time": "t", "type": "function", "record": "a"}])
    started = time.monotonic()
    assert running.worker.flush(started + 0.5) is False
    assert time.monotonic() - started < 1.5
    assert running.worker.stop(5)
    assert running.stats.dropped == {} and running.stats.on_disk == 1


def test_without_a_spill_directory_leftovers_are_counted_as_dropped(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make(HTTP_MAX_SPILL_BYTES="0")
    running.worker.submit([{"time": "t", "type": "function", "record": "a"}])
    assert running.worker.flush(time.monotonic() + 0.3) is False
    assert running.worker.stop(5)
    assert running.stats.dropped == {"shutdown": 1}


def test_over_the_memory_cap_batches_spill_to_disk_and_are_sent_first(make, receiver: Receiver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make(HTTP_MAX_BUFFER_BYTES="4096", HTTP_MAX_BATCH_BYTES="1024")
    for n in range(10):
        running.worker.submit(function_lines(5, request_id=f"r-{n}"))
    # Spilled batches release their invocation: nothing is gained by waiting for them.
    assert running.progress.wait("r-5", time.monotonic() + 5, 5) == DELIVERED
    assert running.stats.spilled > 0 and running.stats.dropped == {}
    assert list((tmp_path / "spill").glob("*.batch"))
    receiver.script([])
    assert running.progress.wait("r-9", time.monotonic() + 15, 15) == DELIVERED
    assert running.worker.flush(time.monotonic() + 10)
    messages = [e["message"] for e in receiver.entries()]
    expected = [m for n in range(10) for m in [f"line {i}" for i in range(5)] + [f"END RequestId: r-{n}"]]
    assert messages == expected  # nothing lost, nothing twice, order kept across disk and memory
    assert not list((tmp_path / "spill").glob("*.batch"))


def test_spilled_batches_survive_a_restart(make, receiver: Receiver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    first = make()
    first.worker.submit(function_lines(3))
    assert first.worker.flush(time.monotonic() + 0.3) is False
    assert first.worker.stop(5)  # e.g. SHUTDOWN after a function timeout: Lambda keeps /tmp
    assert first.stats.on_disk == 4
    receiver.script([])
    second = make()  # the new extension process in the same environment
    second.worker.submit([{"time": "t", "type": "function", "record": "after restart"}])
    assert second.worker.flush(time.monotonic() + 5)
    messages = [e["message"] for e in receiver.entries()]
    assert messages == ["line 0", "line 1", "line 2", "END RequestId: r-1", "after restart"]


def test_beyond_both_caps_the_oldest_are_dropped_and_reported(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make(HTTP_MAX_BUFFER_BYTES="2048", HTTP_MAX_BATCH_BYTES="1024", HTTP_MAX_SPILL_BYTES="3000")
    for n in range(20):
        running.worker.submit(function_lines(5, request_id=f"r-{n}"))
    # r-16 was pushed out of memory (spilled or dropped), so every push before it was ingested.
    assert running.progress.wait("r-16", time.monotonic() + 5, 5) == DELIVERED
    receiver.script([])
    assert running.worker.flush(time.monotonic() + 10)
    dropped = running.stats.dropped.get("spill_full", 0)
    assert dropped > 0 and running.stats.dropped.keys() == {"spill_full"}
    reports = [e for e in receiver.entries() if e["message"].startswith("LOGS_DROPPED")]
    assert reports and all(e["level"] == "WARN" and e["log_type"] == "extension" for e in reports)
    assert sum(e["record"]["droppedRecords"] for e in reports) == dropped
    delivered = [e for e in receiver.entries() if not e["message"].startswith("LOGS_DROPPED")]
    assert len(delivered) + dropped == 20 * 6  # every record accounted for


def test_retry_after_is_honoured(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 429, "retry_after": "1"}])
    running = make()
    started = time.monotonic()
    running.worker.submit(function_lines(1))
    assert running.progress.wait("r-1", time.monotonic() + 5, 5) == DELIVERED
    times = [r["time"] for r in receiver.requests()]
    assert len(times) == 1 and time.monotonic() - started >= 0.95


def test_413_splits_the_batch_then_truncates_a_single_record(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with Receiver(tmp_path, max_body=3000) as small:
        running = make(HTTP_ENDPOINT=small.url)
        lines = [{"time": "t", "type": "function", "record": f"line {i} " + "x" * 300} for i in range(20)]
        lines.append({"time": "t", "type": "function", "record": "huge " + "y" * 10_000})
        lines.append({"time": "t", "type": "platform.runtimeDone", "record": {"requestId": "r-1"}})
        running.worker.submit(lines)
        assert running.progress.wait("r-1", time.monotonic() + 10, 10) == DELIVERED
        entries = small.entries()
        assert [e["message"][:7] for e in entries[:20]] == [f"line {i} "[:7] for i in range(20)]
        huge = entries[20]["message"]
        assert huge.startswith("huge yyy") and "truncated by lambda-logs-http" in huge
        assert entries[21]["message"] == "END RequestId: r-1"
        assert running.stats.dropped == {}


def test_gzip(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_COMPRESSION="gzip", HTTP_COMPRESSION_LEVEL="6")
    running.worker.submit(function_lines(50))
    assert running.progress.wait("r-1", time.monotonic() + 5, 5) == DELIVERED
    (request,) = receiver.requests()
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["wire_bytes"] < len(request["body"]) / 3
    assert len(receiver.entries()) == 51




def test_an_otlp_413_splits_into_valid_requests(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with Receiver(tmp_path, max_body=4000) as small:
        running = make(HTTP_ENDPOINT=small.url, HTTP_FORMAT="otlp")
        lines = [{"time": "t", "type": "function", "record": f"line {i} " + "x" * 300} for i in range(20)]
        lines.append({"time": "t", "type": "platform.runtimeDone", "record": {"requestId": "r-1"}})
        running.worker.submit(lines)
        assert running.progress.wait("r-1", time.monotonic() + 10, 10) == DELIVERED
        bodies = [json.loads(r["body"]) for r in small.requests()]
        assert len(bodies) > 1 and all(len(r["body"]) <= 4000 for r in small.requests())
        records = [rec for body in bodies for rec in body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]]
        assert [r["body"]["stringValue"][:7] for r in records[:20]] == [f"line {i} "[:7] for i in range(20)]
        assert running.stats.dropped == {}


def test_an_otlp_partial_success_is_counted_not_retried(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    running = make(HTTP_FORMAT="otlp", HTTP_BATCH_MAX_AGE_MS="60000")
    receiver.script([{"answer": '{"partialSuccess":{"rejectedLogRecords":"2",'
                                '"errorMessage":"2 records too old"}}'}])
    running.worker.submit(function_lines(5))
    assert running.progress.wait("r-1", time.monotonic() + 5, 5) == DELIVERED
    first, *later = [json.loads(r["body"]) for r in receiver.requests()]
    assert len(first["resourceLogs"][0]["scopeLogs"][0]["logRecords"]) == 6
    # Never sent again: what follows is the drop report, which names the loss.
    for body in later:
        (report,) = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        assert "bulk_rejected" in json.dumps(report)
    assert running.stats.dropped == {"bulk_rejected": 2}
    assert running.stats.delivered == 4


def test_start_twice_and_stop_twice(make) -> None:  # type: ignore[no-untyped-def]
    running = make()
    with pytest.raises(RuntimeError):
        running.worker.start()
    assert running.worker.stop(5) and running.worker.stop(5)


def test_the_shutdowns_timeout_entry_is_kept_on_disk_when_it_cannot_be_sent(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """A SHUTDOWN (timeout) with the receiver down: the entry that says so is not lost at exit,
    it goes to disk with the invocation's lines and out with the next process's first send."""
    from lambda_logs_http.records.enrich import ShutdownNotice

    receiver.script([{"status": 503, "times": 1000}])
    first = make()
    first.worker.submit([{"time": "t", "type": "function", "record": "working\n"}])
    first.worker.submit([ShutdownNotice.make("timeout", "r-9", "2024-01-15T10:30:03.000Z")], 0)
    assert first.worker.flush(time.monotonic() + 0.3) is False
    assert first.worker.stop(5)
    assert first.stats.dropped == {} and first.stats.skipped == 0
    receiver.script([])
    second = make()
    second.worker.submit([{"time": "t", "type": "function", "record": "after restart"}])
    assert second.worker.flush(time.monotonic() + 5)
    messages = [e["message"] for e in receiver.entries()]
    assert messages == [
        "working",
        "RequestId: r-9 Error: Task timed out: Lambda shut the execution environment down (timeout)",
        "after restart",
    ]
