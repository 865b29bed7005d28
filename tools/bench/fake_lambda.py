"""A minimal stand-in for Lambda's Extensions and Telemetry APIs, owned by the bench.

Why not the sandbox for these measurements: the sandbox also starts a runtime, pushes telemetry
with Lambda's buffering and freezes processes, which is right for end-to-end behaviour but adds
noise (and tens of milliseconds per run) to an init measurement, and would be far too slow to
feed a million records. This server does only what an extension needs to get going — register
(200 with an identifier), subscribe (200) and ``/event/next`` (recorded, then held until the
bench hands out an event) — and timestamps each call the moment its request was parsed, on
``time.monotonic()``, which on Linux is CLOCK_MONOTONIC: comparable with readings taken in other
processes (the fast receiver) on the same machine.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "2020-01-01"
REGISTER_PATH = f"/{API_VERSION}/extension/register"
NEXT_PATH = f"/{API_VERSION}/extension/event/next"
TELEMETRY_PATH = "/2022-07-01/telemetry"
FUNCTION_NAME = "bench"


class FakeLambdaApi:
    """One extension's view of Lambda on ``runtime_api`` (``127.0.0.1:PORT``).

    ``registered_at``, ``subscribed_at`` and ``next_arrivals`` are monotonic times (seconds) of
    when each call arrived. ``send_event`` answers the oldest waiting (or the next) ``/event/next``.
    """

    def __init__(self) -> None:
        self.registered_at: float | None = None
        self.subscribed_at: float | None = None
        self.subscription: dict[str, Any] | None = None
        self.next_arrivals: list[float] = []
        self.extension_id = str(uuid.uuid4())
        self._cond = threading.Condition()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="bench-fake-lambda", daemon=True,
        )
        self._thread.start()

    @property
    def runtime_api(self) -> str:
        """The value for ``AWS_LAMBDA_RUNTIME_API``."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def wait_next(self, count: int, timeout: float) -> float | None:
        """Arrival time of the ``count``-th ``/event/next`` (1-based); None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.next_arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.next_arrivals[count - 1]

    def send_event(self, event: dict[str, Any]) -> None:
        """Answer a pending (or the next) ``/event/next`` with ``event``."""
        self._events.put(event)

    def invoke(self, request_id: str, timeout_s: float) -> None:
        """Hand out an INVOKE whose deadline is ``timeout_s`` from now."""
        self.send_event({
            "eventType": "INVOKE",
            "deadlineMs": int((time.time() + timeout_s) * 1000),
            "requestId": request_id,
            "invokedFunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}",
            "tracing": {"type": "X-Amzn-Trace-Id",
                        "value": "Root=1-00000000-000000000000000000000000"},
        })

    def shutdown_event(self, deadline_s: float = 2.0) -> None:
        """Hand out SHUTDOWN with Lambda's usual 2-second deadline."""
        self.send_event({
            "eventType": "SHUTDOWN",
            "shutdownReason": "spindown",
            "deadlineMs": int((time.time() + deadline_s) * 1000),
        })

    def close(self) -> None:
        """Stop serving. Handlers still blocked in ``/event/next`` get a SHUTDOWN to unblock."""
        for _ in range(4):
            self.shutdown_event()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)

    def __enter__(self) -> FakeLambdaApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- called by the handler ------------------------------------------------------------------

    def _arrived(self, kind: str, at: float, body: bytes) -> None:
        with self._cond:
            if kind == "register" and self.registered_at is None:
                self.registered_at = at
            elif kind == "subscribe" and self.subscribed_at is None:
                self.subscribed_at = at
                try:
                    self.subscription = json.loads(body or b"{}")
                except ValueError:
                    self.subscription = None
            elif kind == "next":
                self.next_arrivals.append(at)
            self._cond.notify_all()

    def _next_event(self) -> dict[str, Any]:
        return self._events.get()


def _handler(api: FakeLambdaApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            at = time.monotonic()
            body = self._body()
            if self.path == REGISTER_PATH:
                api._arrived("register", at, body)
                answer = {
                    "functionName": FUNCTION_NAME,
                    "functionVersion": "$LATEST",
                    "handler": "app.handler",
                    "accountId": "123456789012",
                }
                self._answer(200, json.dumps(answer).encode(),
                             {"Lambda-Extension-Identifier": api.extension_id})
            elif self.path.endswith(("/init/error", "/exit/error")):
                self._answer(202, b'{"status":"OK"}')
            else:
                self._answer(404, b'{"errorType":"NotFound"}')

        def do_PUT(self) -> None:
            at = time.monotonic()
            body = self._body()
            if self.path == TELEMETRY_PATH:
                api._arrived("subscribe", at, body)
                self._answer(200, b'"OK"')
            else:
                self._answer(404, b'{"errorType":"NotFound"}')

        def do_GET(self) -> None:
            at = time.monotonic()
            if self.path != NEXT_PATH:
                self._answer(404, b'{"errorType":"NotFound"}')
                return
            api._arrived("next", at, b"")
            event = api._next_event()
            self._answer(200, json.dumps(event).encode())

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the extension went away (killed after a failed run): nothing to tell it

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
