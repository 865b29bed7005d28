"""A tiny stand-in Lambda extension that records what the platform gives it.

Why: it lets the harness be tested, and the RIE's behaviour be pinned down, without depending on
the real extension (written concurrently). It does what any Telemetry API extension does —
register, subscribe, listen, loop on ``/event/next`` — but instead of processing anything it
POSTs every observation as JSON to the harness's capture receiver (``$STANDIN_REPORT_URL``,
default ``http://127.0.0.1:9555``) under ``/standin/<kind>``:

* ``start``: its view of the environment, and whether ``sandbox.localdomain`` resolves;
* ``register``: each register attempt (events, status, headers, body);
* ``subscribe``: each Telemetry API subscription attempt (schema, destination, status, body);
* ``telemetry``: each batch pushed to one of its listeners (one listener and port per schema);
* ``event``: each ``/event/next`` answer (status, headers, raw body);
* ``heartbeat``: while lingering after SHUTDOWN (to measure when it gets killed); ``exit``.

Run as ``standin_extension.py NAME`` (NAME = the file name under /opt/extensions). Knobs, all env:
``STANDIN_EVENTS`` (``auto``: SHUTDOWN only in managed-instances mode, else INVOKE,SHUTDOWN; or a
comma list), ``STANDIN_RETRY_SHUTDOWN_ONLY`` (after a failed register, retry with SHUTDOWN only),
``STANDIN_SCHEMAS`` (comma list, default all three; empty: no subscription),
``STANDIN_TYPES`` (default ``platform,function,extension``), ``STANDIN_BASE_PORT`` (first listener
port, default 4243), ``STANDIN_PROBE_URIS`` (space-separated destination URIs: an extension named
``probe<i>`` subscribes only to the i-th, with the last schema of ``STANDIN_SCHEMAS``),
``STANDIN_BUFFERING`` (JSON for the subscription's ``buffering``; default the minimum 25 ms),
``STANDIN_ACCEPT_FEATURE`` (register's ``Lambda-Extension-Accept-Feature``; default ``accountId``,
empty: no header),
``STANDIN_LINGER_S`` (stay alive this long after SHUTDOWN, sending heartbeats every 0.1 s).
Standard library only; Python 3.9+.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
REPORT_URL = os.environ.get("STANDIN_REPORT_URL", "http://127.0.0.1:9555").rstrip("/")
ALL_SCHEMAS = "2022-07-01,2022-12-13,2025-01-29"


def report(kind: str, **data: Any) -> None:
    """POST one observation to the capture receiver; never raise (observing must not break us)."""
    body = json.dumps({"kind": kind, "t": time.time(), **data}).encode()
    request = urllib.request.Request(
        f"{REPORT_URL}/standin/{kind}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            response.read()
    except (OSError, ValueError) as exc:
        print(f"standin: report {kind} failed: {exc}", file=sys.stderr, flush=True)


_pending: queue.Queue[dict[str, Any] | None] = queue.Queue()


def _forwarder() -> None:
    while True:
        item = _pending.get()
        try:
            if item is not None:
                report("telemetry", **item)
        finally:
            _pending.task_done()


def drain_telemetry(timeout_s: float) -> None:
    """Wait (bounded) until every pushed batch has been forwarded to the receiver."""
    end = time.monotonic() + timeout_s
    while _pending.unfinished_tasks and time.monotonic() < end:
        time.sleep(0.01)


def call(
    method: str,
    path: str,
    body: Any | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = 10.0,
) -> dict[str, Any]:
    """One Extensions/Telemetry API call; returns status, headers and body (text) either way."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{API}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return {
                "status": response.status,
                "headers": dict(response.headers.items()),
                "body": response.read().decode(errors="replace"),
            }
    except urllib.error.HTTPError as exc:
        return {
            "status": exc.code,
            "headers": dict(exc.headers.items()),
            "body": exc.read().decode(errors="replace"),
        }


def start_listener(port: int, schema: str) -> None:
    """A Telemetry API destination: answer 200 at once, forward each batch from another thread.

    Answering fast matters: the RIE keeps one batch in flight per subscriber and *drops* (with a
    ``platform.logsDropped``) any batch that is ready while the previous one is unanswered.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            _pending.put(
                {
                    "schema": schema,
                    "port": port,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": parsed,
                    "received": time.time(),
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def resolves(name: str) -> str | None:
    """The address ``name`` resolves to, or None."""
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
    except OSError:
        return None


def main() -> int:
    """Register, subscribe, then report every event until SHUTDOWN."""
    name = sys.argv[1] if len(sys.argv) > 1 else os.path.basename(sys.argv[0])
    managed = bool(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")) or (
        os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "lambda-managed-instances"
    )
    print(f"standin {name}: starting (managed={managed})", flush=True)
    threading.Thread(target=_forwarder, daemon=True).start()
    report(
        "start",
        name=name,
        pid=os.getpid(),
        uid=os.getuid(),
        gid=os.getgid(),
        cwd=os.getcwd(),
        python=sys.version.split()[0],
        executable=sys.executable,
        env={k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LAMBDA_", "_"))},
        sandbox_localdomain=resolves("sandbox.localdomain"),
        sandbox=resolves("sandbox"),
    )

    events_env = os.environ.get("STANDIN_EVENTS", "auto")
    if events_env == "auto":
        events = ["SHUTDOWN"] if managed else ["INVOKE", "SHUTDOWN"]
    else:
        events = [e for e in events_env.split(",") if e]
    attempts = []
    reg_headers = {"Lambda-Extension-Name": name}
    feature = os.environ.get("STANDIN_ACCEPT_FEATURE", "accountId")
    if feature:
        reg_headers["Lambda-Extension-Accept-Feature"] = feature
    reply = call("POST", "/2020-01-01/extension/register", {"events": events}, reg_headers)
    attempts.append({"events": events, **reply})
    if reply["status"] != 200 and os.environ.get("STANDIN_RETRY_SHUTDOWN_ONLY"):
        events = ["SHUTDOWN"]
        reply = call("POST", "/2020-01-01/extension/register", {"events": events}, reg_headers)
        attempts.append({"events": events, **reply})
    report("register", attempts=attempts)
    if reply["status"] != 200:
        print(f"standin {name}: register failed {reply}", file=sys.stderr, flush=True)
        return 1
    ext_id = reply["headers"].get("Lambda-Extension-Identifier", "")
    ident = {"Lambda-Extension-Identifier": ext_id}

    base_port = int(os.environ.get("STANDIN_BASE_PORT", "4243"))
    schemas = [s for s in os.environ.get("STANDIN_SCHEMAS", ALL_SCHEMAS).split(",") if s]
    types = [t for t in os.environ.get("STANDIN_TYPES", "platform,function,extension").split(",")]
    # One subscription per schema, each to its own listener port, so deliveries can be told apart.
    plan = [(s, f"http://sandbox.localdomain:{base_port + i}/p") for i, s in enumerate(schemas)]
    probe_uris = os.environ.get("STANDIN_PROBE_URIS", "").split()
    if name.startswith("probe") and name[5:].isdigit() and probe_uris:
        # A probe extension makes exactly one subscription: an extension may subscribe only once,
        # so each candidate destination needs an extension of its own.
        plan = [(schemas[-1] if schemas else "2025-01-29", probe_uris[int(name[5:])])]
    buffering = json.loads(
        os.environ.get("STANDIN_BUFFERING")
        or '{"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25}'
    )
    subscriptions = []
    for schema, uri in plan:
        port = int(uri.rsplit(":", 1)[-1].split("/")[0]) if uri.count(":") > 1 else 0
        if port and port != 9001:
            try:
                start_listener(port, schema)
            except OSError:
                pass  # a probe reusing a port: the subscription attempt is what matters
        sub = {
            "schemaVersion": schema,
            "types": types,
            "buffering": buffering,
            "destination": {"protocol": "HTTP", "URI": uri},
        }
        answer = call("PUT", "/2022-07-01/telemetry", sub, ident)
        subscriptions.append({"schema": schema, "request": sub, **answer})
    report("subscribe", attempts=subscriptions)

    print(f"standin {name}: registered, waiting for events", flush=True)
    print(f"standin {name}: a line on stderr", file=sys.stderr, flush=True)
    while True:
        event = call("GET", "/2020-01-01/extension/event/next", headers=ident, timeout=None)
        report("event", **event)
        try:
            event_type = json.loads(event["body"]).get("eventType")
        except ValueError:
            event_type = None
        if event["status"] != 200:
            return 1
        if event_type == "SHUTDOWN":
            print(f"standin {name}: SHUTDOWN received", flush=True)
            break
    linger = float(os.environ.get("STANDIN_LINGER_S", "0"))
    end = time.monotonic() + linger
    beat = 0
    while time.monotonic() < end:
        report("heartbeat", n=beat)
        print(f"standin {name}: heartbeat {beat}", flush=True)
        beat += 1
        time.sleep(0.1)
    print(f"standin {name}: exiting", flush=True)
    time.sleep(0.1)  # let a last telemetry push (with the lines above) arrive
    drain_telemetry(1.0)
    report("exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
