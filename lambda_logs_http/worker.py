"""The delivery worker: one thread that transforms, batches and sends.

It owns everything not yet delivered. The listener hands it whole pushes through a bounded queue
(``submit`` never blocks the listener); the main thread asks it to ``flush`` against a deadline
at shutdown, and waits on ``InvocationProgress`` after each invocation.

When it sends: a batch goes out as soon as it is full, as soon as it holds a request's
``platform.runtimeDone`` (that invocation is waiting to be released), when its oldest entry is
``batch_max_age_ms`` old (long invocations, and Managed Instances where nothing is ever frozen),
and on flush. A failed send that may succeed later stays at the head of the line and is retried
with backoff; batches behind it wait, so order is kept. Memory is bounded by ``max_buffer_bytes``:
beyond it the oldest batch is dropped and counted.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import deque

from . import log
from .batching import Batch, Batcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import Config
    from .progress import InvocationProgress
    from .stats import Stats
    from .transform import Transformer
    from .transport import SendResult, Transport

RUNTIME_DONE = "platform.runtimeDone"
_STOP = object()
_MAX_QUEUED_PUSHES = 10_000
BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 5.0


class _FlushRequest:
    __slots__ = ("deadline", "done", "complete")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.complete = False


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter, capped."""
    return rng() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** min(attempt, 16)))


class DeliveryWorker:
    """Owns the undelivered records; see the module docstring for when it sends."""

    def __init__(
        self,
        config: Config,
        transformer: Transformer,
        transport_factory: Callable[[], Transport],
        progress: InvocationProgress,
        stats: Stats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._transformer = transformer
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._progress = progress
        self._stats = stats
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_MAX_QUEUED_PUSHES)
        self._batcher = Batcher(config.max_batch_bytes, config.max_batch_records)
        self._ready: deque[Batch] = deque()
        self._ready_bytes = 0
        self._retry_at = 0.0
        self._max_age = config.batch_max_age_ms / 1000.0
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- called from other threads ------------------------------------------------------------

    def submit(self, events: list[dict[str, object]]) -> bool:
        """Queue one push; False (never blocking) when the queue is full."""
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            return False
        return True

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("worker already started")
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
        self._queue.put(request)  # the queue has room: the listener is stopped or idle by now
        request.done.wait(max(0.0, deadline - self._clock()))
        return request.complete

    def stop(self, timeout: float) -> bool:
        """Stop the thread; whatever is still held is counted as dropped. Safe to call twice."""
        if self._thread is None:
            return True
        if not self._stopped:
            self._stopped = True
            try:
                self._queue.put(_STOP, timeout=max(0.0, timeout))
            except queue.Full:
                pass
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def pending_records(self) -> int:
        """Records held but not delivered (approximate while the thread runs)."""
        open_batch = self._batcher.open
        queued = sum(len(x) for x in list(self._queue.queue) if isinstance(x, list))
        return sum(len(b) for b in self._ready) + (len(open_batch) if open_batch else 0) + queued

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._transport = self._transport_factory()
        except Exception as exc:  # a broken transport must not kill the extension
            log.error(f"cannot create the HTTP transport: {exc}")
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
        timeout = self._wait_time()
        try:
            if timeout is None:
                return self._queue.get()
            if timeout <= 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _wait_time(self) -> float | None:
        """How long the queue may be waited on before something is due (None: nothing is)."""
        now = self._clock()
        due: float | None = None
        if self._ready:
            due = self._retry_at
        open_batch = self._batcher.open
        if open_batch is not None:
            age_due = open_batch.created + self._max_age
            due = age_due if due is None else min(due, age_due)
        return None if due is None else due - now

    def _ingest(self, events: list[dict[str, object]]) -> None:
        now = self._clock()
        encode = self._transformer.encode
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
            full = self._batcher.add(entry, now, mark)
            if full is not None:
                self._enqueue(full)
        open_batch = self._batcher.open
        if open_batch is not None and open_batch.marks:
            # An invocation is waiting to be released: don't wait for the batch to fill, and
            # don't sit out a backoff begun in an earlier invocation either — each invocation
            # gets a fresh attempt, bounded by its flush budget.
            self._enqueue(self._batcher.take())
            self._retry_at = 0.0

    def _enqueue(self, batch: Batch | None) -> None:
        if batch is None:
            return
        self._ready.append(batch)
        self._ready_bytes += batch.size
        while self._ready_bytes > self._config.max_buffer_bytes and len(self._ready) > 1:
            oldest = self._ready.popleft()
            self._ready_bytes -= oldest.size
            self._account_dropped(oldest, "buffer_full")
            log.error(
                f"buffer full ({self._config.max_buffer_bytes} bytes): dropped the oldest batch "
                f"of {len(oldest)} records"
            )

    def _send_due(self, deadline: float | None = None) -> None:
        open_batch = self._batcher.open
        now = self._clock()
        if open_batch is not None and (
            deadline is not None or now >= open_batch.created + self._max_age
        ):
            self._enqueue(self._batcher.take())
        while self._ready and self._clock() >= self._retry_at:
            if deadline is not None and self._clock() >= deadline:
                return
            if not self._send(self._ready[0], deadline):
                return
            sent = self._ready.popleft()
            self._ready_bytes -= sent.size

    def _send(self, batch: Batch, deadline: float | None) -> bool:
        """Send the head batch; True when it is accounted for (delivered or dropped for good)."""
        transport = self._transport
        if transport is None:
            self._account_dropped(batch, "no_transport")
            return True
        timeout = self._config.timeout_seconds
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self._clock()))
        body = batch.body()
        headers = {"Idempotency-Key": batch.batch_id, "X-Request-Id": batch.batch_id}
        started = self._clock()
        result = transport.send(body, headers, timeout)
        elapsed_ms = (self._clock() - started) * 1000
        batch.attempts += 1
        if batch.attempts > 1:
            self._stats.add("retried", len(batch))
        if result.ok:
            self._stats.add("delivered", len(batch))
            self._stats.add("batches")
            self._retry_at = 0.0
            self._progress.delivered(batch.marks)
            if log.enabled(log.DEBUG):
                log.debug(
                    f"sent batch {batch.batch_id}: {len(batch)} records, {len(body)} bytes, "
                    f"HTTP {result.status} in {elapsed_ms:.1f} ms"
                )
            return True
        if not result.retryable:
            self._account_dropped(batch, f"http_{result.status}" if result.status else "error")
            log.error(
                f"receiver refused a batch of {len(batch)} records ({result.error}); "
                f"dropped{_hint(result)}"
            )
            return True
        self._retry_at = self._clock() + backoff(batch.attempts)
        log.warning(
            f"send failed ({result.error}) after {elapsed_ms:.0f} ms; {len(batch)} records kept, "
            f"retry {batch.attempts} in {self._retry_at - self._clock():.2f} s"
        )
        return False

    def _flush(self, request: _FlushRequest) -> None:
        try:
            while True:
                self._drain_queue()
                self._send_due(request.deadline)
                if not self._ready and self._batcher.open is None:
                    request.complete = True
                    return
                remaining = request.deadline - self._clock()
                if remaining <= 0:
                    return
                time.sleep(min(remaining, max(0.0, self._retry_at - self._clock())))
        finally:
            request.done.set()

    def _drain_queue(self) -> None:
        """Ingest every push already queued (a flush covers everything received so far)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, list):
                self._ingest(item)
            elif item is _STOP:
                self._queue.put_nowait(_STOP)  # keep it for the main loop
                return
            elif isinstance(item, _FlushRequest):
                item.done.set()

    def _finish(self) -> None:
        self._drain_queue()
        self._enqueue(self._batcher.take())
        for batch in self._ready:
            self._account_dropped(batch, "shutdown")
        undelivered = sum(len(b) for b in self._ready)
        if undelivered:
            log.error(f"{undelivered} records could not be delivered before shutdown")
        self._ready.clear()
        if self._transport is not None:
            self._transport.close()

    def _account_dropped(self, batch: Batch, reason: str) -> None:
        self._stats.drop(reason, len(batch))
        # The invocation waiting on these can't be helped by waiting longer.
        self._progress.delivered(batch.marks)


def _hint(result: SendResult) -> str:
    if result.status in (401, 403):
        return ": check HTTP_AUTH_TYPE and the credentials"
    if result.status == 413:
        return ": lower HTTP_MAX_BATCH_BYTES below the receiver's request size limit"
    if result.status == 404:
        return ": check the path in HTTP_ENDPOINT"
    return ""
