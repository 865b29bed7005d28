"""The HTTP transport: one threaded server on 127.0.0.1 that routes to the API modules.

The API modules see only :class:`ApiRequest` and return :class:`ApiResponse`; they know nothing
of sockets. Handlers may block (``/event/next``, ``/invocation/next``), so every connection has
its own thread; :meth:`ApiServer.close` wakes them by shutting their sockets down.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from .results import ApiCall

log = logging.getLogger("lambda_sandbox.server")

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ApiRequest:
    """A request as the API handlers see it. ``headers`` lookups are case-insensitive."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else value


@dataclass(frozen=True)
class ApiResponse:
    """What to send back; ``caller`` names the client in :class:`ApiCall` records."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    caller: str = ""


def json_response(status: int, document: Any, headers: Mapping[str, str] | None = None,
                  caller: str = "") -> ApiResponse:
    """A JSON body with ``Content-Type: application/json``."""
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    body = json.dumps(document, separators=(",", ":")).encode()
    return ApiResponse(status, body, all_headers, caller)


def error_response(status: int, error_type: str, message: str, caller: str = "") -> ApiResponse:
    """Lambda's error document ``{"errorMessage", "errorType"}``."""
    return json_response(status, {"errorMessage": message, "errorType": error_type},
                         caller=caller)


Handler = Callable[[ApiRequest], ApiResponse]


class Router:
    """Maps (method, path pattern) to a handler; answers 404/405 like a plain HTTP router."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Route ``method`` on paths fully matching ``pattern`` (named groups become params)."""
        self._routes.append((method, re.compile(pattern), handler))

    def dispatch(self, request: ApiRequest) -> ApiResponse:
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method != request.method:
                continue
            routed = ApiRequest(request.method, request.path, request.headers, request.body,
                                dict(match.groupdict()))
            return handler(routed)
        if path_matched:
            return error_response(405, "MethodNotAllowed", f"{request.method} not allowed")
        return error_response(404, "NotFound", f"no route for {request.path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, router: Router, on_call: Callable[[ApiCall], None]) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.router = router
        self.on_call = on_call
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.tracking_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                  name="sandbox-api-conn", daemon=True)
        with self.tracking_lock:
            self.connections.add(request)
            self.threads.add(thread)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.tracking_lock:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as awslambdaric's libcurl client and most extensions expect.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(16)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError) as exc:
            self._send(error_response(400, "InvalidRequestFormat", str(exc)))
            self.close_connection = True
            return
        request = ApiRequest(self.command, urlsplit(self.path).path, self.headers, body)
        try:
            response = self.server.router.dispatch(request)
        except Exception:  # a bug in a handler must not kill the server
            log.exception("handler for %s %s failed", self.command, self.path)
            response = error_response(500, "InternalServerError", "Internal Server Error")
        self.server.on_call(ApiCall(time.time(), self.command, request.path, response.status,
                                    response.caller))
        self._send(response)

    def _send(self, response: ApiResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.body:
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            # The client went away (killed, or reset while frozen): nothing to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        log.debug("%s %s", self.address_string(), format % args)


class ApiServer:
    """Owns the server thread. ``start()`` once; ``close()`` is safe to call twice."""

    def __init__(self, router: Router, on_call: Callable[[ApiCall], None] | None = None) -> None:
        self._server = _Server(router, on_call or (lambda call: None))
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ApiServer already started")
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="sandbox-api-server", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> bool:
        """Stop accepting, cut every open connection, and join the threads (bounded).

        Returns whether every thread finished within ``timeout``."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._server.tracking_lock:
            connections = list(self._server.connections)
            threads = list(self._server.threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        return all(not t.is_alive() for t in threads)
