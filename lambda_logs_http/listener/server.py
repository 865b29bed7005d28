"""The HTTP listener that receives Telemetry API pushes.

It answers fast and does no work beyond parsing: Lambda retries, then drops, when a listener is
slow, so the records go straight onto the worker's queue. It accepts only what Lambda sends — a
``POST`` whose body is a JSON array of event objects, of bounded size — and answers 4xx to
anything else without ever stopping.

One thread serves every connection from a ``poll`` loop (``loop``) with an incremental
parser (``parser``), not ``http.server``: the listener must answer before the extension
subscribes (AWS's emulator stalls the first invoke behind a push nobody answers), so whatever it
imports is paid on every cold start, and ``http.server`` costs 30-80 ms of imports there. This
also means no thread per connection, and no handoff between the socket and the queue.

``bind`` runs on the main thread before the subscription; ``start`` begins serving on the
listener's thread, and ``wait_serving`` says when pushes will be answered. The thread is a
``_thread`` one, and nothing here imports ``threading`` or ``collections``: the listener is
the only part that runs before init ends.

During init (``defer_pushes`` … ``end_deferral``) a push is answered at once and kept as it
came, unparsed: the function's runtime is starting on the same small share of CPU, and parsing
means importing ``json`` (with ``re``, ``enum``...). The kept bodies are parsed, in order and
before any later push, on this thread once init has ended — or as soon as they would cost more
than ``DEFERRED_MAX_COST`` in the worker's inbox. A kept body found malformed then, or of more
events than Lambda sends, is counted as dropped as it would have been (its 200 is already sent).
"""

from __future__ import annotations

import _socket
import _thread

from .. import log
from ..lambda_api.events import REPORT, RUNTIME_DONE
from .loop import ServeLoop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..invocations import InvocationProgress
    from ..stats import Stats
    from .parser import ProtocolError

BIND_HOST = "sandbox.localdomain"
FALLBACK_HOST = "127.0.0.1"
# Lambda's maxBytes is at most 1 MiB and one push can reach about twice that.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Pushes remembered to recognise one Lambda sends again (about a second of pushes).
RECENT_PUSHES = 32
# The bytes a push is recognised by, from each end: times and request ids of its first and last
# events (a push pushed again is the same bytes; two different ones never share both ends).
_KEY_BYTES = 4096
# The event types the main thread waits for: built once, not for every event looked at.
_WAITED_FOR = (RUNTIME_DONE, REPORT)
# What the pushes kept unparsed during init may cost in the worker's inbox (``push_cost``), at
# most: under half the inbox's bound, so that all of them fit in it at once when they are
# parsed. A function that logs more than this during init has its pushes parsed, and delivery
# started, before its init ends.
DEFERRED_MAX_COST = 1_000_000
_EVENT_COST = 400  # delivery.inbox.EVENT_OVERHEAD_BYTES, not imported here (cold start)


_CONSTANTS = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def parse_push(body: bytes) -> list[dict[str, object]] | None:
    """The events of one push, or None if the body is not a JSON array.

    Elements that are not objects are dropped here (and counted by the caller). Whatever a
    function logged, a push that is JSON is taken in whole: NaN and the infinities (not JSON,
    though Python writes them) become strings; when the C decoder refuses a value — nested
    too deep, an integer too long for ``int``, bytes that are not UTF-8, a raw control
    character — ``records.jsonsafe`` decodes the push again, keeping such a value as text, so
    one record never makes Lambda drop the whole push.
    """
    import json  # a dict lookup once imported; imported on this thread, not at start-up

    try:
        value = json.loads(body, parse_constant=_CONSTANTS.__getitem__)
    except (ValueError, RecursionError):
        from ..records import jsonsafe  # rare: only a push the C decoder refused

        try:
            value = jsonsafe.loads(body)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, list):
        return None
    return [event for event in value if isinstance(event, dict)]


def _push_key(body: bytes) -> int:
    return hash((len(body), body[:_KEY_BYTES], body[-_KEY_BYTES:]))


class TelemetryListener:
    """Receives pushes on ``port`` (0: one the system picks, known after ``bind``) and hands
    each one to ``sink`` (which must not block)."""

    def __init__(
        self,
        port: int,
        sink: Callable[[list[dict[str, object]], int], bool] | None,
        progress: InvocationProgress | None,
        stats: Stats,
        max_body_bytes: int = MAX_BODY_BYTES,
        wake_sink: Callable[[], None] | None = None,
        max_events: int = 0,
    ) -> None:
        """``sink(events, body_bytes)`` queues a push. With ``wake_sink``, ``sink`` only queues,
        and ``wake_sink`` is called once the pushes' answers are written: Lambda gets its answer
        before the worker competes for the GIL, and the worker starts on a push with the
        listener's part done. ``max_events`` (0: no limit) refuses a push of more events than
        Lambda sends (it sends at most the subscription's ``maxItems``): what a push costs in
        memory once parsed grows with its events, not only its bytes. ``sink`` and ``progress``
        may be given later, by ``deliver_to``, before the deferral ends (``defer_pushes``)."""
        self.port = port
        self.host = ""
        self._sink = sink
        self._wake_sink = wake_sink
        self._queued = False
        self._progress = progress
        self._stats = stats
        self._max_body_bytes = max_body_bytes
        self._max_events = max_events
        self._recent: list[int] = []  # keys of the last RECENT_PUSHES pushes queued
        self._socket: _socket.socket | None = None
        self._wake_writer: _socket.socket | None = None
        self._stopping = False
        self._started = False
        self._ready = _held_lock()  # released once the thread serves (or could not)
        self._ready_released = False  # by the listener's thread, which alone releases it
        self._done = _held_lock()  # released when the thread ends
        self._deferring = False
        self._deferred: list[bytes] = []  # bodies kept unparsed during init, in arrival order
        self._deferred_cost = 0
        self._deferral_full: Callable[[], None] | None = None

    def bind(self) -> str:
        """Bind ``sandbox.localdomain`` (127.0.0.1 where that name doesn't resolve); listen."""
        # _socket, and the name as bytes: neither ``socket`` nor the ``idna`` codec is imported
        # on the cold-start path.
        try:
            infos = _socket.getaddrinfo(
                BIND_HOST.encode(), self.port, _socket.AF_INET, _socket.SOCK_STREAM
            )
            address = infos[0][4][0]
        except (OSError, IndexError):
            address = FALLBACK_HOST
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, self.port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.host = address
        self.port = sock.getsockname()[1]  # the port the system chose, when asked for port 0
        return address

    def start(self) -> None:
        """Serve on the bound socket from a thread of our own."""
        if self._socket is None:
            raise RuntimeError("bind() first")
        if self._started:
            raise RuntimeError("listener already started")
        self._started = True
        _thread.start_new_thread(self._run, ())

    def wait_serving(self, timeout: float) -> bool:
        """Wait until the thread is about to serve; say whether it is."""
        return _wait(self._ready, timeout) and self._wake_writer is not None

    def deliver_to(
        self,
        sink: Callable[[list[dict[str, object]], int], bool] | None,
        progress: InvocationProgress | None,
        wake_sink: Callable[[], None] | None = None,
    ) -> None:
        """Where parsed pushes go, when that was not known at construction; call it before
        ``end_deferral`` (see ``__init__`` for the arguments). ``None``: delivery could not
        start, and what comes is counted as ``not_started``."""
        self._sink, self._progress, self._wake_sink = sink, progress, wake_sink

    def defer_pushes(self, on_full: Callable[[], None] | None = None) -> None:
        """Keep pushes unparsed (answered at once) until ``end_deferral``; call before
        ``start``. ``on_full`` runs on this thread if they grow past ``DEFERRED_MAX_COST``, when
        this listener stops deferring by itself."""
        self._deferring = True
        self._deferral_full = on_full

    def end_deferral(self) -> None:
        """From any thread: parse the kept pushes now, and every later one as it comes."""
        if not self._deferring:
            return
        self._deferring = False
        writer = self._wake_writer
        if writer is not None:
            try:
                writer.send(b"x")  # the loop hands the kept pushes on after this round
            except OSError:
                pass  # the loop is ending: it hands them on as it ends

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting pushes and join the thread. Safe to call twice."""
        self._stopping = True
        if self._started and _wait(self._ready, timeout):
            writer = self._wake_writer
            if writer is not None:
                try:
                    writer.send(b"x")
                except OSError:
                    pass  # already woken and closed: the thread is ending
            _wait(self._done, timeout)
        elif self._socket is not None:
            self._socket.close()

    def handle_body(self, body: bytes) -> int:
        """Process one push body; return the HTTP status to answer."""
        if self._deferring:
            # Every event is an object, so its "{" bounds their number without parsing.
            cost = len(body) + _EVENT_COST * body.count(b"{")
            if self._deferred_cost + cost <= DEFERRED_MAX_COST:
                return self._keep(body, cost)
            self._deferring = False
            if self._deferral_full is not None:
                self._deferral_full()
        if self._deferred:
            self._hand_on_deferred()
        return self._take(body)

    def _keep(self, body: bytes, cost: int) -> int:
        """During init: answer at once, parse later (``_hand_on_deferred``)."""
        key = _push_key(body)
        if key in self._recent:
            self._stats.add("resent")  # see _take
            return 200
        self._remember(key)
        self._deferred.append(body)
        self._deferred_cost += cost
        return 200

    def _hand_on_deferred(self) -> None:
        """Parse the pushes kept during init, in order, into the worker's inbox."""
        bodies, self._deferred, self._deferred_cost = self._deferred, [], 0
        for body in bodies:
            self._take(body, answered=True)

    def _take(self, body: bytes, answered: bool = False) -> int:
        """Parse one push and queue it; ``answered``: kept during init, already answered 200
        (and already recognised if Lambda sent it again)."""
        events = parse_push(body)
        if events is None:
            self._stats.drop("malformed_push", 1)
            log.warning(f"rejected a malformed Telemetry push ({len(body)} bytes)")
            return 400
        if not events:
            return 200
        if self._max_events and len(events) > self._max_events:
            self._stats.drop("oversized_push", len(events))
            log.warning(
                f"rejected a Telemetry push of {len(events)} events: Lambda sends at most "
                f"{self._max_events // 2} (the subscription's maxItems)"
            )
            return 413
        key = 0 if answered else _push_key(body)
        if not answered and key in self._recent:
            # Lambda pushes again what it thinks we did not take (our answer came late, or was
            # lost to a freeze): we did, so taking it twice would only duplicate its records.
            self._stats.add("resent")
            return 200
        if self._sink is None or self._progress is None:  # delivery could not start
            self._stats.drop("not_started", len(events))
            return 200
        if not self._sink(events, len(body)):
            if answered:  # not expected: the kept pushes fit in the inbox (DEFERRED_MAX_COST)
                self._stats.drop("queue_full", len(events))
                log.error(f"queue full: dropped a push of {len(events)} records taken during init")
                return 503
            # Our queue is full: let Lambda keep the records and retry (it reports drops).
            log.warning(f"queue full, asked Lambda to retry a push of {len(events)} records")
            return 503
        if not answered:
            self._remember(key)
        self._queued = True
        self._stats.add("received", len(events))
        # Only after queueing: the main thread may release the invocation once these are sent.
        # A look at every parsed event: the types as they were meant, however escaped. Scanning
        # the body's bytes for them instead cost 3x more (186-333 us a 1,000-record push,
        # against 56-124 us for this loop): the scan for an escape, needed for the same answer,
        # stops at every escaped tab of every Text line.
        for event in events:
            event_type = event.get("type")
            if event_type in _WAITED_FOR:
                record = event.get("record")
                request_id = record.get("requestId") if isinstance(record, dict) else None
                if isinstance(request_id, str):
                    if event_type == RUNTIME_DONE:
                        self._progress.runtime_done_arrived(request_id)
                    else:
                        self._progress.report_arrived(request_id)
        return 200

    def _remember(self, key: int) -> None:
        self._recent.append(key)
        if len(self._recent) > RECENT_PUSHES:
            del self._recent[0]

    def _after_answers(self) -> None:
        if self._deferred and not self._deferring:
            self._hand_on_deferred()
        if self._queued:
            self._queued = False
            if self._wake_sink is not None:
                self._wake_sink()

    def _refused_oversized(self, error: ProtocolError) -> None:
        self._stats.drop("oversized_push", 1)
        log.warning(f"rejected a Telemetry push: {error}")

    def _run(self) -> None:
        """The thread: nothing escapes it but one line (``threading.excepthook`` would only
        see a ``threading`` thread)."""
        try:
            self._serve()
        except Exception as exc:
            log.error(f"the Telemetry listener failed: {type(exc).__name__}: {exc}")
        finally:
            self._release_ready()
            self._done.release()

    def _release_ready(self) -> None:
        if not self._ready_released:
            self._ready_released = True
            self._ready.release()

    def _serve(self) -> None:
        listening = self._socket
        assert listening is not None
        try:
            wake_reader, wake_writer = _socket.socketpair()
            loop = ServeLoop(
                listening, wake_reader, self.handle_body, self._refused_oversized,
                self._max_body_bytes, self._after_answers,
            )  # fmt: skip
        except Exception as exc:  # nothing can be received; say so once, clearly
            log.error(f"the Telemetry listener could not start: {type(exc).__name__}: {exc}")
            listening.close()
            return
        self._wake_writer = wake_writer
        self._release_ready()
        try:
            loop.run(lambda: self._stopping)
        finally:
            self._deferring = False
            try:
                self._after_answers()  # what is still kept goes to the worker before it stops
            except Exception as exc:  # what could not be handed on is counted where it failed
                log.error(f"the Telemetry listener failed: {type(exc).__name__}: {exc}")
            loop.close_all()
            wake_reader.close()
            wake_writer.close()
            listening.close()


def _held_lock() -> _thread.LockType:
    """A lock acquired now, released once: an event without ``threading``."""
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


def _wait(lock: _thread.LockType, timeout: float) -> bool:
    """Wait until a ``_held_lock`` is released, at most ``timeout`` seconds; say whether."""
    if lock.acquire(True, max(0.0, timeout)):
        lock.release()
        return True
    return False
