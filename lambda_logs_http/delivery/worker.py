"""The delivery worker: the thread that owns every record not yet delivered.

The listener hands it whole pushes through a bounded inbox (``submit`` never blocks the listener
for long); the main thread waits on ``InvocationProgress`` after each invocation and asks the
worker to ``flush`` against a deadline at shutdown, then to ``stop``. What the worker does with a
push — encode, batch, send, retry, spill — is the ``Pipeline``; this module is the thread around
it: take the next item, run it, never die, stop when told.

The pipeline's parts (the transformer and the transport, whose imports are heavy) are built on
this thread once the gate opens, i.e. after the cold start's critical path.
"""

from __future__ import annotations

import threading
import time

from .. import log
from ..lambda_api.events import RUNTIME_DONE
from .inbox import Inbox

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..http.transport import Transport
    from ..invocations import InvocationProgress
    from ..records.transform import Transformer
    from ..settings.model import Batching, Delivery
    from ..stats import Stats
    from .pipeline import Pipeline, Push

_STOP = object()
# Parsed records waiting for the worker (about 0.5 KB each): bounds memory when pushes arrive
# faster than they are encoded, e.g. while a slow send is in flight. Four pushes of Lambda's
# default 1,000 records: the worker takes one in ~5 ms, so Lambda only waits on a full inbox
# while a send is in flight (8,000 made no difference to throughput, and cost ~2 MiB of RSS).
MAX_QUEUED_RECORDS = 4_000
# How long the listener may wait for room before asking Lambda to retry the push later.
SUBMIT_WAIT_SECONDS = 0.5


class _FlushRequest:
    __slots__ = ("deadline", "done", "complete")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.complete = False


class DeliveryWorker:
    """Owns the undelivered records; see the module docstring."""

    def __init__(
        self,
        batching: Batching,
        delivery: Delivery,
        timeout_seconds: float,
        transformer_factory: Callable[[], Transformer],
        transport_factory: Callable[[], Transport],
        progress: InvocationProgress,
        stats: Stats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._batching = batching
        self._delivery = delivery
        self._timeout = timeout_seconds
        self._transformer_factory = transformer_factory
        self._transport_factory = transport_factory
        self._progress = progress
        self._stats = stats
        self._clock = clock
        self._inbox = Inbox(MAX_QUEUED_RECORDS)
        self._pipeline: Pipeline | None = None
        self._thread: threading.Thread | None = None
        self._gate: threading.Event | None = None
        self._stopped = False

    # -- called from other threads ------------------------------------------------------------

    def submit(self, events: Push, wake: bool = True) -> bool:
        """Queue one push; when the worker is behind, wait briefly for room, else return False
        (the listener then answers 503 and Lambda retries the push). With ``wake=False`` the
        worker takes it at the next ``wake()`` (or whenever it next looks)."""
        return self._inbox.put_push(events, SUBMIT_WAIT_SECONDS, wake)

    def wake(self) -> None:
        """Have the worker take what was submitted with ``wake=False``."""
        self._inbox.wake()

    def start(self, gate: threading.Event | None = None) -> None:
        """Start the thread; with a ``gate`` it builds its pipeline (heavy imports) only once
        the gate opens."""
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
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.abort()

    def pending_records(self) -> int:
        """Records held but not delivered, in memory and on disk (approximate while running)."""
        pipeline = self._pipeline
        held = pipeline.pending_records() if pipeline is not None else 0
        return held + self._inbox.records

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        if self._gate is not None:
            self._gate.wait()
        pipeline = self._pipeline = self._build()
        while True:
            try:
                item = self._inbox.get(pipeline.wait_time() if pipeline else None)
                if item is _STOP:
                    break
                if pipeline is None:
                    self._discard(item)
                elif isinstance(item, _FlushRequest):
                    self._flush(pipeline, item)
                elif isinstance(item, list):
                    pipeline.ingest(item)
                if pipeline is not None:
                    pipeline.send_due()
            except Exception as exc:  # the loop never dies; one bad unit of work is logged
                log.error(f"worker error: {type(exc).__name__}: {exc}")
        if pipeline is not None:
            pipeline.finish()

    def _build(self) -> Pipeline | None:
        """The pipeline and its parts; None (after one ERROR line) if they cannot be built."""
        from .pipeline import Pipeline

        try:
            transformer = self._transformer_factory()
            transport = self._transport_factory()
        except Exception as exc:  # a broken part must not kill the extension
            log.error(
                f"cannot start delivery ({type(exc).__name__}: {exc}); logs will NOT be forwarded"
            )
            return None
        return Pipeline.create(
            self._batching,
            self._delivery,
            self._timeout,
            transformer,
            transport,
            self._stats,
            self._progress,
            self._inbox.get_push_nowait,
            clock=self._clock,
        )

    def _flush(self, pipeline: Pipeline, request: _FlushRequest) -> None:
        try:
            request.complete = pipeline.flush(request.deadline)
        finally:
            request.done.set()

    def _discard(self, item: object) -> None:
        """Without a pipeline nothing can be sent: count pushes as dropped, release waiters."""
        if isinstance(item, _FlushRequest):
            item.done.set()
            return
        if not isinstance(item, list):
            return
        self._stats.drop("not_started", len(item))
        marks = []
        for event in item:
            record = event.get("record")
            if event.get("type") == RUNTIME_DONE and isinstance(record, dict):
                request_id = record.get("requestId")
                if isinstance(request_id, str):
                    marks.append(request_id)
        self._progress.delivered(marks)
