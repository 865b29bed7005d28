#!/usr/bin/env python3
"""A tiny stdlib Lambda extension for the sandbox tests (copied into a temporary layer).

It reads its behaviour from ``<layer>/config/<name>.json`` and appends everything it does and
receives as JSON lines to ``<layer>/records/<name>.jsonl`` (one ``open``/``write`` per record,
so nothing is lost when it is SIGKILLed). Keys (all optional):

events (["INVOKE","SHUTDOWN"]), accept_account_id, register_attempts (calls tried before the
real registration: [{"name", "events", "body"}]), sleep_before_register, exit_before_register,
subscribe (a subscription body, "default", or null), listener_status (list: answers for the
first pushes, then 200), listener_delay_s, init_calls / invoke_calls (API calls made during
init / on the first INVOKE: [{"method","path","body","headers"}]), init_error (error type
posted to /extension/init/error, then exit 1), exit_after_register, work_after_invoke_s,
exit_on_invoke, ticks (write a timestamp every 10 ms to <name>.ticks), ignore_shutdown,
shutdown_linger_s (the longest it keeps receiving after SHUTDOWN: until the platform.report
of every invocation it saw arrived and 100 ms passed without a push), print_prefix.
"""

import http.client
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NAME = Path(__file__).name
LAYER = Path(__file__).resolve().parent.parent
CONFIG = json.loads((LAYER / "config" / f"{NAME}.json").read_text())
RECORDS = LAYER / "records" / f"{NAME}.jsonl"
TICKS = LAYER / "records" / f"{NAME}.ticks"
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
LOCK = threading.Lock()
REPORTED = set()  # request ids whose platform.report the listener received


def record(kind, **fields):
    line = json.dumps({"kind": kind, "t": time.time(), **fields})
    with LOCK, open(RECORDS, "a") as f:
        f.write(line + "\n")


def call(method, path, body=None, headers=None, timeout=None):
    host, port = API.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else (
        body.encode() if isinstance(body, str) else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return resp.status, dict(resp.getheaders()), parsed


class Listener(BaseHTTPRequestHandler):
    pushes = 0
    last_push = time.time()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with LOCK:
            Listener.pushes += 1
            n = Listener.pushes
        statuses = CONFIG.get("listener_status") or []
        status = statuses[n - 1] if n <= len(statuses) else 200
        delay = CONFIG.get("listener_delay_s", 0)
        if delay:
            time.sleep(delay)
        batch = json.loads(body)
        record("telemetry", n=n, status=status, path=self.path, batch=batch, bytes=len(body))
        Listener.last_push = time.time()
        if status < 400:
            REPORTED.update(e["record"]["requestId"] for e in batch
                            if e["type"] == "platform.report")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_listener():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def ticker():
    while True:
        with open(TICKS, "a") as f:
            f.write(f"{time.time()}\n")
        time.sleep(0.01)


def do_calls(calls, ext_id):
    for c in calls:
        headers = {"Lambda-Extension-Identifier": ext_id}
        headers.update(c.get("headers", {}))
        status, _, body = call(c["method"], c["path"], c.get("body"), headers)
        record("call", request=c, status=status, body=body)


def main():
    prefix = CONFIG.get("print_prefix", NAME)
    print(f"{prefix}: starting", flush=True)
    if CONFIG.get("ticks"):
        threading.Thread(target=ticker, daemon=True).start()
    if CONFIG.get("exit_before_register") is not None:
        sys.exit(CONFIG["exit_before_register"])
    time.sleep(CONFIG.get("sleep_before_register", 0))

    for attempt in CONFIG.get("register_attempts", []):
        headers = {"Lambda-Extension-Name": attempt.get("name", NAME)}
        body = attempt.get("body", {"events": attempt.get("events", [])})
        status, _, answer = call("POST", "/2020-01-01/extension/register", body, headers)
        record("register_attempt", request=attempt, status=status, body=answer)

    headers = {"Lambda-Extension-Name": NAME}
    if CONFIG.get("accept_account_id"):
        headers["Lambda-Extension-Accept-Feature"] = "accountId"
    status, resp_headers, answer = call(
        "POST", "/2020-01-01/extension/register",
        {"events": CONFIG.get("events", ["INVOKE", "SHUTDOWN"])}, headers)
    ext_id = resp_headers.get("Lambda-Extension-Identifier")
    record("register", status=status, body=answer, extension_id=ext_id,
           env={k: v for k, v in os.environ.items() if k.startswith(("AWS_", "_", "LAMBDA"))})
    if status != 200:
        sys.exit(2)
    if CONFIG.get("exit_after_register") is not None:
        sys.exit(CONFIG["exit_after_register"])

    subscribe = CONFIG.get("subscribe", "default")
    subscribed, subscribed_types, invoked = False, [], set()
    if subscribe is not None:
        port = start_listener()
        body = {"schemaVersion": "2022-12-13", "types": ["platform", "function", "extension"],
                "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25}}
        if isinstance(subscribe, dict):
            body.update(subscribe)
        body.setdefault("destination", {"protocol": "HTTP",
                                        "URI": f"http://sandbox.localdomain:{port}/telemetry"})
        status, _, answer = call("PUT", "/2022-07-01/telemetry", body,
                                 {"Lambda-Extension-Identifier": ext_id})
        record("subscribe", status=status, body=answer, request=body)
        subscribed, subscribed_types = status == 200, body["types"]

    do_calls(CONFIG.get("init_calls", []), ext_id)
    if CONFIG.get("init_error"):
        status, _, answer = call("POST", "/2020-01-01/extension/init/error",
                                 {"errorMessage": "bad config", "errorType": CONFIG["init_error"]},
                                 {"Lambda-Extension-Identifier": ext_id,
                                  "Lambda-Extension-Function-Error-Type": CONFIG["init_error"]})
        record("init_error", status=status, body=answer)
        sys.exit(1)

    invoke_calls = CONFIG.get("invoke_calls", [])
    while True:
        status, resp_headers, event = call("GET", "/2020-01-01/extension/event/next", None,
                                           {"Lambda-Extension-Identifier": ext_id})
        if isinstance(event, str):  # SHUTDOWN may come as text/plain: parse it anyway
            event = json.loads(event)
        record("event", status=status, event=event,
               content_type=resp_headers.get("Content-Type"))
        if status != 200:
            sys.exit(3)
        if event["eventType"] == "INVOKE":
            invoked.add(event["requestId"])
            print(f"{prefix}: INVOKE {event['requestId']}", flush=True)
            if CONFIG.get("exit_on_invoke") is not None:
                os._exit(CONFIG["exit_on_invoke"])
            do_calls(invoke_calls, ext_id)
            invoke_calls = []
            time.sleep(CONFIG.get("work_after_invoke_s", 0))
        elif event["eventType"] == "SHUTDOWN":
            shutdown_at = time.time()
            print(f"{prefix}: SHUTDOWN {event['shutdownReason']}", flush=True)
            if CONFIG.get("ignore_shutdown"):
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                while True:
                    time.sleep(1)
            # Like a real telemetry extension: keep receiving until the report of every
            # invocation it saw arrived and the pushes stopped coming.
            linger_until = time.time() + CONFIG.get("shutdown_linger_s", 1.0)
            wants_reports = subscribed and "platform" in subscribed_types
            while time.time() < linger_until:
                quiet = time.time() - max(Listener.last_push, shutdown_at) > 0.1
                if quiet and (not wants_reports or invoked <= REPORTED):
                    break
                time.sleep(0.02)
            record("exit")
            sys.exit(0)


if __name__ == "__main__":
    main()
