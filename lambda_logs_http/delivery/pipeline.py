"""Everything between a push and its delivery, on one thread: encode, batch, send, retry, keep.

``Pipeline`` is the delivery policy without the thread around it (that is ``worker``): pushes
are encoded into entries (``records.transform``) and batched (``batching``); a batch is queued
(``backlog``) as soon as it is full, holds a request's ``platform.runtimeDone`` under the
``end`` strategy (that invocation waits to be released), or is ``max_age_ms`` old; queued
batches are sent oldest first (``sender``), a failure that may succeed later stays at the head
and is retried with backoff (``retry``), and a new invocation's runtimeDone cuts a backoff short,
since each invocation deserves a fresh attempt.

Memory: when the receiver keeps up, our own CPU is what limits throughput, so encoding pushes
ahead of sending would only hold megabytes of batches that can't go out any sooner — the
pipeline takes in pushes only up to the next batch and the rest waits, parsed, in the worker's
bounded inbox (the listener then pushes back on Lambda). When the receiver is slow or failing,
it takes pushes in up to the memory cap and spills beyond, so Lambda's own buffer never fills
behind a receiver we can't speed up.

The clock, the sleep and the source of pending pushes are injected, so the whole policy runs
under test with a fake transport and no real time passing.
"""

from __future__ import annotations

import time

from .. import log
from ..lambda_api.events import RUNTIME_DONE
from ..settings import hints
from .backlog import Backlog, Ledger
from .batching import Batch, Batcher
from .retry import RetryState, parse_retry_after
from .sender import MIN_TRUNCATED_BYTES, FailureLog, Sender, split_too_large
from .spill import SpillStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Union

    from ..http.transport import Transport
    from ..invocations import InvocationProgress
    from ..records.transform import Transformer
    from ..settings.model import Batching, Delivery
    from ..stats import Stats
    from .spill import SpilledBatch

    AnyBatch = Union[Batch, SpilledBatch]
    Push = list[dict[str, object]]

# A send slower than this means the receiver, not our CPU, limits throughput: then batches
# beyond the memory cap go to disk. Otherwise spilling would only add work, so the worker stops
# taking pushes instead and the listener's backpressure slows Lambda down.
SLOW_SEND_SECONDS = 0.1


class Pipeline:
    """Owned by the worker thread; nothing here is safe to call from another thread but
    ``abort`` and ``pending_records`` (approximate)."""

    @classmethod
    def create(
        cls,
        batching: Batching,
        delivery: Delivery,
        timeout_seconds: float,
        transformer: Transformer,
        transport: Transport,
        stats: Stats,
        progress: InvocationProgress,
        take_pending: Callable[[], Push | None],
        **clocks: Any,
    ) -> Pipeline:
        """A pipeline with its sender, spill directory (opened: an earlier process's files are
        found) and backlog; ``clocks`` are ``clock``, ``sleep``, ``now_epoch`` and ``rng``."""
        clock = clocks.get("clock", time.monotonic)
        ledger = Ledger(stats, progress)
        # Invalid files found there are moved aside, and their records counted as dropped.
        spill = SpillStore(delivery.spill_dir, delivery.max_spill_bytes, ledger.dropped_records)
        recovered = spill.open() if spill.max_bytes else 0
        if recovered:
            log.info(
                f"found {recovered} batches ({spill.records} records) spilled to "
                f"{spill.directory} by an earlier run; sending them first"
            )
        return cls(
            batching,
            delivery.holds_invocations,
            transformer,
            Sender(transport, batching, timeout_seconds, clock),
            Backlog(spill, delivery.max_buffer_bytes, ledger),
            ledger,
            stats,
            take_pending,
            **clocks,
        )

    def __init__(
        self,
        batching: Batching,
        send_on_runtime_done: bool,
        transformer: Transformer,
        sender: Sender,
        backlog: Backlog,
        ledger: Ledger,
        stats: Stats,
        take_pending: Callable[[], Push | None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now_epoch: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
    ) -> None:
        """``take_pending`` returns the next push that arrived meanwhile, or None; ``rng`` draws
        the backoff's jitter (default: ``random.random``)."""
        self._batcher = Batcher(batching.max_bytes, batching.max_records)
        self._max_age = batching.max_age_ms / 1000.0
        self._send_on_runtime_done = send_on_runtime_done
        self._transformer = transformer
        self._sender = sender
        self._backlog = backlog
        self._ledger = ledger
        self._stats = stats
        self._take_pending = take_pending
        self._clock = clock
        self._sleep = sleep
        self._now_epoch = now_epoch
        self._rng = rng
        self._retry = RetryState()
        self._failures = FailureLog()
        self._slow_receiver = False  # the last send took SLOW_SEND_SECONDS or more
        self._flushing = False  # shutdown: everything must be taken in, spilling if need be

    # -- what the worker calls ----------------------------------------------------------------

    def ingest(self, events: Push) -> None:
        """Encode one push into entries and batches."""
        now = self._clock()
        encode = self._transformer.encode
        runtime_done = False
        for event in events:
            entry = encode(event)
            if entry is None:
                self._stats.add("skipped")
                continue
            mark = ""
            if event.get("type") == RUNTIME_DONE:
                record = event.get("record")
                request_id = record.get("requestId") if isinstance(record, dict) else None
                mark = request_id if isinstance(request_id, str) else ""
                runtime_done = True
            self._enqueue(self._batcher.add(entry, now, mark))
        if self._batcher.truncated:
            self._count_truncated(self._batcher.truncated, "larger than a whole batch")
            self._batcher.truncated = 0
        if runtime_done and self._send_on_runtime_done:
            # An invocation is waiting to be released: don't wait for the batch to fill, and
            # don't sit out a backoff begun in an earlier invocation either.
            self._enqueue(self._batcher.take())
            self._retry = self._retry.without_backoff()

    def wait_time(self) -> float | None:
        """Seconds until something is due (None: nothing is until the next push)."""
        due: float | None = None
        if self._backlog:
            due = self._retry.due
        open_batch = self._batcher.open
        if open_batch is not None:
            age_due = open_batch.created + self._max_age
            due = age_due if due is None else min(due, age_due)
        return None if due is None else due - self._clock()

    def send_due(self, deadline: float | None = None) -> None:
        """Send what is due, oldest first, until the backlog is empty, a send fails, or
        ``deadline`` (a clock value; None: no deadline, and a partial batch waits for its age)."""
        open_batch = self._batcher.open
        if open_batch is not None and (
            deadline is not None or self._clock() >= open_batch.created + self._max_age
        ):
            self._enqueue(self._batcher.take())
        while True:
            now = self._clock()
            if not self._retry.allows(now):
                return
            if deadline is not None and now >= deadline:
                return
            head = self._backlog.head()
            if head is None or not self._send(head, deadline):
                return
            # Take in what arrived during the send: for a slow or failing receiver up to the
            # memory cap, for a healthy one only up to the next batch (see the module docstring).
            self.ingest_pending(respect_cap=True)

    def flush(self, deadline: float) -> bool:
        """Deliver everything taken in so far, trying until ``deadline``; say whether it was."""
        self._flushing = True
        while True:
            self.ingest_pending()
            self.send_due(deadline)
            if not self._backlog and self._batcher.open is None:
                return True
            now = self._clock()
            remaining = deadline - now
            if remaining <= 0:
                return False
            self._sleep(min(remaining, max(0.0, self._retry.due - now)))

    def ingest_pending(self, respect_cap: bool = False) -> None:
        """Ingest the pushes that are waiting, or with ``respect_cap`` only while that is worth
        its memory (over the cap implies a ready batch, so this also stops at the cap)."""
        while True:
            if respect_cap and self._backlog.has_ready and not self._may_spill():
                return
            events = self._take_pending()
            if events is None:
                return
            self.ingest(events)

    def finish(self) -> None:
        """At stop: keep what is left on disk when possible (a reset keeps /tmp), else count it."""
        self._flushing = True
        self.ingest_pending()
        self._enqueue(self._batcher.take())
        self._backlog.keep_on_disk()
        on_disk = self._backlog.spill.records
        if on_disk:
            log.warning(
                f"{on_disk} undelivered records kept in {self._backlog.spill.directory}: a new "
                "extension process in this environment sends them first"
            )
        self._stats.add("on_disk", on_disk)
        self._sender.close()

    def abort(self) -> None:
        """Make a send in flight fail now (called from another thread at shutdown)."""
        self._sender.abort()

    def pending_records(self) -> int:
        """Records taken in but not delivered, in memory and on disk."""
        open_batch = self._batcher.open
        return self._backlog.records() + (len(open_batch) if open_batch else 0)

    # -- policy -------------------------------------------------------------------------------

    def _enqueue(self, batch: Batch | None) -> None:
        if batch is not None:
            self._backlog.add(batch, self._may_spill())

    def _may_spill(self) -> bool:
        """Spill only when the receiver is what holds delivery back (see SLOW_SEND_SECONDS)."""
        return self._failures.failing or self._slow_receiver or self._flushing

    def _send(self, batch: AnyBatch, deadline: float | None) -> bool:
        """Send the head batch; True when it is accounted for (delivered, split or dropped)."""
        sent = self._sender.send(batch, deadline)
        result = sent.result
        self._slow_receiver = sent.elapsed >= SLOW_SEND_SECONDS
        if batch.attempts > 1:
            self._stats.add("retried", len(batch))
        if result.ok:
            self._backlog.pop(batch)
            self._ledger.delivered(batch)
            self._retry = self._retry.after_success()
            self._queue_drop_reports()
            self._failures.delivered()
            if log.enabled(log.DEBUG):
                gzipped = (
                    f" ({sent.sent_bytes} gzipped)" if sent.sent_bytes != sent.raw_bytes else ""
                )
                log.debug(
                    f"sent batch {batch.batch_id}: {len(batch)} records, {sent.raw_bytes} bytes"
                    f"{gzipped}, HTTP {result.status} in {sent.elapsed * 1000:.1f} ms"
                )
            return True
        if result.status == 413:
            self._too_large(batch)
            return True
        if not result.retryable:
            self._backlog.pop(batch)
            self._ledger.dropped(batch, f"http_{result.status}" if result.status else "error")
            self._failures.refused(result, len(batch))
            return True
        now = self._clock()
        wait = parse_retry_after(result.retry_after, self._now_epoch())
        self._retry = self._retry.after_failure(now, batch.attempts, wait, self._rng)
        self._failures.will_retry(result, self._retry.due - now, sent.elapsed, batch.attempts)
        return False

    def _too_large(self, batch: AnyBatch) -> None:
        """413: send the halves instead; a single record is truncated, then dropped."""
        self._backlog.pop(batch)
        replacements = split_too_large(batch, self._clock())
        if not replacements:
            self._ledger.dropped(batch, "too_large")
            log.error("receiver refused even a single small record (413): dropped it")
            return
        if len(replacements) > 1:
            # The receiver's limit is below this batch: keep later batches under half of it
            # instead of having every one of them refused and split again.
            limit = max(4 * MIN_TRUNCATED_BYTES, batch.size // 2)
            if limit < self._batcher.max_bytes:
                self._batcher.max_bytes = limit
                log.warning(
                    f"receiver refused {batch.size} bytes (413): batches are now limited "
                    f"to {limit} bytes ({hints.BATCH_LIMIT})"
                )
        else:
            self._count_truncated(1, f"refused by the receiver (413) in {batch.size} bytes")
        self._backlog.put_front(*replacements)

    def _count_truncated(self, records: int, why: str) -> None:
        """Truncation keeps the record but loses text: count it, and say so (once loudly)."""
        if not self._stats.truncated:
            log.warning(
                f"truncated a record {why}; its message ends with a marker (further "
                "truncations are counted in the shutdown summary)"
            )
        self._stats.add("truncated", records)

    def _queue_drop_reports(self) -> None:
        """Put one report entry per reason of loss at the head of the line."""
        unreported = self._ledger.take_unreported()
        if not unreported:
            return
        entries = [self._transformer.drop_report(r, n) for r, n in unreported.items()]
        batch = Batch(self._clock(), entries)
        batch.reports = len(entries)
        self._backlog.put_front(batch)
