"""The HTTP listener that receives Telemetry API pushes.

It answers fast and does no work beyond parsing: Lambda retries, then drops, when a listener is
slow, so the records go straight onto the worker's queue. It accepts only what Lambda sends — a
``POST`` whose body is a JSON array of event objects, of bounded size — and answers 400/405/411/
413 to anything else without ever stopping.

Start-up is split in two for the cold start: ``bind`` (cheap, on the main thread, before the
subscription so Lambda's first push always finds a socket) and ``start`` (on the listener's own
thread, which imports ``http.server`` — tens of milliseconds — while the function's runtime is
already starting). A push arriving in between simply waits in the socket's backlog.
"""

from __future__ import annotations

import _socket
import threading

from . import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .progress import InvocationProgress
    from .stats import Stats

BIND_HOST = "sandbox.localdomain"
FALLBACK_HOST = "127.0.0.1"
# Lambda's maxBytes is at most 1 MiB and one push can reach about twice that.
MAX_BODY_BYTES = 4 * 1024 * 1024
# How often serve_forever checks for a stop request: bounds how long stop() takes at shutdown.
_POLL_SECONDS = 0.05
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
        self._gate: threading.Event | None = None
        self._server: object = None
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

    def start(self, gate: threading.Event | None = None) -> None:
        """Serve on the bound socket from a thread of our own.

        With a ``gate``, the thread imports ``http.server`` only once the gate opens (when the
        main thread has called ``/event/next``): until then pushes wait in the socket's backlog
        and the import does not compete with the cold start.
        """
        self._gate = gate
        if self._socket is None:
            raise RuntimeError("bind() first")
        if self._thread is not None:
            raise RuntimeError("listener already started")
        self._thread = threading.Thread(target=self._serve, name="lambda-logs-http-listener")
        self._thread.start()

    def wait_serving(self, timeout: float) -> bool:
        """Wait until the server is built and about to serve; say whether it is."""
        return self._ready.wait(timeout) and self._server is not None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting pushes and join the thread. Safe to call twice."""
        if self._gate is not None:
            self._gate.set()  # a thread still waiting at the gate must get to its end
        if self._thread is not None and self._ready.wait(timeout):
            server = self._server
            if server is not None:
                server.shutdown()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
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
        if self._gate is not None:
            self._gate.wait()
        try:
            server = _build_server(self)
        except Exception as exc:  # nothing can be received; say so once, clearly
            log.error(f"the Telemetry listener could not start: {type(exc).__name__}: {exc}")
            self._ready.set()
            return
        self._server = server
        self._ready.set()
        # Run even if stop() came first: shutdown() waits for serve_forever to start and end.
        try:
            server.serve_forever(poll_interval=_POLL_SECONDS)  # type: ignore[attr-defined]
        finally:
            server.server_close()  # type: ignore[attr-defined]


def _build_server(listener: TelemetryListener) -> object:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    max_body = listener._max_body_bytes

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Lambda pushes often
        disable_nagle_algorithm = True  # answer in one segment, no delayed-ACK stall
        server_version = "lambda-logs-http"
        sys_version = ""

        def do_POST(self) -> None:
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                self._answer(411, b"Content-Length required")
                return
            try:
                length = int(length_header)
            except ValueError:
                self._answer(400, b"bad Content-Length")
                return
            if length < 0 or length > max_body:
                listener._stats.drop("oversized_push", 1)
                log.warning(f"rejected a Telemetry push of {length} bytes (limit {max_body})")
                self.close_connection = True
                self._answer(413, b"too large")
                return
            body = self.rfile.read(length)
            self._answer(listener.handle_body(body), b"")

        def do_GET(self) -> None:
            self._answer(405, b"POST only")

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status >= 400 and status != 503:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one stderr line per push would flood the function's logs

    class Server(ThreadingHTTPServer):
        daemon_threads = True  # request threads hold no data: it is queued before answering
        block_on_close = False

    import socket

    server = Server((listener.host, listener.port), Handler, bind_and_activate=False)
    server.socket.close()
    raw = listener._socket
    assert raw is not None
    server.socket = socket.socket(fileno=raw.detach())
    listener._socket = server.socket  # type: ignore[assignment]
    server.server_address = server.socket.getsockname()
    return server
