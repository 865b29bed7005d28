"""The hand-over from the listener to the worker, bounded by records rather than pushes.

A push can carry one record or thousands, and parsed records are what costs memory, so the
bound counts records. When it is reached the listener waits briefly for room (backpressure:
Lambda simply sees a slower answer) and then gives up, so Lambda keeps the push and retries it.
At least one push is always accepted, so a single push larger than the bound still goes through.

Control items (a flush request, the stop signal) are never refused and keep their place in line
behind the pushes queued before them.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class Inbox:
    """A FIFO of pushes (lists of events) and control items, shared by two threads."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self._items: deque[object] = deque()
        self._records = 0
        self._cond = threading.Condition()

    def put_push(self, events: list[dict[str, object]], wait: float, wake: bool = True) -> bool:
        """Queue one push, waiting up to ``wait`` seconds for room; False if there was none.

        ``wake=False`` leaves the taker asleep until ``wake()``: the listener answers Lambda
        first, so the two threads don't fight over the GIL while the push is still unanswered.
        """
        size = len(events)
        with self._cond:
            if self._records and self._records + size > self.max_records:
                self._cond.notify_all()  # pushes queued without a wake must be taken now
                deadline = time.monotonic() + wait
                while self._records and self._records + size > self.max_records:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            self._items.append(events)
            self._records += size
            if wake:
                self._cond.notify_all()
        return True

    def wake(self) -> None:
        """Wake the taker for what ``put_push(wake=False)`` queued."""
        with self._cond:
            self._cond.notify_all()

    def put(self, item: object) -> None:
        """Queue a control item (never refused)."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None) -> object | None:
        """The next item, waiting up to ``timeout`` seconds (None: forever); None on timeout."""
        with self._cond:
            if not self._items:
                if timeout is not None and timeout <= 0:
                    return None
                self._cond.wait_for(lambda: bool(self._items), timeout)
                if not self._items:
                    return None
            return self._take()

    def get_push_nowait(self) -> list[dict[str, object]] | None:
        """The next item if it is a push; None if the inbox is empty or a control item is next."""
        with self._cond:
            if self._items and isinstance(self._items[0], list):
                return self._take()  # type: ignore[return-value]
            return None

    @property
    def records(self) -> int:
        """Records queued (not yet taken by the worker)."""
        return self._records

    def _take(self) -> object:
        item = self._items.popleft()
        if isinstance(item, list):
            self._records -= len(item)
            self._cond.notify_all()
        return item
