"""The intake: pushes in, batches out — on the worker thread, which never waits on the network.

Each push is encoded into entries (``records.transform``) and batched (``batching``); a batch
joins the backlog as soon as it is full, holds a request's ``platform.runtimeDone`` under the
``end`` strategy (that invocation waits to be released: it also cuts a backoff short, since
each invocation deserves a fresh attempt), or is ``max_age_ms`` old.

How much to take in: when the receiver keeps up, our own CPU is what limits throughput, so
encoding pushes far ahead of the sender would only hold megabytes of batches that can't go out
any sooner — the intake stops once a batch waits beside the one in flight, and the rest waits,
parsed, in the bounded inbox (the listener then pushes back on Lambda, whose answer comes a
little later). When the receiver is slow or failing — or a send hangs —, or the listener has
waited a while for room, it takes every push in, up to the memory cap and then to disk, so
Lambda's own buffer never fills and Lambda never has to drop.
"""

from __future__ import annotations

import time

from .. import log
from ..records.enrich import ShutdownNotice
from ..records.transform import FILTERED, UNENCODABLE_REASON
from .batching import SEED, Batch, Batcher, Framing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..records.transform import Transformer
    from ..settings.model import Batching
    from ..stats import Stats
    from .backlog import Backlog, Ledger
    from .sending import SendLoop

    Push = list[dict[str, object]]


class Intake:
    """Owned by the worker thread (``pending_records`` is safe from any thread)."""

    def __init__(
        self,
        batching: Batching,
        send_on_runtime_done: bool,
        transformer: Transformer,
        backlog: Backlog,
        sending: SendLoop,
        stats: Stats,
        ledger: Ledger,
        clock: Callable[[], float] = time.monotonic,
        framing: Framing = SEED,
    ) -> None:
        self.batcher = Batcher(batching.max_bytes, batching.max_records, framing)
        self._max_age = batching.max_age_ms / 1000.0
        self._send_on_runtime_done = send_on_runtime_done
        self._transformer = transformer
        self._backlog = backlog
        self._sending = sending
        self._stats = stats
        self._ledger = ledger  # a record that cannot be encoded is dropped, counted, reported
        self._clock = clock
        self.flushing = False  # shutdown: everything must be taken in, spilling if need be
        self.pressed = False  # the listener waited too long for room: take in, spill if need be

    def ingest(self, events: Push) -> None:
        """Encode one push into entries and batches."""
        now = self._clock()
        transformer = self._transformer
        encode = transformer.encode
        # The common entries are batched in runs (``Batcher.extend``); what needs more — an
        # alert to put first, a runtimeDone's mark, an event not forwarded — ends a run.
        run: list[str] = []
        append = run.append
        runtime_done = False
        filtered = 0
        for event in events:
            entry = encode(event)
            if entry and not transformer.alert and transformer.runtime_done is None:
                append(entry)
                continue
            if run:
                self._batch(run, now)
                run.clear()
            if transformer.alert:
                # A failed invocation's ERROR entry goes first (before its runtimeDone, whose
                # batch releases the invocation). Like a drop report, it is the extension's
                # own: not among the records received and delivered.
                self._enqueue(self.batcher.add(transformer.alert, now, "", True))
                transformer.alert = ""
            mark = transformer.runtime_done
            transformer.runtime_done = None
            if not entry:  # None: skipped on purpose; UNENCODABLE (""): lost, count and report
                if entry is None:
                    # A SHUTDOWN's notice is no record: not counted at all.
                    if event.__class__ is not ShutdownNotice:
                        self._stats.add("skipped")
                elif entry is FILTERED:
                    filtered += 1
                else:
                    self._ledger.dropped_records(UNENCODABLE_REASON, 1)
                continue
            if mark is not None:
                runtime_done = True
            self._enqueue(self.batcher.add(entry, now, mark or ""))
        if run:
            self._batch(run, now)
        if filtered:
            self._stats.add("filtered", filtered)
        if self.batcher.truncated:
            count_truncated(self._stats, self.batcher.truncated, "larger than a whole batch")
            self.batcher.truncated = 0
        if runtime_done and self._send_on_runtime_done:
            # An invocation is waiting to be released: don't wait for the batch to fill, and
            # don't sit out a backoff begun in an earlier invocation either.
            self._enqueue(self.batcher.take())
            self._sending.cut_backoff()

    def _batch(self, entries: list[str], now: float) -> None:
        for full in self.batcher.extend(entries, now):
            self._enqueue(full)

    def may_take_push(self) -> bool:
        """Whether the next push is worth taking in now (see the module docstring)."""
        return self.may_spill() or self._backlog.waiting_in_memory() == 0

    def may_spill(self) -> bool:
        """Spill only when the receiver is what holds delivery back, or Lambda would have to."""
        return self.flushing or self.pressed or self._sending.receiver_is_behind()

    def wait_time(self) -> float | None:
        """Seconds until the open batch is due by age (None: there is none)."""
        open_batch = self.batcher.open
        if open_batch is None:
            return None
        return open_batch.created + self._max_age - self._clock()

    def close_if_due(self, now_due: bool = False) -> None:
        """Queue the open batch once it is ``max_age_ms`` old (or at once, with ``now_due``)."""
        open_batch = self.batcher.open
        if open_batch is not None and (
            now_due or self._clock() >= open_batch.created + self._max_age
        ):
            self._enqueue(self.batcher.take())

    def pending_records(self) -> int:
        open_batch = self.batcher.open
        return len(open_batch) if open_batch else 0

    def _enqueue(self, batch: Batch | None) -> None:
        if batch is not None:
            self._backlog.add(batch, self.may_spill())


def count_truncated(stats: Stats, records: int, why: str) -> None:
    """Truncation keeps the record but loses text: count it, and say so (once loudly)."""
    if not stats.truncated:
        log.warning(
            f"truncated a record {why}; its message ends with a marker (further "
            "truncations are counted in the shutdown summary)"
        )
    stats.add("truncated", records)
