"""The delivery worker: one thread that transforms, batches and sends.

It owns everything not yet delivered. The listener hands it whole pushes through a bounded queue
(``submit`` never blocks the listener); the main thread asks it to ``flush`` against a deadline
at shutdown, and waits on ``InvocationProgress`` after each invocation.

When it sends: a batch goes out as soon as it is full; with the ``end`` flush strategy also as
soon as it holds a request's ``platform.runtimeDone`` (that invocation waits to be released);
when its oldest entry is ``batch_max_age_ms`` old (long invocations, the ``periodic`` strategy,
Managed Instances); and on flush.

Order is kept: batches go out oldest first — halves of a batch the receiver found too large
(413), then batches spilled to disk, then batches in memory. A failed send that may succeed
later stays at the head and is retried with backoff (and never before a ``Retry-After``); a new
invocation's runtimeDone cuts a backoff short, since each invocation deserves a fresh attempt.
Memory is bounded by ``max_buffer_bytes``: beyond it the oldest batches move to disk (see
``spill``), and beyond the disk cap the oldest are dropped — counted, and reported to the
receiver in a record of their own.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .. import log
from .batching import Batch, Batcher, truncate_entry
from .inbox import Inbox
from .retry import backoff, parse_retry_after
from .spill import SpillStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Union

    from ..http.transport import SendResult, Transport
    from ..invocations import InvocationProgress
    from ..records.transform import Transformer
    from ..settings.load import Config
    from ..stats import Stats
    from .spill import SpilledBatch

    AnyBatch = Union[Batch, SpilledBatch]

RUNTIME_DONE = "platform.runtimeDone"
_STOP = object()
# Parsed records waiting for the worker (about 0.5 KB each): bounds memory when pushes arrive
# faster than they are encoded, e.g. while a slow send is in flight. Four pushes of Lambda's
# default 1,000 records: the worker takes one in ~5 ms, so Lambda only waits on a full inbox
# while a send is in flight (8,000 made no difference to throughput, and cost ~2 MiB of RSS).
_MAX_QUEUED_RECORDS = 4_000
# A send slower than this means the receiver, not our CPU, limits throughput: then batches
# beyond the memory cap go to disk. Otherwise spilling would only add work, so the worker stops
# taking pushes instead and the listener's backpressure slows Lambda down.
_SLOW_SEND_SECONDS = 0.1
# How long the listener may wait for room before asking Lambda to retry the push later.
_SUBMIT_WAIT_SECONDS = 0.5
_MIN_TRUNCATED_BYTES = 1024


class _FlushRequest:
    __slots__ = ("deadline", "done", "complete")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.complete = False


class DeliveryWorker:
    """Owns the undelivered records; see the module docstring for when it sends."""

    def __init__(
        self,
        config: Config,
        transformer_factory: Callable[[], Transformer],
        transport_factory: Callable[[], Transport],
        progress: InvocationProgress,
        stats: Stats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._transformer_factory = transformer_factory
        self._transformer: Transformer | None = None
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._progress = progress
        self._stats = stats
        self._clock = clock
        self._inbox = Inbox(_MAX_QUEUED_RECORDS)
        self._batcher = Batcher(config.max_batch_bytes, config.max_batch_records)
        self._front: deque[Batch] = deque()  # halves of a batch refused with 413
        self._spill = SpillStore(config.spill_dir, config.max_spill_bytes)
        self._spilled_head: SpilledBatch | None = None
        self._ready: deque[Batch] = deque()
        self._ready_bytes = 0
        self._retry_at = 0.0  # backoff: cut short by a new invocation
        self._not_before = 0.0  # Retry-After: honoured as asked
        self._max_age = config.batch_max_age_ms / 1000.0
        self._send_on_runtime_done = config.flush_strategy == "end"
        self._unreported: dict[str, int] = {}  # reason -> records dropped, not yet reported
        self._failing = ""  # the error of the current streak of failed sends ("" when none)
        self._slow_receiver = False  # the last send took _SLOW_SEND_SECONDS or more
        self._flushing = False  # shutdown: everything must be taken in, spilling if need be
        self._failed_attempts = 0
        self._thread: threading.Thread | None = None
        self._gate: threading.Event | None = None
        self._stopped = False

    # -- called from other threads ------------------------------------------------------------

    def submit(self, events: list[dict[str, object]], wake: bool = True) -> bool:
        """Queue one push; when the worker is behind, wait briefly for room, else return False
        (the listener then answers 503 and Lambda retries the push). With ``wake=False`` the
        worker takes it at the next ``wake()`` (or whenever it next looks)."""
        return self._inbox.put_push(events, _SUBMIT_WAIT_SECONDS, wake)

    def wake(self) -> None:
        """Have the worker take what was submitted with ``wake=False``."""
        self._inbox.wake()

    def start(self, gate: threading.Event | None = None) -> None:
        """Start the thread; with a ``gate`` it builds its transformer and transport (heavy
        imports) only once the gate opens, i.e. after the cold start's critical path."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._gate = gate
        self._thread = threading.Thread(target=self._run, name="lambda-logs-http-worker")
        self._thread.start()

    def flush(self, deadline: float) -> bool:
        """Deliver everything received so far, trying until ``deadline`` (a clock value).

        Returns whether everything was delivered. Waits only for the time left; a worker stuck
        in a send past the deadline is left to it.
        """
        if self._thread is None or not self._thread.is_alive():
            return False
        request = _FlushRequest(deadline)
        self._inbox.put(request)
        request.done.wait(max(0.0, deadline - self._clock()))
        return request.complete

    def stop(self, timeout: float) -> bool:
        """Stop the thread; what it still holds is spilled to disk or counted as dropped.

        Safe to call twice.
        """
        if self._thread is None:
            return True
        if not self._stopped:
            self._stopped = True
            self._inbox.put(_STOP)
            if self._gate is not None:
                self._gate.set()
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def abort_send(self) -> None:
        """Unblock a send stuck in flight (from another thread), so the worker can go on to
        keep its backlog on disk before the shutdown deadline. The send counts as failed."""
        transport = self._transport
        if transport is not None:
            transport.abort()

    def pending_records(self) -> int:
        """Records held but not delivered, in memory and on disk (approximate while running)."""
        open_batch = self._batcher.open
        queued = self._inbox.records
        in_memory = sum(len(b) for b in (*self._front, *self._ready))
        return in_memory + (len(open_batch) if open_batch else 0) + queued + self._spill.records

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        if self._gate is not None:
            self._gate.wait()
        self._transformer = self._transformer_factory()
        try:
            self._transport = self._transport_factory()
        except Exception as exc:  # a broken transport must not kill the extension
            log.error(f"cannot create the HTTP transport: {exc}")
        recovered = self._spill.open() if self._spill.max_bytes else 0
        if recovered:
            log.info(
                f"found {recovered} batches ({self._spill.records} records) spilled to "
                f"{self._spill.directory} by an earlier run; sending them first"
            )
        while True:
            try:
                item = self._next_item()
                if item is _STOP:
                    break
                if isinstance(item, _FlushRequest):
                    self._flush(item)
                elif isinstance(item, list):
                    self._ingest(item)
                self._send_due()
            except Exception as exc:  # the loop never dies; one bad unit of work is logged
                log.error(f"worker error: {type(exc).__name__}: {exc}")
        self._finish()

    def _next_item(self) -> object:
        return self._inbox.get(self._wait_time())

    def _has_backlog(self) -> bool:
        return bool(self._front or len(self._spill) or self._ready)

    def _wait_time(self) -> float | None:
        """How long the queue may be waited on before something is due (None: nothing is)."""
        due: float | None = None
        if self._has_backlog():
            due = max(self._retry_at, self._not_before)
        open_batch = self._batcher.open
        if open_batch is not None:
            age_due = open_batch.created + self._max_age
            due = age_due if due is None else min(due, age_due)
        return None if due is None else due - self._clock()

    def _ingest(self, events: list[dict[str, object]]) -> None:
        now = self._clock()
        assert self._transformer is not None
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
            self._retry_at = 0.0

    def _enqueue(self, batch: Batch | None) -> None:
        if batch is None:
            return
        self._ready.append(batch)
        self._ready_bytes += batch.size
        while self._over_cap() and len(self._ready) > 1 and self._may_spill():
            oldest = self._ready.popleft()
            self._ready_bytes -= oldest.size
            self._spill_or_drop(oldest)

    def _over_cap(self) -> bool:
        return self._ready_bytes > self._config.max_buffer_bytes

    def _may_spill(self) -> bool:
        """Spill only when the receiver is what holds delivery back (see _SLOW_SEND_SECONDS)."""
        return bool(self._failing) or self._slow_receiver or self._flushing

    def _spill_or_drop(self, batch: Batch) -> None:
        payload = batch.payload()
        if not self._spill.can_hold(len(payload) + 512):
            self._drop(batch, "buffer_full")
            return
        try:
            dropped = self._spill.write(batch.batch_id, len(batch), payload)
        except OSError as exc:
            log.error(f"could not spill a batch to {self._spill.directory}: {exc}")
            self._drop(batch, "buffer_full")
            return
        self._stats.add("spilled", len(batch))
        # Safe on disk; an invocation gains nothing by waiting for it.
        self._progress.delivered(batch.marks)
        if dropped:
            # The oldest file goes first, and it may be the one loaded for sending.
            self._spilled_head = None
        for records in dropped:
            self._stats.drop("spill_full", records)
            self._report_drop("spill_full", records)
        if dropped:
            log.error(
                f"spill directory full ({self._spill.max_bytes} bytes): dropped the "
                f"oldest {sum(dropped)} records"
            )

    def _head(self) -> AnyBatch | None:
        if self._front:
            return self._front[0]
        if len(self._spill):
            if self._spilled_head is None:
                self._spilled_head = self._spill.read_oldest()
            if self._spilled_head is not None:
                return self._spilled_head
        return self._ready[0] if self._ready else None

    def _pop_head(self, head: AnyBatch) -> None:
        if self._front and head is self._front[0]:
            self._front.popleft()
        elif head is self._spilled_head:
            self._spill.remove(self._spilled_head.path)
            self._spilled_head = None
        else:
            self._ready.popleft()
            self._ready_bytes -= head.size

    def _send_due(self, deadline: float | None = None) -> None:
        open_batch = self._batcher.open
        if open_batch is not None and (
            deadline is not None or self._clock() >= open_batch.created + self._max_age
        ):
            self._enqueue(self._batcher.take())
        while True:
            now = self._clock()
            if now < self._retry_at or now < self._not_before:
                return
            if deadline is not None and now >= deadline:
                return
            head = self._head()
            if head is None or not self._send(head, deadline):
                return
            # Take in what arrived during the send: for a slow or failing receiver up to the
            # memory cap (its backlog then reaches the disk rather than Lambda's buffer); for a
            # healthy one only up to the next batch (see _ingest_pending).
            self._ingest_pending(respect_cap=True)

    def _send(self, batch: AnyBatch, deadline: float | None) -> bool:
        """Send the head batch; True when it is accounted for (delivered, split or dropped)."""
        transport = self._transport
        if transport is None:
            self._pop_head(batch)
            self._drop(batch, "no_transport")
            return True
        timeout = self._config.timeout_seconds
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self._clock()))
        body = batch.body()
        raw_size = len(body)
        headers = {"Idempotency-Key": batch.batch_id, "X-Request-Id": batch.batch_id}
        if self._config.compression == "gzip":
            from ..http.compression import gzip_bytes

            body = gzip_bytes(body, self._config.compression_level)
            headers["Content-Encoding"] = "gzip"
        started = self._clock()
        result = transport.send(body, headers, timeout)
        elapsed_ms = (self._clock() - started) * 1000
        self._slow_receiver = elapsed_ms >= _SLOW_SEND_SECONDS * 1000
        batch.attempts += 1
        if batch.attempts > 1:
            self._stats.add("retried", len(batch))
        if result.ok:
            self._pop_head(batch)
            self._stats.add("delivered", len(batch) - batch.reports)
            self._stats.add("batches")
            self._retry_at = 0.0
            self._progress.delivered(batch.marks)
            self._queue_drop_reports()
            if self._failing:
                log.info(f"delivery resumed after {self._failed_attempts} failed attempts")
                self._failing, self._failed_attempts = "", 0
            if log.enabled(log.DEBUG):
                log.debug(
                    f"sent batch {batch.batch_id}: {len(batch)} records, {raw_size} bytes"
                    f"{f' ({len(body)} gzipped)' if len(body) != raw_size else ''}, "
                    f"HTTP {result.status} in {elapsed_ms:.1f} ms"
                )
            return True
        if result.status == 413:
            return self._too_large(batch)
        if not result.retryable:
            self._pop_head(batch)
            self._drop(batch, f"http_{result.status}" if result.status else "error")
            if result.error != self._failing:
                self._failing = result.error
                log.error(
                    f"receiver refused a batch of {len(batch)} records ({result.error}); "
                    f"dropped{_hint(result)} (repeats are logged at debug level)"
                )
            elif log.enabled(log.DEBUG):
                log.debug(f"receiver refused another batch of {len(batch)} records")
            self._failed_attempts += 1
            return True
        now = self._clock()
        self._retry_at = now + backoff(batch.attempts)
        wait = parse_retry_after(result.retry_after, time.time())
        if wait is not None:
            self._not_before = now + wait
        self._failed_attempts += 1
        retry_in = max(self._retry_at, self._not_before) - now
        if result.error != self._failing:
            # The first failure of a kind is logged; repeats only at debug level until
            # delivery resumes, so a dead receiver can't flood the function's logs.
            self._failing = result.error
            log.emit(
                log.ERROR if result.needs_fix else log.WARNING,
                f"send failed ({result.error}); records are kept and retried with backoff "
                f"(next in {retry_in:.2f} s; repeats of this error are logged at debug level)",
            )
        elif log.enabled(log.DEBUG):
            log.debug(
                f"send failed again ({result.error}) after {elapsed_ms:.0f} ms; "
                f"attempt {batch.attempts}, retry in {retry_in:.2f} s"
            )
        return False

    def _too_large(self, batch: AnyBatch) -> bool:
        """413: send the halves instead; a single record is truncated, then dropped."""
        self._pop_head(batch)
        entries = _entries_of(batch)
        if len(entries) > 1:
            # The receiver's limit is below this batch: keep later batches under half of it
            # instead of having every one of them refused and split again.
            limit = max(_MIN_TRUNCATED_BYTES * 4, batch.size // 2)
            if limit < self._batcher.max_bytes:
                self._batcher.max_bytes = limit
                log.warning(
                    f"receiver refused {batch.size} bytes (413): batches are now limited "
                    f"to {limit} bytes (set HTTP_MAX_BATCH_BYTES below its limit)"
                )
            middle = len(entries) // 2
            first = Batch(self._clock(), entries[:middle])
            second = Batch(self._clock(), entries[middle:])
            second.marks = list(batch.marks)
            self._front.extendleft((second, first))
            return True
        entry = entries[0] if entries else ""
        limit = len(entry) // 2
        if limit < _MIN_TRUNCATED_BYTES:
            self._drop(batch, "too_large")
            log.error("receiver refused even a single small record (413): dropped it")
            return True
        single = Batch(self._clock(), [truncate_entry(entry, limit)])
        single.marks = list(batch.marks)
        self._front.appendleft(single)
        self._count_truncated(1, f"refused by the receiver (413) at {len(entry)} bytes")
        return True

    def _count_truncated(self, records: int, why: str) -> None:
        """Truncation keeps the record but loses text: count it, and say so (once loudly)."""
        if not self._stats.truncated:
            log.warning(
                f"truncated a record {why}; its message ends with a marker (further "
                "truncations are counted in the shutdown summary)"
            )
        self._stats.add("truncated", records)

    def _flush(self, request: _FlushRequest) -> None:
        self._flushing = True
        try:
            while True:
                self._ingest_pending()
                self._send_due(request.deadline)
                if not self._has_backlog() and self._batcher.open is None:
                    request.complete = True
                    return
                now = self._clock()
                remaining = request.deadline - now
                if remaining <= 0:
                    return
                time.sleep(min(remaining, max(0.0, self._retry_at - now, self._not_before - now)))
        finally:
            request.done.set()

    def _ingest_pending(self, respect_cap: bool = False) -> None:
        """Ingest the pushes at the head of the inbox, up to the first control item — or, with
        ``respect_cap``, only while that is worth its memory.

        When the receiver keeps up, our own CPU is what limits throughput: encoding pushes ahead
        of sending would only hold megabytes of batches that can't go out any sooner, so the
        worker stops once the next batch is ready and the rest waits, parsed, in the bounded
        inbox (then the listener pushes back on Lambda). When the receiver is slow or failing,
        it takes pushes in up to ``max_buffer_bytes`` and spills beyond, so Lambda's own buffer
        never fills behind a receiver we can't speed up.
        """
        while True:
            # (Over the cap implies a batch is ready, so this also stops at the cap.)
            if respect_cap and self._ready and not self._may_spill():
                return
            events = self._inbox.get_push_nowait()
            if events is None:
                return
            self._ingest(events)

    def _finish(self) -> None:
        """At stop: keep what is left on disk when possible (a reset keeps /tmp), else count it."""
        self._flushing = True
        self._ingest_pending()
        self._enqueue(self._batcher.take())
        leftover = [*self._front, *self._ready]
        self._front.clear()
        self._ready.clear()
        self._ready_bytes = 0
        kept = 0
        for batch in leftover:
            if self._spill.max_bytes and self._spill.can_hold(batch.size + 512):
                self._spill_or_drop(batch)
                kept += len(batch)
            else:
                self._drop(batch, "shutdown")
        on_disk = self._spill.records
        if kept or on_disk:
            log.warning(
                f"{on_disk} undelivered records kept in {self._spill.directory}: a new "
                "extension process in this environment sends them first"
            )
        self._stats.add("on_disk", on_disk)
        if self._transport is not None:
            self._transport.close()

    def _drop(self, batch: AnyBatch, reason: str) -> None:
        records = len(batch) - batch.reports
        self._stats.drop(reason, records)
        # The invocation waiting on these can't be helped by waiting longer.
        self._progress.delivered(batch.marks)
        if records > 0:
            self._report_drop(reason, records)

    def _report_drop(self, reason: str, records: int) -> None:
        """Remember lost records; they are reported after the next successful send.

        Waiting for a success keeps reports from feeding an outage (a report spilled to a full
        disk would push out another batch, which would need another report, ...).
        """
        if records > 0:
            self._unreported[reason] = self._unreported.get(reason, 0) + records

    def _queue_drop_reports(self) -> None:
        """Put one report entry per reason at the head of the line."""
        if not self._unreported:
            return
        assert self._transformer is not None
        entries = [self._transformer.drop_report(r, n) for r, n in self._unreported.items()]
        self._unreported.clear()
        batch = Batch(self._clock(), entries)
        batch.reports = len(entries)
        self._front.appendleft(batch)


def _entries_of(batch: AnyBatch) -> list[str]:
    if isinstance(batch, Batch):
        return batch.entries
    import json

    dumps = json.JSONEncoder(separators=(",", ":")).encode
    return [dumps(entry) for entry in json.loads(b"[" + batch.payload + b"]")]


def _hint(result: SendResult) -> str:
    if result.status in (401, 403):
        return ": check HTTP_AUTH_TYPE and the credentials"
    if result.status == 404:
        return ": check the path in HTTP_ENDPOINT"
    return ""
