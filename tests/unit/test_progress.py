from __future__ import annotations

import threading
import time

import pytest

from lambda_logs_http.invocations import BUDGET, DEADLINE, DELIVERED, InvocationProgress


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


@pytest.mark.parametrize("budget", [0.2, 0.0])
def test_budget_is_kept_when_runtime_done_arrives_during_the_wait(budget: float) -> None:
    # The arrival wakes no one (0.2 s: the waiter finds out by itself) unless the budget is
    # tiny (0 s: it is woken); either way the release comes budget after it, not later.
    progress = InvocationProgress()
    timer = threading.Timer(0.15, progress.runtime_done_arrived, args=("r",))
    timer.start()
    assert progress.wait("r", time.monotonic() + 5, budget) == BUDGET
    released = time.monotonic()
    timer.join()
    arrived = progress._arrived["r"]
    # Not before the budget ran out, and not much after (the deadline is 5 s away).
    assert arrived + budget <= released < arrived + budget + 0.5


def test_runtime_done_arrival_does_not_wake_the_waiter() -> None:
    # Waking the main thread for nothing would take the GIL from the worker just as it starts
    # on the invocation's last records.
    waiting = threading.Event()
    notified: list[str] = []

    class CountingCondition(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            waiting.set()
            return super().wait(timeout)

        def notify_all(self) -> None:
            notified.append("notify_all")
            super().notify_all()

    progress = InvocationProgress()
    progress._cond = CountingCondition()
    waiter = threading.Thread(target=progress.wait, args=("r", time.monotonic() + 5, 1.0))
    waiter.start()
    assert waiting.wait(5)  # the main thread is waiting for "r"
    progress.runtime_done_arrived("r")
    progress.report_arrived("earlier")
    assert notified == []  # neither arrival wakes it
    progress.delivered(["r"])
    waiter.join(1)
    assert not waiter.is_alive() and notified == ["notify_all"]


def test_report_wait_is_woken_by_the_report() -> None:
    progress = InvocationProgress()
    timer = threading.Timer(0.05, progress.report_arrived, args=("r",))
    timer.start()
    started = time.monotonic()
    assert progress.wait_report("r", started + 5) is True
    assert time.monotonic() - started < 1
    timer.join()


def test_forged_runtime_done_events_cannot_evict_the_invocation_waited_for() -> None:
    """A local process pushing runtimeDone events with random ids must not push the real one
    out of the bounded memory before the main thread sees it delivered."""
    progress = InvocationProgress()
    outcome: list[str] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(progress.wait("real", time.monotonic() + 2, 2))
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while progress._current != "real":  # the main thread is waiting for "real"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with progress._cond:  # all of it before the waiter looks again
        progress.runtime_done_arrived("real")
        progress.delivered(["real"])
        for n in range(500):
            progress.runtime_done_arrived(f"forged-{n}")
            progress.delivered([f"forged-{n}"])
    waiter.join(5)
    assert outcome == ["delivered"]


def test_waiting_for_another_report_returns_when_one_arrives_or_at_the_deadline() -> None:
    """Managed Instances' SHUTDOWN: the failed invocation's report may still be on its way."""
    progress = InvocationProgress()
    progress.report_arrived("r-0")
    seen = progress.reports_seen()
    assert seen == 1
    assert progress.wait_another_report(seen, time.monotonic()) is False  # none yet: deadline
    arrive = threading.Timer(0.05, progress.report_arrived, args=("r-1",))
    arrive.start()
    assert progress.wait_another_report(seen, time.monotonic() + 5.0) is True
    arrive.join(5)
    assert progress.wait_another_report(seen, time.monotonic()) is True  # already there
