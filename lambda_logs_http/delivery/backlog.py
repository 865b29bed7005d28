"""Undelivered batches, in the order they go out, and the account of every one that leaves.

``Backlog`` holds what waits to be sent, oldest first: halves of a batch the receiver found too
large (413) and drop reports at the front, then batches spilled to disk, then batches in memory.
Memory is bounded by ``max_memory_bytes``: past it the oldest batches move to disk (``spill``),
and past the disk cap the oldest are dropped.

``Ledger`` is where each batch that leaves the backlog is accounted for — delivered, spilled or
dropped — in the counters, in the invocations waiting on it, and in the drop reports owed to
the receiver. Nothing leaves uncounted.
"""

from __future__ import annotations

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
    """Accounts for batches as they leave the backlog; shared by the backlog and the worker."""

    def __init__(self, stats: Stats, progress: InvocationProgress) -> None:
        self.stats = stats
        self.progress = progress
        self._unreported: dict[str, int] = {}  # reason -> records dropped, not yet reported

    def delivered(self, batch: AnyBatch) -> None:
        self.stats.add("delivered", len(batch) - batch.reports)
        self.stats.add("batches")
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
        self._unreported[reason] = self._unreported.get(reason, 0) + records

    def take_unreported(self) -> dict[str, int]:
        """The drops not yet reported (reason -> records), forgotten once taken."""
        unreported, self._unreported = self._unreported, {}
        return unreported


class Backlog:
    """The batches waiting to be sent; see the module docstring for their order and bounds."""

    def __init__(self, spill: SpillStore, max_memory_bytes: int, ledger: Ledger) -> None:
        self.spill = spill
        self.max_memory_bytes = max_memory_bytes
        self._ledger = ledger
        self._front: deque[Batch] = deque()  # 413 halves and drop reports
        self._spilled_head: SpilledBatch | None = None
        self._ready: deque[Batch] = deque()
        self.memory_bytes = 0  # the bytes of the batches in ``_ready``

    def __bool__(self) -> bool:
        return bool(self._front or len(self.spill) or self._ready)

    @property
    def has_ready(self) -> bool:
        """Whether a batch waits in memory (behind the front and the disk)."""
        return bool(self._ready)

    def records(self) -> int:
        """Records held, in memory and on disk (approximate while another thread adds)."""
        in_memory = sum(len(b) for b in (*self._front, *self._ready))
        return in_memory + self.spill.records

    def add(self, batch: Batch, may_spill: bool) -> None:
        """Queue ``batch`` behind the others; over the memory cap, and when ``may_spill``, move
        the oldest batches in memory to disk (the newest always stays in memory)."""
        self._ready.append(batch)
        self.memory_bytes += batch.size
        while self.memory_bytes > self.max_memory_bytes and len(self._ready) > 1 and may_spill:
            oldest = self._ready.popleft()
            self.memory_bytes -= oldest.size
            self.spill_or_drop(oldest)

    def put_front(self, *batches: Batch) -> None:
        """Put ``batches`` at the head of the line, in the order given."""
        self._front.extendleft(reversed(batches))

    def head(self) -> AnyBatch | None:
        """The batch that goes out next (loaded from disk if it is there)."""
        if self._front:
            return self._front[0]
        if len(self.spill):
            if self._spilled_head is None:
                self._spilled_head = self.spill.read_oldest()
            if self._spilled_head is not None:
                return self._spilled_head
        return self._ready[0] if self._ready else None

    def pop(self, head: AnyBatch) -> None:
        """Remove ``head`` (what ``head()`` returned) once it is accounted for."""
        if self._front and head is self._front[0]:
            self._front.popleft()
        elif head is self._spilled_head:
            self.spill.remove(self._spilled_head.path)
            self._spilled_head = None
        else:
            self._ready.popleft()
            self.memory_bytes -= head.size

    def spill_or_drop(self, batch: Batch) -> None:
        """Keep ``batch`` on disk, making room by dropping the oldest files; drop it if it
        cannot be kept."""
        payload = batch.payload()
        if not self.spill.can_hold(len(payload) + SPILL_HEADER_BYTES):
            self._ledger.dropped(batch, "buffer_full")
            return
        try:
            dropped = self.spill.write(batch.batch_id, len(batch), payload)
        except OSError:  # logged by the store, once per streak of failures (a full disk)
            self._ledger.dropped(batch, "buffer_full")
            return
        self._ledger.spilled(batch)
        if dropped:
            # The oldest file goes first, and it may be the one loaded for sending.
            self._spilled_head = None
            for records in dropped:
                self._ledger.dropped_records("spill_full", records)
            log.error(
                f"spill directory full ({self.spill.max_bytes} bytes): dropped the "
                f"oldest {sum(dropped)} records"
            )

    def keep_on_disk(self) -> None:
        """At stop: what is left in memory goes to disk when it fits (a reset keeps /tmp);
        the rest is dropped and counted."""
        leftover = [*self._front, *self._ready]
        self._front.clear()
        self._ready.clear()
        self.memory_bytes = 0
        for batch in leftover:
            if self.spill.max_bytes and self.spill.can_hold(batch.size + SPILL_HEADER_BYTES):
                self.spill_or_drop(batch)
            else:
                self._ledger.dropped(batch, "shutdown")
