from __future__ import annotations

import threading
import time

from lambda_logs_http.progress import BUDGET, DEADLINE, DELIVERED, InvocationProgress


def test_delivered_before_wait_returns_at_once() -> None:
    progress = InvocationProgress()
    progress.runtime_done_arrived("r")
    progress.delivered(["r"])
    assert progress.wait("r", time.monotonic() + 10, 10) == DELIVERED


def test_wakes_on_delivery_from_another_thread() -> None:
    progress = InvocationProgress()
    timer = threading.Timer(0.05, progress.delivered, args=(["r"],))
    timer.start()
    started = time.monotonic()
    assert progress.wait("r", started + 5, 5) == DELIVERED
    assert time.monotonic() - started < 1
    timer.join()


def test_budget_counts_from_runtime_done_arrival() -> None:
    progress = InvocationProgress()
    progress.runtime_done_arrived("r")
    started = time.monotonic()
    assert progress.wait("r", started + 5, 0.1) == BUDGET
    assert 0.05 < time.monotonic() - started < 1


def test_deadline_applies_when_runtime_done_never_arrives() -> None:
    progress = InvocationProgress()
    started = time.monotonic()
    assert progress.wait("r", started + 0.1, 0.0) == DEADLINE
    assert time.monotonic() - started < 1


def test_reports() -> None:
    progress = InvocationProgress()
    assert progress.wait_report("r", time.monotonic() + 0.05) is False
    progress.report_arrived("r")
    assert progress.wait_report("r", time.monotonic() + 5) is True


def test_memory_is_bounded() -> None:
    progress = InvocationProgress()
    for n in range(1000):
        progress.runtime_done_arrived(str(n))
        progress.delivered([str(n)])
    assert len(progress._arrived) <= 64 and len(progress._delivered) <= 64
