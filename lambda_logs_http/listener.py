"""The HTTP listener that receives Telemetry API pushes.

It answers fast and does no work beyond parsing: Lambda retries, then drops, when a listener is
slow, so the records go straight onto the worker's queue. It accepts only what Lambda sends — a
``POST`` whose body is a JSON array of event objects, of bounded size — and answers 4xx to
anything else without ever stopping.

One thread serves every connection from a ``poll`` loop with an incremental parser
(``push_protocol``), not ``http.server``: the listener must answer before the extension
subscribes (AWS's emulator stalls the first invoke behind a push nobody answers), so whatever it
imports is paid on every cold start, and ``http.server`` costs 30-80 ms of imports there. This
also means no thread per connection, and no handoff between the socket and the queue.

``bind`` runs on the main thread before the subscription; ``start`` begins serving on the
listener's thread, and ``wait_serving`` says when pushes will be answered.
"""

from __future__ import annotations

import _socket
import threading
import time

from . import log
from .push_protocol import CONTINUE, ProtocolError, RequestParser, response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .progress import InvocationProgress
    from .stats import Stats

BIND_HOST = "sandbox.localdomain"
FALLBACK_HOST = "127.0.0.1"
# Lambda's maxBytes is at most 1 MiB and one push can reach about twice that.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Lambda keeps one or two connections open; more than this are evicted, least recently used first.
MAX_CONNECTIONS = 32
_RECV_BYTES = 256 * 1024
_SEND_TIMEOUT_SECONDS = 5.0  # an answer is a few dozen bytes: only a dead peer takes this long
_LINGER_SECONDS = 1.0
_LINGER_MAX_BYTES = 8 * 1024 * 1024
_LINGER_POLL_MS = 100
RUNTIME_DONE = "platform.runtimeDone"
REPORT = "platform.report"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_push(body: bytes) -> list[dict[str, object]] | None:
    """The events of one push, or None if the body is not a JSON array.

    Elements that are not objects are dropped here (and counted by the caller); NaN/Infinity,
    which Python's json would otherwise accept, make the body invalid.
    """
    import json  # a dict lookup once imported; imported on this thread, not at start-up

    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    return [event for event in value if isinstance(event, dict)]


class TelemetryListener:
    """Receives pushes on ``port`` and hands each one to ``sink`` (which must not block)."""

    def __init__(
        self,
        port: int,
        sink: Callable[[list[dict[str, object]]], bool],
        progress: InvocationProgress,
        stats: Stats,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.port = port
        self.host = ""
        self._sink = sink
        self._progress = progress
        self._stats = stats
        self._max_body_bytes = max_body_bytes
        self._socket: _socket.socket | None = None
        self._wake_writer: _socket.socket | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

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
        return address

    def start(self) -> None:
        """Serve on the bound socket from a thread of our own."""
        if self._socket is None:
            raise RuntimeError("bind() first")
        if self._thread is not None:
            raise RuntimeError("listener already started")
        self._thread = threading.Thread(target=self._serve, name="lambda-logs-http-listener")
        self._thread.start()

    def wait_serving(self, timeout: float) -> bool:
        """Wait until the thread is about to serve; say whether it is."""
        return self._ready.wait(timeout) and self._wake_writer is not None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting pushes and join the thread. Safe to call twice."""
        self._stopping = True
        if self._thread is not None and self._ready.wait(timeout):
            writer = self._wake_writer
            if writer is not None:
                try:
                    writer.send(b"x")
                except OSError:
                    pass  # already woken and closed: the thread is ending
            self._thread.join(timeout)
        elif self._socket is not None:
            self._socket.close()

    def handle_body(self, body: bytes) -> int:
        """Process one push body; return the HTTP status to answer."""
        events = parse_push(body)
        if events is None:
            self._stats.drop("malformed_push", 1)
            log.warning(f"rejected a malformed Telemetry push ({len(body)} bytes)")
            return 400
        if not events:
            return 200
        if not self._sink(events):
            # Our queue is full: let Lambda keep the records and retry (it reports drops).
            log.warning(f"queue full, asked Lambda to retry a push of {len(events)} records")
            return 503
        self._stats.add("received", len(events))
        # Only after queueing: the main thread may release the invocation once these are sent.
        for event in events:
            event_type = event.get("type")
            if event_type in (RUNTIME_DONE, REPORT):
                record = event.get("record")
                request_id = record.get("requestId") if isinstance(record, dict) else None
                if isinstance(request_id, str):
                    if event_type == RUNTIME_DONE:
                        self._progress.runtime_done_arrived(request_id)
                    else:
                        self._progress.report_arrived(request_id)
        return 200

    def _serve(self) -> None:
        listening = self._socket
        assert listening is not None
        try:
            import select  # a small C module: the whole serving loop imports nothing else

            wake_reader, wake_writer = _socket.socketpair()
            poller = select.poll()
        except Exception as exc:  # nothing can be received; say so once, clearly
            log.error(f"the Telemetry listener could not start: {type(exc).__name__}: {exc}")
            self._ready.set()
            listening.close()
            return
        self._wake_writer = wake_writer
        self._ready.set()
        loop = _ServeLoop(self, listening, wake_reader, poller, select.POLLIN)
        try:
            loop.run(lambda: self._stopping)
        finally:
            loop.close_all()
            wake_reader.close()
            wake_writer.close()
            listening.close()


class _Connection:
    """One accepted connection: its parser, and when it was last active (for eviction)."""

    __slots__ = ("sock", "parser", "last_active", "linger_until", "discarded")

    def __init__(self, sock: _socket.socket, parser: RequestParser, now: float) -> None:
        self.sock = sock
        self.parser = parser
        self.last_active = now
        self.linger_until = 0.0  # set once answered with "Connection: close"
        self.discarded = 0


class _ServeLoop:
    """The listener thread's poll loop over the listening socket and every open connection."""

    def __init__(
        self,
        listener: TelemetryListener,
        listening: _socket.socket,
        wake_reader: _socket.socket,
        poller: Any,
        pollin: int,
    ) -> None:
        self._listener = listener
        self._listening = listening
        self._wake_reader = wake_reader
        self._poller = poller
        self._pollin = pollin
        self._connections: dict[int, _Connection] = {}

    def run(self, stopping: Callable[[], bool]) -> None:
        listening_fd = self._listening.fileno()
        wake_fd = self._wake_reader.fileno()
        self._listening.setblocking(False)
        self._poller.register(listening_fd, self._pollin)
        self._poller.register(wake_fd, self._pollin)
        while not stopping():
            lingering = any(c.linger_until for c in self._connections.values())
            for fd, _events in self._poller.poll(_LINGER_POLL_MS if lingering else None):
                if fd == wake_fd:
                    continue  # stop() woke us: the loop condition ends it
                if fd == listening_fd:
                    self._accept_all()
                    continue
                connection = self._connections.get(fd)
                if connection is not None:
                    self._on_readable(connection)
            if lingering:
                self._end_lingering(time.monotonic())

    def close_all(self) -> None:
        for connection in list(self._connections.values()):
            self._close(connection)

    def _accept_all(self) -> None:
        while True:
            try:
                fd, _address = self._listening._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the backlog holds the rest
                log.warning(f"the Telemetry listener could not accept: {exc}")
                return
            sock = _socket.socket(fileno=fd)
            sock.settimeout(_SEND_TIMEOUT_SECONDS)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if len(self._connections) >= MAX_CONNECTIONS:
                oldest = min(self._connections.values(), key=lambda c: c.last_active)
                self._close(oldest)
            now = time.monotonic()
            parser = RequestParser(self._listener._max_body_bytes)
            self._connections[sock.fileno()] = _Connection(sock, parser, now)
            self._poller.register(sock.fileno(), self._pollin)

    def _on_readable(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(_RECV_BYTES)
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        connection.last_active = time.monotonic()
        if connection.linger_until:
            connection.discarded += len(data)
            if connection.discarded > _LINGER_MAX_BYTES:
                self._close(connection)
            return
        try:
            self._serve_requests(connection, data)
        except OSError:
            self._close(connection)  # the sender went away mid-answer
        except Exception as exc:  # one bad request must not stop the listener
            log.error(f"the Telemetry listener failed on a push: {type(exc).__name__}: {exc}")
            self._close(connection)

    def _serve_requests(self, connection: _Connection, data: bytes) -> None:
        parser = connection.parser
        parser.feed(data)
        while True:
            try:
                request = parser.next_request()
            except ProtocolError as error:
                if error.status == 413:
                    self._listener._stats.drop("oversized_push", 1)
                    log.warning(f"rejected a Telemetry push: {error}")
                connection.sock.sendall(response(error.status, error.detail, close=True))
                self._linger(connection)
                return
            if request is None:
                if parser.continue_due:
                    parser.continue_due = False
                    connection.sock.sendall(CONTINUE)
                return
            status = self._listener.handle_body(request.body)
            close = not request.keep_alive or (status >= 400 and status != 503)
            connection.sock.sendall(response(status, close=close))
            if close:
                self._linger(connection)
                return

    def _linger(self, connection: _Connection) -> None:
        """Close after an answer, but read what the sender still sends first: closing with
        unread bytes resets the connection, and the sender may lose our answer to the reset."""
        if connection.parser.idle:
            self._close(connection)
            return
        try:
            connection.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.linger_until = time.monotonic() + _LINGER_SECONDS

    def _end_lingering(self, now: float) -> None:
        for connection in list(self._connections.values()):
            if connection.linger_until and now >= connection.linger_until:
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        fd = connection.sock.fileno()
        if self._connections.pop(fd, None) is not None:
            self._poller.unregister(fd)
        connection.sock.close()
