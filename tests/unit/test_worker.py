"""DeliveryWorker end to end with the real transport and a real receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lambda_logs_http.auth import Auth
from lambda_logs_http.config import Config, load
from lambda_logs_http.progress import DELIVERED, InvocationProgress
from lambda_logs_http.stats import Stats
from lambda_logs_http.transform import EntryContext, Transformer
from lambda_logs_http.transport import HttpTransport
from lambda_logs_http.worker import DeliveryWorker, backoff
from lambda_sandbox.receiver import Receiver


def function_lines(n: int, request_id: str = "r-1") -> list[dict[str, object]]:
    lines: list[dict[str, object]] = [
        {"time": "t", "type": "function", "record": f"line {i}\n"} for i in range(n)
    ]
    lines.append({"time": "t", "type": "platform.runtimeDone",
                  "record": {"requestId": request_id, "status": "success"}})
    return lines


class Running:
    def __init__(self, config: Config) -> None:
        self.progress = InvocationProgress()
        self.stats = Stats()
        self.worker = DeliveryWorker(
            config,
            Transformer(EntryContext("fn", "1", 128, "us-east-1", "x86_64")),
            lambda: HttpTransport(config.endpoint, Auth()),
            self.progress,
            self.stats,
        )
        self.worker.start()


@pytest.fixture
def make(receiver: Receiver) -> Iterator[object]:
    started: list[Running] = []

    def build(**settings: str) -> Running:
        running = Running(load({"HTTP_ENDPOINT": receiver.url, **settings}))
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


def test_flush_gives_up_at_the_deadline(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make()
    running.worker.submit([{"time": "t", "type": "function", "record": "a"}])
    started = time.monotonic()
    assert running.worker.flush(started + 0.5) is False
    assert time.monotonic() - started < 1.5
    assert running.worker.stop(5)
    assert running.stats.dropped == {"shutdown": 1}


def test_buffer_cap_drops_oldest(make, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script([{"status": 503, "times": 1000}])
    running = make(HTTP_MAX_BUFFER_BYTES="4096", HTTP_MAX_BATCH_BYTES="1024")
    for n in range(10):
        running.worker.submit(function_lines(5, request_id=f"r-{n}"))
    assert running.progress.wait("r-5", time.monotonic() + 5, 5) == DELIVERED  # dropped = released
    assert running.stats.dropped_total() > 0
    assert running.stats.dropped.keys() == {"buffer_full"}


def test_backoff_is_capped_full_jitter() -> None:
    assert backoff(1, rng=lambda: 1.0) == pytest.approx(0.2)
    assert backoff(30, rng=lambda: 1.0) == 5.0
    assert backoff(3, rng=lambda: 0.0) == 0.0


def test_start_twice_and_stop_twice(make) -> None:  # type: ignore[no-untyped-def]
    running = make()
    with pytest.raises(RuntimeError):
        running.worker.start()
    assert running.worker.stop(5) and running.worker.stop(5)
