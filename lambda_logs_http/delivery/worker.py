"""The delivery worker: two threads that own every record not yet delivered.

* The **worker** thread takes pushes from the inbox and turns them into batches (``intake``);
  it never waits on the network, so pushes keep being taken in — into memory up to the cap, then
  to disk — whatever a send is doing.
* The **sender** thread sends the backlog's head until it is accounted for (``sending``), with
  one deadline per send and an abort at shutdown.

The listener hands over whole pushes (``submit`` never blocks it for long); the main thread
waits on ``InvocationProgress`` after each invocation, asks for a ``flush`` against a deadline at
shutdown, ``abort_send`` when that deadline is reached, and ``stop``: the sender is stopped
first, then the worker keeps everything left — the batch that was in flight included — on disk.

The parts (the transformer and the transport, whose imports are heavy) are built on the worker
thread once the gate opens, i.e. after the cold start's critical path.
"""

from __future__ import annotations

import threading
import time

from .. import log
from ..lambda_api.events import RUNTIME_DONE
from .inbox import Inbox, push_cost

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..http.transport import Transport
    from ..invocations import InvocationProgress
    from ..records.transform import Transformer
    from ..settings.model import Batching, Delivery
    from ..stats import Stats
    from .backlog import Backlog
    from .intake import Intake, Push
    from .sending import SendLoop

# What the pushes waiting for the worker may occupy once parsed (see ``inbox``): about four of
# Lambda's default 1,000-record pushes. The worker takes one in ~5 ms, so Lambda only waits on
# a full inbox while the worker holds back for a receiver that keeps up (see ``intake``).
MAX_QUEUED_BYTES = 2_500_000
# How long the listener may wait for room before asking Lambda to retry the push later.
SUBMIT_WAIT_SECONDS = 0.5
# How long the worker lets the listener wait (backpressure: Lambda sees a slower answer) before
# it takes pushes in anyway, spilling past the memory cap, so that Lambda never has to drop.
PRESSURE_SECONDS = 0.2
# How long the sender thread may take to end once told to (its send is aborted): every network
# step watches the abort, so this is a bound that is not reached.
SENDER_JOIN_SECONDS = 0.25
_FLUSH = "flush"
_STOP = "stop"


class Parts:
    """What the threads share once built: the backlog between them, and each side's policy."""

    __slots__ = ("intake", "sending", "backlog")

    def __init__(self, intake: Intake, sending: SendLoop, backlog: Backlog) -> None:
        self.intake = intake
        self.sending = sending
        self.backlog = backlog


def assemble(
    batching: Batching,
    delivery: Delivery,
    timeout_seconds: float,
    transformer: Transformer,
    transport: Transport,
    stats: Stats,
    progress: InvocationProgress,
    clock: Callable[[], float] = time.monotonic,
    now_epoch: Callable[[], float] = time.time,
    rng: Callable[[], float] | None = None,
) -> Parts:
    """The intake and the sending side around one backlog, with its spill directory opened (an
    earlier process's files are found and go first)."""
    from .backlog import Backlog, Ledger
    from .intake import Intake
    from .sender import Sender
    from .sending import SendLoop
    from .spill import SpillStore

    ledger = Ledger(stats, progress)
    # Invalid files found there are moved aside, and their records counted as dropped.
    spill = SpillStore(delivery.spill_dir, delivery.max_spill_bytes, ledger.dropped_records)
    spill.entry_keys = spill.entry_keys | frozenset(transformer.encoder.context.extra_fields)
    recovered = spill.open() if spill.max_bytes else 0
    if recovered:
        log.info(
            f"found {recovered} batches ({spill.records} records) spilled to "
            f"{spill.directory} by an earlier run; sending them first"
        )
    backlog = Backlog(spill, delivery.max_buffer_bytes, ledger)
    sender = Sender(transport, batching, timeout_seconds, clock)
    sending = SendLoop(sender, backlog, ledger, stats, transformer, clock, now_epoch, rng)
    intake = Intake(batching, delivery.holds_invocations, transformer, backlog, sending, stats,
                    ledger, clock)  # fmt: skip
    sending.batcher = intake.batcher
    return Parts(intake, sending, backlog)


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
        self._inbox = Inbox(MAX_QUEUED_BYTES)
        self._parts: Parts | None = None
        self._thread: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._gate: threading.Event | None = None
        self._stopped = False
        self._sender_stopping = False
        self._holding_back = False  # the worker leaves pushes queued until the sender makes room
        self._flush_ingested = threading.Event()  # the worker took in all pushes of the flush
        self._built = threading.Event()  # the parts exist (or could not be built)

    # -- called from other threads ------------------------------------------------------------

    def submit(self, events: Push, body_bytes: int = 0, wake: bool = True) -> bool:
        """Queue one push; when the worker is behind, wait briefly for room, else return False
        (the listener then answers 503 and Lambda retries the push). With ``wake=False`` the
        worker takes it at the next ``wake()`` (or whenever it next looks)."""
        cost = push_cost(body_bytes, len(events))
        return self._inbox.put_push(events, cost, SUBMIT_WAIT_SECONDS, wake)

    def wake(self) -> None:
        """Have the worker take what was submitted with ``wake=False``."""
        self._inbox.wake()

    def start(self, gate: threading.Event | None = None) -> None:
        """Start the threads; with a ``gate`` they build their parts (heavy imports) only once
        the gate opens."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._gate = gate
        self._thread = threading.Thread(target=self._run, name="lambda-logs-http-worker")
        self._thread.start()

    def flush(self, deadline: float) -> bool:
        """Deliver everything received so far, trying until ``deadline`` (a clock value).

        Returns whether everything was delivered. Waits only for the time left: a send still
        in flight at the deadline is the caller's to abort (``abort_send``).
        """
        if self._thread is None or not self._thread.is_alive():
            return False
        self._inbox.signal(_FLUSH)
        if not self._built.wait(max(0.0, deadline - self._clock())):
            return False
        parts = self._parts
        if parts is None:
            return False
        parts.sending.deadline = deadline
        parts.backlog.notify()
        with parts.backlog.changed:
            return parts.backlog.changed.wait_for(
                lambda: self._flush_ingested.is_set() and not parts.backlog,
                max(0.0, deadline - self._clock()),
            )

    def abort_send(self) -> None:
        """Make a send stuck in flight fail now (from another thread), so the worker can keep
        its backlog on disk before the shutdown deadline. The send counts as failed."""
        parts = self._parts
        if parts is not None:
            parts.sending.abort()

    def stop(self, timeout: float) -> bool:
        """Stop the threads; what they still hold is spilled to disk or counted as dropped.

        Safe to call twice.
        """
        if self._thread is None:
            return True
        if not self._stopped:
            self._stopped = True
            self._inbox.signal(_STOP)
            if self._gate is not None:
                self._gate.set()
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def pending_records(self) -> int:
        """Records held but not delivered, in memory and on disk (approximate while running)."""
        parts = self._parts
        held = parts.backlog.records() + parts.intake.pending_records() if parts else 0
        return held + self._inbox.records

    # -- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        if self._gate is not None:
            self._gate.wait()
        parts = self._parts = self._build()
        self._built.set()
        if parts is not None:
            parts.sending.on_progress = self._room_made
            self._sender = threading.Thread(
                target=self._send_loop, args=(parts,), name="lambda-logs-http-sender"
            )
            self._sender.start()
        while True:
            try:
                if not self._step(parts):
                    break
            except Exception as exc:  # the loop never dies; one bad unit of work is logged
                log.error(f"worker error: {type(exc).__name__}: {exc}")
        self._finish(parts)

    def _room_made(self) -> None:
        """From the sender, after a send. Wakes the worker only if it holds pushes back (a
        wake for nothing would take the GIL from the main thread, which is about to release the
        invocation)."""
        if self._holding_back:
            self._inbox.wake()

    def _step(self, parts: Parts | None) -> bool:
        """One unit of work; False once told to stop."""
        intake = parts.intake if parts is not None else None
        waited = self._inbox.waited()
        pressed = waited is not None and waited >= PRESSURE_SECONDS
        may_take = intake is None or pressed or intake.may_take_push()
        timeout = intake.wait_time() if intake is not None else None
        if not may_take and parts is not None:
            # Holding back: until the sender makes room, its send in flight turns long (then
            # the receiver is behind), or the listener has waited long enough for room.
            limits = [parts.sending.time_until_behind(), timeout]
            if waited is not None:
                limits.append(PRESSURE_SECONDS - waited)
            timeout = min((t for t in limits if t is not None), default=None)
        if intake is not None:
            intake.pressed = pressed
        self._holding_back = not may_take
        item = self._inbox.take(may_take, timeout)
        self._holding_back = False
        if item == _STOP:
            return False
        if parts is None or intake is None:
            self._discard(item)
            return True
        if item == _FLUSH:
            intake.flushing = True
            while (push := self._inbox.take_push_nowait()) is not None:
                intake.ingest(push)
            intake.close_if_due(now_due=True)
            self._flush_ingested.set()
            parts.backlog.notify()
        elif isinstance(item, list):
            intake.ingest(item)
        intake.close_if_due()
        return True

    def _finish(self, parts: Parts | None) -> None:
        """At stop: end the sender, then keep what is left on disk (a reset keeps /tmp)."""
        if parts is None:
            while (push := self._inbox.take_push_nowait()) is not None:
                self._discard(push)
            return
        self._stop_sender(parts)
        intake = parts.intake
        intake.flushing = True
        while (push := self._inbox.take_push_nowait()) is not None:
            intake.ingest(push)
        intake.close_if_due(now_due=True)
        parts.backlog.keep_on_disk()
        on_disk = parts.backlog.spill.records
        if on_disk:
            log.warning(
                f"{on_disk} undelivered records kept in {parts.backlog.spill.directory}: a new "
                "extension process in this environment sends them first"
            )
        self._stats.add("on_disk", on_disk)
        parts.sending.sender.close()

    def _stop_sender(self, parts: Parts) -> None:
        """Stop the sender now: a send still in flight is aborted, its batch stays in the
        backlog (to be kept on disk with the rest)."""
        sender = self._sender
        if sender is None:
            return
        with parts.backlog.changed:
            self._sender_stopping = True
            parts.backlog.notify()
        parts.sending.abort()
        sender.join(SENDER_JOIN_SECONDS)
        if sender.is_alive():
            log.error("the sender did not stop in time; its batch is kept on disk anyway")

    def _build(self) -> Parts | None:
        """The parts; None (after one ERROR line) if they cannot be built."""
        try:
            transformer = self._transformer_factory()
            transport = self._transport_factory()
            return assemble(
                self._batching,
                self._delivery,
                self._timeout,
                transformer,
                transport,
                self._stats,
                self._progress,
                clock=self._clock,
            )
        except Exception as exc:  # a broken part must not kill the extension
            log.error(
                f"cannot start delivery ({type(exc).__name__}: {exc}); logs will NOT be forwarded"
            )
            return None

    def _discard(self, item: object) -> None:
        """Without parts nothing can be sent: count pushes as dropped, release waiters."""
        if item == _FLUSH:
            self._flush_ingested.set()
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

    # -- the sender thread --------------------------------------------------------------------

    def _send_loop(self, parts: Parts) -> None:
        backlog, sending = parts.backlog, parts.sending
        while not self._sender_stopping:
            try:
                version = backlog.version
                wait = sending.wait_time()
                if wait == 0.0:
                    sending.send_due()
                    continue
                with backlog.changed:
                    backlog.changed.wait_for(
                        lambda v=version: self._sender_stopping or backlog.version != v, wait
                    )
            except Exception as exc:  # the loop never dies; one bad unit of work is logged
                log.error(f"sender error: {type(exc).__name__}: {exc}")
                time.sleep(0.1)  # a fault that repeats must not spin the CPU
