"""The delivery policy, deterministically: a fake transport, a fake clock, no threads.

What is sent when, what is retried when, what a 413 becomes, what goes to disk, what is dropped
and how it is reported. The intake and the sending side, which run on two threads in the
extension, are driven here one step at a time. The same behaviours against a real receiver, with
the threads: tests/integration.
"""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from lambda_logs_http import log
from lambda_logs_http.delivery.worker import assemble
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.records.transform import Transformer
from lambda_logs_http.settings.load import load
from lambda_logs_http.stats import Stats
from tests.support.fakes import FakeClock, ScriptedTransport
from tests.support.workers import CONTEXT


def lines(n: int, request_id: str = "", prefix: str = "line") -> list[dict[str, object]]:
    """A push of ``n`` function lines, ending with a runtimeDone when ``request_id`` is given."""
    push: list[dict[str, object]] = [
        {"time": "t", "type": "function", "record": f"{prefix} {i}\n"} for i in range(n)
    ]
    if request_id:
        push.append({"time": "t", "type": "platform.runtimeDone",
                     "record": {"requestId": request_id, "status": "success"}})
    return push


class Pipeline:
    """The intake and the sending side stepped in turn, as the two threads would run them."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        parts = rig.parts
        self.intake, self.sending, self.backlog = parts.intake, parts.sending, parts.backlog

    def ingest(self, events: list[dict[str, object]]) -> None:
        self.intake.ingest(events)

    def send_due(self, deadline: float | None = None) -> None:
        """The intake closes a batch that is due by age, then the sender sends what is due,
        the intake taking in the pushes that arrived meanwhile as its policy allows."""
        self.intake.close_if_due(now_due=deadline is not None)
        self.sending.deadline = deadline
        while True:
            before = self.backlog.version
            self.sending.send_due()
            while self.rig.pending and self.intake.may_take_push():
                self.intake.ingest(self.rig.pending.popleft())
            if self.backlog.version == before or self.sending.wait_time() != 0.0:
                return

    def wait_time(self) -> float | None:
        times = [t for t in (self.intake.wait_time(), self.sending.wait_time()) if t is not None]
        return min(times) if times else None

    def flush(self, deadline: float) -> bool:
        """What the worker's flush does, with the fake clock's sleep between attempts."""
        self.intake.flushing = True
        while self.rig.pending:
            self.intake.ingest(self.rig.pending.popleft())
        while True:
            self.send_due(deadline)
            if not self.backlog and self.intake.batcher.open is None:
                return True
            remaining = deadline - self.rig.clock.now
            if remaining <= 0:
                return False
            wait = self.sending.wait_time()
            self.rig.clock.sleep(min(remaining, wait if wait else remaining))

    def finish(self) -> None:
        """What the worker does at stop (the sender already stopped)."""
        self.intake.flushing = True
        while self.rig.pending:
            self.intake.ingest(self.rig.pending.popleft())
        self.intake.close_if_due(now_due=True)
        self.backlog.keep_on_disk()
        self.rig.stats.add("on_disk", self.backlog.spill.records)
        self.sending.sender.close()

    def pending_records(self) -> int:
        return self.backlog.records() + self.intake.pending_records()


class Rig:
    """The delivery parts wired as the worker wires them, around a scripted transport and a
    fake clock."""

    def __init__(self, tmp_path: Path, answers: list[Any] | None = None,
                 send_seconds: float = 0.001, jitter: float = 1.0,
                 transformer: Transformer | None = None, **env: str) -> None:
        self.clock = FakeClock()
        self.transport = ScriptedTransport(self.clock, answers, send_seconds)
        self.settings = load({"HTTP_ENDPOINT": "http://receiver.test/ingest",
                              "HTTP_SPILL_DIR": str(tmp_path / "spill"), **env})
        self.stats = Stats()
        self.progress = InvocationProgress(clock=self.clock)
        self.pending: deque[list[dict[str, object]]] = deque()
        self.parts = assemble(
            self.settings.batching, self.settings.delivery,
            self.settings.endpoint.timeout_seconds, transformer or Transformer(CONTEXT),
            self.transport,
            self.stats, self.progress,
            clock=self.clock, now_epoch=lambda: 1_700_000_000.0, rng=lambda: jitter,
        )
        self.pipeline = Pipeline(self)

    def push(self, events: list[dict[str, object]]) -> None:
        """What the worker does with a push: ingest it, then send what is due."""
        self.pipeline.ingest(events)
        self.pipeline.send_due()

    def messages(self) -> list[str]:
        return [entry["message"] for entry in self.transport.delivered()]

    def delivered(self, request_id: str) -> bool:
        return self.progress.wait(request_id, self.clock.now, 0) == "delivered"


@pytest.fixture
def captured_log() -> Any:
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    import sys

    log.set_stream(sys.stdout)


def test_a_runtime_done_sends_its_batch_at_once_and_releases_the_invocation(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HTTP_BATCH_MAX_AGE_MS="60000")
    rig.push(lines(3, "r-1"))
    assert rig.messages() == ["line 0", "line 1", "line 2", "END RequestId: r-1"]
    assert rig.delivered("r-1") and rig.stats.delivered == 4 and rig.stats.batches == 1
    headers = rig.transport.requests[0]["headers"]
    assert headers["Idempotency-Key"] == headers["X-Request-Id"]


def test_the_periodic_strategy_waits_for_the_batch_age(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HTTP_FLUSH_STRATEGY="periodic", HTTP_BATCH_MAX_AGE_MS="300")
    rig.push(lines(2, "r-1"))
    assert rig.transport.requests == [] and rig.pipeline.wait_time() == pytest.approx(0.3)
    rig.clock.advance(0.299)
    rig.pipeline.send_due()
    assert rig.transport.requests == []
    rig.clock.advance(0.001)
    rig.pipeline.send_due()
    assert len(rig.messages()) == 3 and rig.delivered("r-1")


def test_failures_back_off_exponentially_with_a_cap(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[503] * 8, send_seconds=0.0, jitter=1.0)
    rig.push(lines(1, "r-1"))
    waits = []
    for _ in range(8):
        wait = rig.pipeline.wait_time()
        waits.append(round(wait, 3))
        rig.clock.advance(wait)
        rig.pipeline.send_due()
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]  # 0.1 s * 2^attempt, capped at 5 s
    assert rig.messages() == ["line 0", "END RequestId: r-1"]
    assert rig.stats.retried == 2 * 8 and rig.stats.delivered == 2


def test_jitter_spreads_the_backoff_below_its_bound(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[503], send_seconds=0.0, jitter=0.25)
    rig.push(lines(1, "r-1"))
    assert rig.pipeline.wait_time() == pytest.approx(0.25 * 0.2)


def test_a_new_invocation_cuts_our_backoff_short(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[503, 503, 503, 503], send_seconds=0.0)
    rig.push(lines(1, "r-1"))
    for _ in range(3):  # the backoff grows to 1.6 s
        rig.clock.advance(rig.pipeline.wait_time())
        rig.pipeline.send_due()
    assert rig.pipeline.wait_time() == pytest.approx(1.6)
    rig.push(lines(1, "r-2", prefix="next"))  # its runtimeDone: try now, not in 1.6 s
    assert rig.messages() == ["line 0", "END RequestId: r-1", "next 0", "END RequestId: r-2"]


def test_retry_after_is_honoured_even_by_a_new_invocation(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[{"status": 429, "retry_after": "2"}], send_seconds=0.0)
    rig.push(lines(1, "r-1"))
    rig.clock.advance(1.0)
    rig.push(lines(1, "r-2"))  # a new runtimeDone does not cut a Retry-After short
    assert len(rig.transport.requests) == 1
    assert rig.pipeline.wait_time() == pytest.approx(1.0)
    rig.clock.advance(1.0)
    rig.pipeline.send_due()
    assert rig.transport.requests[1]["at"] - rig.transport.requests[0]["at"] == pytest.approx(2.0)
    assert rig.delivered("r-1") and rig.delivered("r-2")


def test_retry_after_as_an_http_date(tmp_path: Path) -> None:
    # 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT: three seconds later.
    rig = Rig(tmp_path, answers=[{"status": 503, "retry_after": "Tue, 14 Nov 2023 22:13:23 GMT"}],
              send_seconds=0.0, jitter=0.0)
    rig.push(lines(1, "r-1"))
    assert rig.pipeline.wait_time() == pytest.approx(3.0)


def test_413_sends_halves_and_lowers_the_batch_limit(tmp_path: Path, captured_log: io.StringIO) -> None:
    rig = Rig(tmp_path, answers=[413], HTTP_MAX_BATCH_BYTES="100000")
    rig.push(lines(40, "r-1"))
    sizes = [len(r["body"]) for r in rig.transport.requests]
    assert [r["status"] for r in rig.transport.requests] == [413, 200, 200]
    assert sizes[1] + sizes[2] < sizes[0] + 200  # two halves of the same entries
    assert rig.messages() == [f"line {i}" for i in range(40)] + ["END RequestId: r-1"]
    assert rig.delivered("r-1") and rig.stats.dropped == {}
    assert "batches are now limited to" in captured_log.getvalue()
    assert "HTTP_MAX_BATCH_BYTES" in captured_log.getvalue()


def test_413_for_a_single_record_truncates_it_then_gives_up(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[413, 413, 413, 413, 413, 413, 413, 413])
    rig.push([{"time": "t", "type": "function", "record": "huge " + "y" * 20_000}])
    rig.pipeline.flush(rig.clock.now + 1)
    assert rig.stats.truncated >= 1
    assert rig.stats.dropped == {"too_large": 1}  # cut below 1 KiB: dropped, and counted


def test_413_for_a_single_record_delivers_it_truncated(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[413, 413])  # the batch, then its half holding the huge record
    rig.push([{"time": "t", "type": "function", "record": "huge " + "y" * 20_000},
              {"time": "t", "type": "platform.runtimeDone", "record": {"requestId": "r-1"}}])
    rig.pipeline.flush(rig.clock.now + 1)
    (huge, end) = rig.transport.delivered()
    assert huge["message"].startswith("huge yyy") and "truncated by lambda-logs-http" in huge["message"]
    assert end["message"] == "END RequestId: r-1" and rig.stats.truncated == 1


def test_a_refused_batch_is_dropped_counted_and_reported_after_the_next_success(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[400])
    rig.push(lines(2, "r-1"))
    assert rig.delivered("r-1")  # nothing to wait for: it is gone
    assert rig.stats.dropped == {"http_400": 3}
    rig.push(lines(1, "r-2"))  # delivered, and the report goes out right after it
    *sent, report = rig.transport.delivered()
    assert [e["message"] for e in sent] == ["line 0", "END RequestId: r-2"]
    assert report["message"] == "LOGS_DROPPED lambda-logs-http dropped 3 records: http_400"
    assert report["level"] == "WARN" and report["record"]["droppedRecords"] == 3
    assert rig.stats.delivered == 2  # the report is not counted as a delivered record


def test_a_repeated_failure_is_logged_once_whatever_its_body_says(tmp_path: Path, captured_log: io.StringIO) -> None:
    answers = [{"status": 503, "body": f"busy, request id {i}".encode()} for i in range(5)]
    rig = Rig(tmp_path, answers=[*answers, {"status": 500}], send_seconds=0.0)
    rig.push(lines(1, "r-1"))
    for _ in range(6):
        rig.clock.advance(rig.pipeline.wait_time())
        rig.pipeline.send_due()
    lines_logged = captured_log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines_logged] == [
        "[EXTENSION] WARNING send failed",  # 503, whatever the body
        "[EXTENSION] WARNING send failed",  # 500: another failure
        "[EXTENSION] INFO delivery resumed after 6 failed attempts",
    ]
    assert "HTTP 503: busy, request id 0" in lines_logged[0]


def test_a_failing_receiver_gets_the_backlog_spilled_and_sent_oldest_first(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=["connection"] * 1000, send_seconds=0.0,
              HTTP_MAX_BUFFER_BYTES="4096", HTTP_MAX_BATCH_BYTES="1024")
    for n in range(10):
        rig.push(lines(5, f"r-{n}"))
    assert rig.stats.spilled > 0 and rig.stats.dropped == {}
    assert list((tmp_path / "spill").glob("*.batch"))
    assert rig.delivered("r-5")  # spilled batches release their invocations
    rig.transport.answers.clear()
    assert rig.pipeline.flush(rig.clock.now + 60)
    expected = [m for n in range(10) for m in [f"line {i}" for i in range(5)] + [f"END RequestId: r-{n}"]]
    assert rig.messages() == expected  # nothing lost, nothing twice, order kept
    assert not list((tmp_path / "spill").glob("*.batch"))


def test_beyond_the_disk_cap_the_oldest_are_dropped_and_reported(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=["connection"] * 1000, send_seconds=0.0,
              HTTP_MAX_BUFFER_BYTES="2048", HTTP_MAX_BATCH_BYTES="1024", HTTP_MAX_SPILL_BYTES="3000")
    for n in range(20):
        rig.push(lines(5, f"r-{n}"))
    rig.transport.answers.clear()
    assert rig.pipeline.flush(rig.clock.now + 60)
    dropped = rig.stats.dropped["spill_full"]
    assert rig.stats.dropped.keys() == {"spill_full"}
    reports = [e for e in rig.transport.delivered() if e["message"].startswith("LOGS_DROPPED")]
    assert sum(e["record"]["droppedRecords"] for e in reports) == dropped
    assert len(rig.messages()) - len(reports) + dropped == 20 * 6  # every record accounted for


def test_a_healthy_receiver_gets_no_batches_encoded_far_ahead(tmp_path: Path) -> None:
    """Our CPU, not the receiver, limits throughput: pushes wait parsed, not as batches."""
    rig = Rig(tmp_path, send_seconds=0.02)  # well under the 100 ms of a slow receiver
    rig.pending.extend(lines(20, f"r-{n}") for n in range(30))
    most_in_memory = 0
    while rig.pending:
        rig.push(rig.pending.popleft())
        most_in_memory = max(most_in_memory, rig.pipeline.pending_records())
    assert most_in_memory <= 2 * 21  # the batch in flight and the next one
    assert len(rig.messages()) == 30 * 21


def test_a_slow_receiver_gets_pushes_taken_in_up_to_the_cap(tmp_path: Path) -> None:
    """Behind a slow receiver the inbox is emptied into batches, so Lambda's buffer never fills."""
    rig = Rig(tmp_path, answers=[200], send_seconds=0.15)
    rig.pipeline.ingest(lines(20, "r-0"))
    rig.pending.extend(lines(20, f"r-{n}") for n in range(1, 12))
    rig.pipeline.send_due(rig.clock.now + 0.15)  # one slow send, then the deadline
    assert not rig.pending  # every waiting push was taken in
    assert rig.pipeline.pending_records() == 11 * 21


def test_flush_sleeps_out_the_backoff_until_its_deadline(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[503] * 1000, send_seconds=0.01)
    rig.pipeline.ingest(lines(1))
    started = rig.clock.now
    assert rig.pipeline.flush(started + 3.0) is False
    assert rig.clock.now == pytest.approx(started + 3.0, abs=0.02)
    assert rig.clock.slept and len(rig.transport.requests) >= 3
    rig.pipeline.finish()
    assert rig.stats.on_disk == 1 and rig.transport.closed


def test_without_a_spill_directory_leftovers_are_dropped_at_the_end(tmp_path: Path) -> None:
    rig = Rig(tmp_path, answers=[503] * 1000, HTTP_MAX_SPILL_BYTES="0")
    rig.pipeline.ingest(lines(1))
    assert rig.pipeline.flush(rig.clock.now + 0.5) is False
    rig.pipeline.finish()
    assert rig.stats.dropped == {"shutdown": 1} and rig.stats.on_disk == 0
