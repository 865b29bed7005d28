"""The listener thread's I/O: one ``poll`` loop over the listening socket and every connection.

Why one thread and non-blocking sockets: Lambda pushes on one or two kept-alive connections and
must be answered at once, whatever any other local process does with the port. So no call here
ever waits on a peer — reads take what is there, answers that can't be written now wait for
``POLLOUT`` — and every resource a peer can make us hold is bounded: connections (least recently
active evicted), bytes buffered across all of them (the largest partial request evicted), the
time a request may take to arrive or an answer may wait to be read (``PARTIAL_IDLE_SECONDS``).
A kept-alive connection with nothing pending has no time limit: Lambda reuses it after a freeze
of any length.

The HTTP itself is ``parser``; what a push means is the ``handle_body`` callback.
"""

from __future__ import annotations

import _socket
import errno
import time

from .. import log
from .parser import CONTINUE, ProtocolError, RequestParser, response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Lambda keeps one or two connections open; more than this are evicted, least recently used first.
MAX_CONNECTIONS = 32
# A partial request, or an answer the peer does not read, may wait this long; then it is closed.
PARTIAL_IDLE_SECONDS = 10.0
_RECV_BYTES = 256 * 1024
# Answers waiting for a peer that does not read: beyond this, stop reading its requests.
_MAX_OUTBOX_BYTES = 64 * 1024
_LINGER_SECONDS = 1.0
_LINGER_MAX_BYTES = 8 * 1024 * 1024
# Out of file descriptors: stop accepting for this long (the backlog holds new connections).
_ACCEPT_PAUSE_SECONDS = 1.0
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class _Connection:
    """One accepted connection: its parser, its unsent answers, and its deadlines."""

    __slots__ = (
        "sock", "fd", "parser", "outbox", "last_active", "request_started", "close_when_sent",
        "refused", "linger_until", "discarded",
    )  # fmt: skip

    def __init__(self, sock: _socket.socket, parser: RequestParser, now: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = parser
        self.outbox = bytearray()
        self.last_active = now
        self.request_started = now  # when the first byte of the request in progress came
        self.close_when_sent = False  # answered with "Connection: close"
        self.refused = False  # that answer refused a request whose body may still be coming
        self.linger_until = 0.0  # set once that answer is out and our side is shut
        self.discarded = 0

    def deadline(self) -> float | None:
        """When to close it: at the end of its linger, when a request has taken too long to
        arrive (counted from its first byte: a peer dripping a byte at a time gains nothing),
        or when an answer has waited too long to be read. None: idle and kept alive, for as
        long as the peer likes."""
        if self.linger_until:
            return self.linger_until
        deadlines = []
        if not self.parser.idle:
            deadlines.append(self.request_started + PARTIAL_IDLE_SECONDS)
        if self.outbox:
            deadlines.append(self.last_active + PARTIAL_IDLE_SECONDS)
        return min(deadlines) if deadlines else None


class ServeLoop:
    """Owned by the listener thread; ``run`` returns once ``stopping()`` is true after a wake-up."""

    def __init__(
        self,
        listening: _socket.socket,
        wake_reader: _socket.socket,
        handle_body: Callable[[bytes], int],
        on_oversized: Callable[[ProtocolError], None],
        max_body_bytes: int,
        after_answers: Callable[[], None] = lambda: None,
    ) -> None:
        """``after_answers`` runs after each round of events, once its answers are written."""
        import select  # a small C module, and the only import the loop needs

        self._listening = listening
        self._wake_reader = wake_reader
        self._handle_body = handle_body
        self._on_oversized = on_oversized
        self._after_answers = after_answers
        self._max_body = max_body_bytes
        # Two of Lambda's largest pushes in flight at once, plus a read each.
        self._buffer_budget = 2 * max_body_bytes + 2 * _RECV_BYTES
        self._poller = select.poll()
        self._pollin = select.POLLIN
        self._pollout = select.POLLOUT
        self._connections: dict[int, _Connection] = {}
        self._accept_paused_until = 0.0

    def run(self, stopping: Callable[[], bool]) -> None:
        listening_fd = self._listening.fileno()
        wake_fd = self._wake_reader.fileno()
        self._listening.setblocking(False)
        self._wake_reader.setblocking(False)
        self._poller.register(listening_fd, self._pollin)
        self._poller.register(wake_fd, self._pollin)
        while not stopping():
            events = self._poller.poll(self._poll_timeout_ms(time.monotonic()))
            self._dispatch(events, listening_fd, wake_fd)
            try:
                self._after_answers()
            except Exception as exc:  # the listener goes on whatever the callback does
                _report_failure(exc)
            self._expire(time.monotonic())

    def close_all(self) -> None:
        for connection in list(self._connections.values()):
            self._close(connection)

    # -- events ---------------------------------------------------------------------------

    def _dispatch(self, events: list[tuple[int, int]], listening_fd: int, wake_fd: int) -> None:
        accepted: set[int] = set()
        for fd, mask in events:
            try:
                if fd == wake_fd:
                    self._drain_wake()
                elif fd == listening_fd:
                    accepted |= self._accept_all()
                elif fd not in accepted:  # else the number was reused: the event is stale
                    self._on_event(fd, mask)
            except Exception as exc:  # one bad connection must not stop the listener
                _report_failure(exc)
                connection = self._connections.get(fd)
                if connection is not None:
                    self._close(connection)

    def _on_event(self, fd: int, mask: int) -> None:
        connection = self._connections.get(fd)
        if connection is None:
            return
        if mask & self._pollout:
            self._flush(connection)
        if fd in self._connections and mask & ~self._pollout:  # readable, hung up or in error
            self._on_readable(connection)

    def _drain_wake(self) -> None:
        try:
            self._wake_reader.recv(64)
        except OSError:
            pass  # nothing left: the loop condition is what matters

    def _accept_all(self) -> set[int]:
        accepted: set[int] = set()
        while True:
            try:
                fd, _address = self._listening._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return accepted
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._pause_accepting(exc)
                else:
                    log.warning(f"the Telemetry listener could not accept: {exc}")
                return accepted
            sock = _socket.socket(fileno=fd)
            sock.setblocking(False)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if len(self._connections) >= MAX_CONNECTIONS:
                self._close(min(self._connections.values(), key=lambda c: c.last_active))
            connection = _Connection(sock, RequestParser(self._max_body), time.monotonic())
            self._connections[fd] = connection
            self._poller.register(fd, self._pollin)
            accepted.add(fd)

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: the listening socket stays readable, so polling it would spin."""
        log.warning(
            f"the Telemetry listener could not accept ({exc.strerror}); "
            f"pausing new connections for {_ACCEPT_PAUSE_SECONDS:.0f} s"
        )
        self._poller.unregister(self._listening.fileno())
        self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE_SECONDS

    def _on_readable(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return  # a stale readiness report: nothing to read after all
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        now = time.monotonic()
        connection.last_active = now
        if connection.parser.idle:
            connection.request_started = now  # this is the first byte of a request
        if connection.close_when_sent:  # lingering, or about to
            connection.discarded += len(data)  # the rest of a request we already refused
            if connection.discarded > _LINGER_MAX_BYTES:
                self._close(connection)
            return
        connection.parser.feed(data)
        if self._over_budget(connection):
            return
        self._serve_requests(connection)

    def _serve_requests(self, connection: _Connection) -> None:
        parser = connection.parser
        while len(connection.outbox) < _MAX_OUTBOX_BYTES:
            try:
                request = parser.next_request()
            except ProtocolError as error:
                if error.status == 413:
                    self._on_oversized(error)
                connection.refused = True
                self._answer(connection, response(error.status, error.detail, close=True), True)
                return
            if request is None:
                if parser.continue_due:
                    parser.continue_due = False
                    self._answer(connection, CONTINUE, False)
                return
            status = self._handle_body(request.body)
            close = not request.keep_alive or (status >= 400 and status != 503)
            self._answer(connection, response(status, close=close), close)
            if close or connection.fd not in self._connections:
                return

    # -- writing --------------------------------------------------------------------------

    def _answer(self, connection: _Connection, data: bytes, close: bool) -> None:
        connection.outbox += data
        connection.close_when_sent = connection.close_when_sent or close
        self._flush(connection)

    def _flush(self, connection: _Connection) -> None:
        outbox = connection.outbox
        while outbox:
            try:
                sent = connection.sock.send(outbox)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(connection)  # the peer went away: nothing to answer
                return
            del outbox[:sent]
        if not outbox and connection.close_when_sent and not connection.linger_until:
            self._linger(connection)
            return
        self._update_interest(connection)

    def _update_interest(self, connection: _Connection) -> None:
        mask = self._pollout if connection.outbox else 0
        if len(connection.outbox) < _MAX_OUTBOX_BYTES:
            mask |= self._pollin  # a peer that doesn't read our answers gets no more read
        self._poller.modify(connection.fd, mask)

    def _linger(self, connection: _Connection) -> None:
        """Close after the last answer, but first read what the peer still sends: closing with
        unread bytes resets the connection, and the peer may lose our answer to the reset."""
        if connection.parser.idle and not connection.refused:
            self._close(connection)  # a complete request and "Connection: close": nothing follows
            return
        try:
            connection.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.linger_until = time.monotonic() + _LINGER_SECONDS
        self._poller.modify(connection.fd, self._pollin)

    # -- bounds ---------------------------------------------------------------------------

    def _over_budget(self, connection: _Connection) -> bool:
        """Bytes buffered across connections over the budget: close the largest holder.
        Says whether ``connection`` was the one closed."""
        total = sum(c.parser.buffered for c in self._connections.values())
        if total <= self._buffer_budget:
            return False
        largest = max(self._connections.values(), key=lambda c: c.parser.buffered)
        log.warning(
            f"the Telemetry listener holds {total} bytes of partial requests; closed a "
            f"connection holding {largest.parser.buffered}"
        )
        self._close(largest)
        return largest is connection

    def _poll_timeout_ms(self, now: float) -> int | None:
        """Until the next deadline (None: none, wait for an event)."""
        deadlines = [d for c in self._connections.values() if (d := c.deadline()) is not None]
        if self._accept_paused_until:
            deadlines.append(self._accept_paused_until)
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - now) * 1000) + 1)

    def _expire(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._poller.register(self._listening.fileno(), self._pollin)
        for connection in list(self._connections.values()):
            deadline = connection.deadline()
            if deadline is not None and now >= deadline:
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if self._connections.pop(connection.fd, None) is not None:
            self._poller.unregister(connection.fd)
        connection.sock.close()


def _report_failure(exc: Exception) -> None:
    log.error(f"the Telemetry listener failed: {type(exc).__name__}: {exc}")
