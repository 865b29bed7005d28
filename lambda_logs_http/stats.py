"""Counters that account for every record: received, delivered, retried, spilled, dropped,
filtered.

Written by several threads (listener, worker, main); a lock keeps the arithmetic exact, which
matters because the shutdown summary promises that the numbers add up. The lock is
``_thread``'s: the listener counts during init, before ``threading`` is imported.
"""

from __future__ import annotations

import _thread


class Stats:
    """Thread-safe record counters. ``dropped`` maps a reason to a count."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self.received = 0
        self.skipped = 0
        self.filtered = 0  # left out on purpose: HTTP_MIN_LEVEL, HTTP_INCLUDE/EXCLUDE_PATTERN
        self.delivered = 0
        self.retried = 0
        self.batches = 0
        self.spilled = 0
        self.truncated = 0
        self.on_disk = 0
        self.resent = 0  # pushes Lambda sent again, taken once
        self.dropped: dict[str, int] = {}

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def drop(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def dropped_total(self) -> int:
        with self._lock:
            return sum(self.dropped.values())

    def summary(self) -> str:
        """One line for the shutdown log."""
        with self._lock:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items()))
            dropped = sum(self.dropped.values())
            return (
                f"received={self.received} delivered={self.delivered} retried={self.retried} "
                f"dropped={dropped}"
                + (f" ({reasons})" if reasons else "")
                + f" spilled={self.spilled} on_disk={self.on_disk} truncated={self.truncated}"
                + f" skipped={self.skipped} filtered={self.filtered} batches={self.batches}"
                + (f" resent={self.resent}" if self.resent else "")
            )
