"""The listener → worker hand-over: bounded by records, and woken when the listener says so."""

from __future__ import annotations

import threading
import time

from lambda_logs_http.delivery.inbox import Inbox

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


def _taker(inbox: Inbox, got: list[object]) -> tuple[threading.Thread, ObservedCondition]:
    condition = inbox._cond = ObservedCondition()
    thread = threading.Thread(target=lambda: got.append(inbox.get(5)))
    thread.start()
    assert condition.waiting.wait(5)  # it waits on the empty inbox
    return thread, condition


def test_a_quiet_push_waits_for_wake() -> None:
    inbox, got = Inbox(10), []
    taker, condition = _taker(inbox, got)
    assert inbox.put_push([EVENT], wait=0.1, wake=False)
    assert condition.notifications == 0  # queued, but the taker is not woken
    inbox.wake()
    taker.join(1)
    assert got == [[EVENT]]


def test_a_quiet_push_that_finds_the_inbox_full_wakes_the_taker() -> None:
    # Otherwise the listener would wait for room that only the sleeping worker can make.
    inbox, got = Inbox(2), []
    taker, _ = _taker(inbox, got)
    assert inbox.put_push([EVENT, EVENT], wait=0.1, wake=False)
    started = time.monotonic()
    assert inbox.put_push([EVENT], wait=2, wake=False)
    assert time.monotonic() - started < 1
    taker.join(1)
    assert got == [[EVENT, EVENT]] and inbox.records == 1


def test_full_inbox_refuses_after_the_wait_but_never_a_first_push() -> None:
    inbox = Inbox(2)
    assert inbox.put_push([EVENT] * 5, wait=0)  # larger than the bound, but alone
    started = time.monotonic()
    assert not inbox.put_push([EVENT], wait=0.1)
    assert 0.05 < time.monotonic() - started < 1
    assert inbox.get(0) == [EVENT] * 5 and inbox.records == 0


def test_control_items_keep_their_place_and_are_not_pushes() -> None:
    inbox = Inbox(10)
    inbox.put_push([EVENT], wait=0)
    inbox.put("flush")
    inbox.put_push([EVENT, EVENT], wait=0)
    assert inbox.get_push_nowait() == [EVENT]
    assert inbox.get_push_nowait() is None  # the control item is next
    assert inbox.get(0) == "flush"
    assert inbox.get(0) == [EVENT, EVENT]
    assert inbox.get(0) is None
