"""The hand-over from the listener to the worker, bounded by what the pushes cost in memory.

A push can carry one record or thousands, of a few bytes or 256 KB each: a bound in pushes, or
in records, would hold megabytes or hundreds of megabytes depending on their shape. So each push
is weighed by what it occupies once parsed — its body's bytes plus a fixed cost per event for
the objects that hold it (``push_cost``) — and the bound is in those bytes. When it is reached
the listener waits briefly for room (backpressure: Lambda simply sees a slower answer) and then
gives up, so Lambda keeps the push and retries it. At least one push is always accepted, so a
single push larger than the bound still goes through (the listener bounds a push's size and
number of events to what Lambda sends).

Signals (flush, stop) are never refused and go before the pushes: the worker acts on them at
once, and takes every push still queued in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    Push = list[dict[str, object]]

# What a parsed event costs beyond its bytes of JSON: the dict and the small str objects of
# its keys and values (measured with tracemalloc on CPython 3.12: 330-420 bytes an event).
EVENT_OVERHEAD_BYTES = 400


def push_cost(body_bytes: int, events: int) -> int:
    """The memory a parsed push occupies, as the inbox counts it."""
    return body_bytes + EVENT_OVERHEAD_BYTES * events


class Inbox:
    """A FIFO of pushes (lists of events) and a set of signals, shared by two threads."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost
        self._items: deque[tuple[Push, int]] = deque()
        self._cost = 0
        self._records = 0
        self._signals: list[str] = []
        self._wakes = 0
        self._waiting: list[float] = []  # since when each listener waiting for room waits
        self._cond = threading.Condition()

    def put_push(self, events: Push, cost: int, wait: float, wake: bool = True) -> bool:
        """Queue one push, waiting up to ``wait`` seconds for room; False if there was none.

        ``wake=False`` leaves the taker asleep until ``wake()``: the listener answers Lambda
        first, so the two threads don't fight over the GIL while the push is still unanswered.
        """
        with self._cond:
            if self._cost and self._cost + cost > self.max_cost:
                since = time.monotonic()
                self._waiting.append(since)
                self._wake()  # pushes queued without a wake must be taken now
                try:
                    deadline = since + wait
                    while self._cost and self._cost + cost > self.max_cost:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        self._cond.wait(remaining)
                finally:
                    self._waiting.remove(since)
            self._items.append((events, cost))
            self._cost += cost
            self._records += len(events)
            if wake:
                self._wake()
        return True

    def wake(self) -> None:
        """Have the taker look again: pushes queued with ``wake=False``, or its own reasons to
        take one now (another thread made room for it)."""
        with self._cond:
            self._wake()

    def signal(self, name: str) -> None:
        """Queue a signal (never refused; taken before any push)."""
        with self._cond:
            self._signals.append(name)
            self._wake()

    def take(self, pushes: bool, timeout: float | None) -> Push | str | None:
        """The next signal, else (when ``pushes``) the next push; None after ``timeout`` seconds
        (None: no limit) or a ``wake()``, so the caller can look at its state again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            wakes = self._wakes
            while True:
                if self._signals:
                    return self._signals.pop(0)
                if pushes and self._items:
                    return self._take()
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._wakes != wakes or (remaining is not None and remaining <= 0):
                    return None
                self._cond.wait(remaining)

    def take_push_nowait(self) -> Push | None:
        """The next push, if one is queued."""
        with self._cond:
            return self._take() if self._items else None

    def waited(self) -> float | None:
        """How long the listener has been waiting for room (None: it is not waiting)."""
        with self._cond:
            return time.monotonic() - self._waiting[0] if self._waiting else None

    @property
    def records(self) -> int:
        """Records queued (not yet taken by the worker)."""
        return self._records

    @property
    def cost(self) -> int:
        """What the queued pushes cost (see ``push_cost``)."""
        return self._cost

    def _take(self) -> Push:
        events, cost = self._items.popleft()
        self._cost -= cost
        self._records -= len(events)
        self._cond.notify_all()  # room for a listener waiting to put
        return events

    def _wake(self) -> None:
        self._wakes += 1
        self._cond.notify_all()
