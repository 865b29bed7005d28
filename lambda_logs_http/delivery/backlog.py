"""Undelivered batches, in the order they go out, and the account of every one that leaves.

``Backlog`` holds what waits to be sent, oldest first: halves of a batch the receiver found too
large (413) and drop reports at the front, then batches spilled to disk, then batches in memory.
Memory is bounded by ``max_memory_bytes``: past it the oldest batches move to disk (``spill``),
and past the disk cap the oldest are dropped. Two threads share it — the intake adds batches,
the sender checks the head out, sends it and settles it — so every method takes its lock, and
the batch in flight is never spilled or dropped under the sender (it stays the head until it is
settled, so no thread but the backlog ever holds an undelivered batch alone). When the batch in
flight is the oldest in memory and newer ones must go to disk, it is older than the disk: it
stays in memory, ahead of the disk, until it is settled for good (or, at stop, is written to
disk ahead of the files there), so the order holds across memory, disk and restarts.

``Ledger`` is where each batch that leaves the backlog is accounted for — delivered, spilled or
dropped — in the counters, in the invocations waiting on it, and in the drop reports owed to
the receiver. Nothing leaves uncounted.
"""

from __future__ import annotations

import threading
from collections import deque

from .. import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union

    from ..invocations import InvocationProgress
    from ..stats import Stats
    from .batching import Batch
    from .spill import SpilledBatch, SpillStore

    AnyBatch = Union[Batch, SpilledBatch]

# Room kept in the spill directory for a file's header line, beyond the batch's own bytes.
SPILL_HEADER_BYTES = 512


class Ledger:
    """Accounts for batches as they leave the backlog; shared by the intake and the sender."""

    def __init__(self, stats: Stats, progress: InvocationProgress) -> None:
        self.stats = stats
        self.progress = progress
        self._lock = threading.Lock()
        self._unreported: dict[str, int] = {}  # reason -> records dropped, not yet reported

    def delivered(self, batch: AnyBatch) -> None:
        self.stats.add("delivered", len(batch) - batch.reports)
        self.stats.add("batches")
        self.progress.delivered(batch.marks)

    def partly_delivered(self, batch: AnyBatch, records: int, release: bool) -> None:
        """``records`` of ``batch`` were delivered (the receiver's answer refused the others:
        the caller counts those dropped, or sends them again in a batch of their own that
        takes over the invocations when ``release`` is False)."""
        self.stats.add("delivered", records)
        self.stats.add("batches")
        if release:
            self.progress.delivered(batch.marks)

    def spilled(self, batch: AnyBatch) -> None:
        self.stats.add("spilled", len(batch))
        # Safe on disk; an invocation gains nothing by waiting for it.
        self.progress.delivered(batch.marks)

    def dropped(self, batch: AnyBatch, reason: str) -> None:
        """``batch`` is lost: count it (its drop reports excepted) and release its invocations."""
        self.dropped_records(reason, len(batch) - batch.reports)
        # The invocation waiting on these can't be helped by waiting longer.
        self.progress.delivered(batch.marks)

    def dropped_records(self, reason: str, records: int) -> None:
        """Records lost for ``reason``; reported to the receiver after the next successful send.

        Waiting for a success keeps reports from feeding an outage (a report spilled to a full
        disk would push out another batch, which would need another report, ...).
        """
        if records <= 0:
            return
        self.stats.drop(reason, records)
        with self._lock:
            self._unreported[reason] = self._unreported.get(reason, 0) + records

    def take_unreported(self) -> dict[str, int]:
        """The drops not yet reported (reason -> records), forgotten once taken."""
        with self._lock:
            unreported, self._unreported = self._unreported, {}
        return unreported


class Backlog:
    """The batches waiting to be sent; see the module docstring for their order and bounds."""

    def __init__(self, spill: SpillStore, max_memory_bytes: int, ledger: Ledger) -> None:
        self.spill = spill
        self.max_memory_bytes = max_memory_bytes
        self._ledger = ledger
        # Reentrant: a thread waiting on ``changed`` may look at the backlog in its predicate.
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)  # notified with ``version`` bumped
        self.version = 0  # counts changes: a waiter compares it to know if it missed one
        self._front: deque[Batch] = deque()  # 413 halves and drop reports
        self._spilled_head: SpilledBatch | None = None
        self._ready: deque[Batch] = deque()
        self._in_flight: AnyBatch | None = None
        # The head of ``_ready`` is older than every file on disk: it was in flight when newer
        # batches were spilled. It goes out before the disk and is never spilled behind it.
        self._ready_head_first = False
        self._spill_full_streak = 0  # spills in a row that had to drop older files
        self.memory_bytes = 0  # the bytes of the batches in ``_ready``

    def __bool__(self) -> bool:
        with self._lock:
            return self._has_batches()

    def waiting_in_memory(self) -> int:
        """Batches in memory that are not in flight: what the next sends will take."""
        with self._lock:
            waiting = len(self._ready) + len(self._front)
            in_memory = self._in_flight is not None and self._in_flight is not self._spilled_head
            return waiting - (1 if in_memory else 0)

    def records(self) -> int:
        """Records held, in memory and on disk (approximate while another thread adds)."""
        with self._lock:
            in_memory = sum(len(b) for b in (*self._front, *self._ready))
            return in_memory + self.spill.records

    def add(self, batch: Batch, may_spill: bool) -> None:
        """Queue ``batch`` behind the others; over the memory cap, and when ``may_spill``, move
        the oldest batches in memory to disk (the newest, and the one in flight, stay)."""
        with self._lock:
            self._ready.append(batch)
            self.memory_bytes += batch.size
            while self.memory_bytes > self.max_memory_bytes and may_spill:
                # The oldest in memory goes first, unless it must stay ahead of the disk.
                pinned = self._ready_head_first or self._ready[0] is self._in_flight
                if len(self._ready) - pinned < 2:
                    break
                oldest = self._ready[1] if pinned else self._ready[0]
                self._ready.remove(oldest)
                self.memory_bytes -= oldest.size
                self._spill_or_drop(oldest)
                self._ready_head_first = pinned
            self.notify()

    def put_front(self, *batches: Batch) -> None:
        """Put ``batches`` at the head of the line, in the order given."""
        with self._lock:
            self._front.extendleft(reversed(batches))
            self.notify()

    def notify(self) -> None:
        """Tell the waiters something changed (call with the lock held, or it is taken)."""
        with self._lock:
            self.version += 1
            self.changed.notify_all()

    def checkout(self) -> AnyBatch | None:
        """The batch that goes out next (loaded from disk if it is there), now in flight."""
        with self._lock:
            head = self._head()
            self._in_flight = head
            return head

    def settle(self, head: AnyBatch, *, remove: bool) -> None:
        """The send of ``head`` is over: ``remove`` it (it is accounted for), or keep it at the
        head for a later attempt."""
        with self._lock:
            self._in_flight = None
            if remove:
                self._pop(head)
            self.notify()

    def keep_on_disk(self) -> None:
        """At stop: what is left in memory goes to disk when it fits (a reset keeps /tmp);
        the rest is dropped and counted. Nothing may be in flight any more."""
        with self._lock:
            # The front, and a ready head older than the disk, go ahead of the files there.
            ahead = [*self._front]
            if self._ready_head_first:
                ahead.append(self._ready.popleft())
            behind = [*self._ready]
            self._front.clear()
            self._ready.clear()
            self._in_flight = None
            self._ready_head_first = False
            self.memory_bytes = 0
            for batch in reversed(ahead):  # each written ahead of the one before it
                self._keep_at_stop(batch, first=True)
            for batch in behind:
                self._keep_at_stop(batch, first=False)

    # -- under the lock -----------------------------------------------------------------------

    def _keep_at_stop(self, batch: Batch, first: bool) -> None:
        """At stop: ``batch`` to disk when it fits (ahead of the files there when ``first``),
        else dropped and counted."""
        if self.spill.max_bytes and self.spill.can_hold(batch.size + SPILL_HEADER_BYTES):
            self._spill_or_drop(batch, first)
        else:
            self._ledger.dropped(batch, "shutdown")

    def _has_batches(self) -> bool:
        return bool(self._front or len(self.spill) or self._ready)

    def _head(self) -> AnyBatch | None:
        if self._front:
            return self._front[0]
        if self._ready_head_first:
            return self._ready[0]
        if len(self.spill):
            if self._spilled_head is None:
                self._spilled_head = self.spill.read_oldest()
            if self._spilled_head is not None:
                return self._spilled_head
        return self._ready[0] if self._ready else None

    def _pop(self, head: AnyBatch) -> None:
        if self._front and head is self._front[0]:
            self._front.popleft()
        elif head is self._spilled_head:
            self.spill.remove(self._spilled_head.path)
            self._spilled_head = None
        elif self._ready and head is self._ready[0]:
            self._ready.popleft()
            self.memory_bytes -= head.size
            self._ready_head_first = False

    def _spill_or_drop(self, batch: Batch, first: bool = False) -> None:
        """Keep ``batch`` on disk (ahead of the files there when ``first``), making room by
        dropping the oldest files (never the one in flight); drop it if it cannot be kept."""
        payload = batch.payload()
        if not self.spill.can_hold(len(payload) + SPILL_HEADER_BYTES):
            self._ledger.dropped(batch, "buffer_full")
            return
        in_flight = self._in_flight
        keep = in_flight.path if in_flight is not None and in_flight is self._spilled_head else None
        try:
            dropped = self.spill.write(batch.batch_id, len(batch), payload, keep=keep, first=first)
        except OSError:  # logged by the store, once per streak of failures (a full disk)
            self._ledger.dropped(batch, "buffer_full")
            return
        self._ledger.spilled(batch)
        if dropped:
            if self._spilled_head is not None and self._spilled_head is not self._in_flight:
                self._spilled_head = None  # it may have been one of the files dropped
            for records in dropped:
                self._ledger.dropped_records("spill_full", records)
            self._spill_full_streak += 1
            if self._spill_full_streak == 1:  # one line a streak: the summary has the count
                log.error(
                    f"spill directory full ({self.spill.max_bytes} bytes): dropping the oldest "
                    f"records to make room ({sum(dropped)} so far; repeats are logged at debug "
                    "level, the total is in the shutdown summary as spill_full)"
                )
            elif log.enabled(log.DEBUG):
                log.debug(f"spill directory still full: dropped the oldest {sum(dropped)} records")
        else:
            self._spill_full_streak = 0
