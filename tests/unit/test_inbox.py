"""The listener -> worker hand-over: bounded by what pushes cost in memory, woken when told."""

from __future__ import annotations

import threading
import time

from lambda_logs_http.delivery.inbox import EVENT_OVERHEAD_BYTES, Inbox, push_cost

EVENT = {"type": "function", "record": "x"}


class ObservedCondition(threading.Condition):
    """Says when a thread waits on it, and counts the notifications."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self.notifications = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)

    def notify_all(self) -> None:
        self.notifications += 1
        super().notify_all()


def _taker(inbox: Inbox, got: list[object], pushes: bool = True) -> tuple[threading.Thread, ObservedCondition]:
    condition = inbox._cond = ObservedCondition()
    thread = threading.Thread(target=lambda: got.append(inbox.take(pushes, 5)))
    thread.start()
    assert condition.waiting.wait(5)  # it waits on the empty inbox
    return thread, condition


def test_the_cost_is_the_bytes_and_a_fixed_price_per_event() -> None:
    assert push_cost(1000, 3) == 1000 + 3 * EVENT_OVERHEAD_BYTES


def test_a_quiet_push_waits_for_wake() -> None:
    inbox, got = Inbox(10_000), []
    taker, condition = _taker(inbox, got)
    assert inbox.put_push([EVENT], 100, wait=0.1, wake=False)
    assert condition.notifications == 0  # queued, but the taker is not woken
    inbox.wake()
    taker.join(1)
    assert got == [[EVENT]]


def test_a_quiet_push_that_finds_the_inbox_full_wakes_the_taker() -> None:
    # Otherwise the listener would wait for room that only the sleeping worker can make.
    inbox, got = Inbox(1000), []
    taker, _ = _taker(inbox, got)
    assert inbox.put_push([EVENT, EVENT], 800, wait=0.1, wake=False)
    started = time.monotonic()
    assert inbox.put_push([EVENT], 400, wait=2, wake=False)
    assert time.monotonic() - started < 1
    taker.join(1)
    assert got == [[EVENT, EVENT]] and inbox.records == 1 and inbox.cost == 400


def test_full_inbox_refuses_after_the_wait_but_never_a_first_push() -> None:
    inbox = Inbox(1000)
    assert inbox.put_push([EVENT] * 5, 5000, wait=0)  # larger than the bound, but alone
    started = time.monotonic()
    assert not inbox.put_push([EVENT], 10, wait=0.1)
    assert 0.05 < time.monotonic() - started < 1
    assert inbox.take(True, 0) == [EVENT] * 5 and inbox.records == 0 and inbox.cost == 0


def test_signals_go_before_pushes_and_pushes_keep_their_order() -> None:
    inbox = Inbox(10_000)
    inbox.put_push([EVENT], 10, wait=0)
    inbox.put_push([EVENT, EVENT], 10, wait=0)
    inbox.signal("flush")
    assert inbox.take(True, 0) == "flush"
    assert inbox.take_push_nowait() == [EVENT]
    assert inbox.take(True, 0) == [EVENT, EVENT]
    assert inbox.take(True, 0) is None and inbox.take_push_nowait() is None


def test_a_taker_holding_pushes_back_sees_signals_and_wakes_only() -> None:
    inbox = Inbox(10_000)
    inbox.put_push([EVENT], 10, wait=0)
    assert inbox.take(False, 0) is None  # a push waits, but the taker does not want one now
    got: list[object] = []
    taker, _ = _taker(inbox, got, pushes=False)
    inbox.wake()  # e.g. the sender made room: look again
    taker.join(1)
    assert got == [None] and inbox.records == 1
    inbox.signal("stop")
    assert inbox.take(False, 0) == "stop"
