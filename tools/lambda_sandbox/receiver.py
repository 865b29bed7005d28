"""A real HTTP log receiver for tests and the demo: a separate process that records every request.

Run as a program (``python -m tools.lambda_sandbox.receiver --port 0 --record FILE``) it prints
``LISTENING <port>`` once ready, appends one JSON line per request to FILE (method, path,
headers, body — gunzipped when ``Content-Encoding: gzip`` — and the time), and answers 200.
Its behaviour can be scripted while it runs with ``POST /__control`` and a JSON list of
responses to give next, e.g. ``[{"status": 503, "times": 2}, {"status": 429,
"retry_after": "1"}, {"delay": 3}]``; after the script, 200 again. ``"answer"`` gives the
answer's body (text) instead of ``{"status": …}`` (a receiver's partial-failure report).
``--print`` echoes each received log entry in a readable line (the demo uses it).
``--strict`` makes it a strict JSON receiver, as many log backends are: a body that is not
JSON (``NaN``, ``Infinity``, invalid UTF-8) is answered 400 and recorded with
``"refused": true``. Each recorded request names the client's port (``peer_port``), so a test
can tell a fresh connection from a kept-alive one.

``Receiver`` (below) starts and stops it from a test, by PID, in bounded time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def strictly_json(body: bytes) -> bool:
    """Whether a strict parser takes ``body``: UTF-8 JSON, no NaN/Infinity."""
    try:
        json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return False
    return True


class _State:
    def __init__(self, record: Path, echo: bool, max_body: int = 0, strict: bool = False) -> None:
        self.record = record
        self.echo = echo
        self.max_body = max_body
        self.strict = strict
        self.lock = threading.Lock()
        self.script: list[dict[str, Any]] = []

    def next_response(self) -> dict[str, Any]:
        with self.lock:
            while self.script:
                step = self.script[0]
                times = step.get("times", 1)
                if times <= 0:
                    self.script.pop(0)
                    continue
                step["times"] = times - 1
                return dict(step)
            return {}


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path == "/__control":
                with state.lock:
                    state.script = json.loads(body or b"[]")
                self._answer(200, b"ok")
                return
            if state.max_body and length > state.max_body:
                self._answer(413, b"request entity too large")
                return
            if state.strict:
                plain = body
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    plain = gzip.decompress(body)
                if not strictly_json(plain):
                    self._record(body, refused=True)
                    self._answer(400, b'{"error":"the body is not valid JSON"}')
                    return
            step = state.next_response()
            if step.get("reset"):
                # Close without answering: the client sees a connection reset / EOF.
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if step.get("delay"):
                time.sleep(float(step["delay"]))
            status = int(step.get("status", 200))
            if step.get("record", status < 300):
                self._record(body)
            headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            answer = step.get("answer")
            payload = answer.encode() if isinstance(answer, str) else json.dumps(
                {"status": status}).encode()
            self._answer(status, payload, headers)

        def do_GET(self) -> None:
            self._answer(200, b"receiver")

        def _record(self, body: bytes, refused: bool = False) -> None:
            raw = body
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            entry: dict[str, Any] = {
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body.decode("utf-8", "replace"),
                "wire_bytes": len(raw),
                "peer_port": self.client_address[1],
            }
            if refused:
                entry["refused"] = True
            with state.lock, state.record.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            if state.echo:
                _echo(body)

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _echo(body: bytes) -> None:
    try:
        payload = json.loads(body)
    except ValueError:
        print(f"  receiver <- {len(body)} bytes (not JSON)", flush=True)
        return
    for entry in payload.get("logs", []):
        message = str(entry.get("message", "")).replace("\n", " ⏎ ")
        print(f"  receiver <- {entry.get('level', '?'):5} [{entry.get('log_type', '?')}] "
              f"{message[:150]}", flush=True)


def serve(port: int, record: Path, echo: bool = False, max_body: int = 0,
          strict: bool = False) -> None:
    state = _State(record, echo, max_body, strict)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


class Receiver:
    """A receiver process owned by a test: start, read what it recorded, script it, stop."""

    def __init__(self, directory: Path, python: str = sys.executable, max_body: int = 0,
                 strict: bool = False) -> None:
        self.record = directory / f"received-{os.getpid()}-{id(self)}.jsonl"
        self.record.touch()
        self._process = subprocess.Popen(
            [python, __file__, "--port", "0", "--record", str(self.record),
             "--max-body", str(max_body), *(["--strict"] if strict else [])],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/ingest"

    def requests(self) -> list[dict[str, Any]]:
        """Every request recorded (accepted ones, and with ``strict`` the refused ones)."""
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def refused(self) -> list[dict[str, Any]]:
        """The requests a ``strict`` receiver refused (400) for a body that is not JSON."""
        return [r for r in self.requests() if r.get("refused")]

    def entries(self) -> list[dict[str, Any]]:
        """Every log entry received (and accepted), in arrival order."""
        return [entry for r in self.requests() if not r.get("refused")
                for entry in json.loads(r["body"])["logs"]]

    def script(self, steps: list[dict[str, Any]]) -> None:
        control = f"http://127.0.0.1:{self.port}/__control"
        request = Request(control, data=json.dumps(steps).encode(), method="POST")
        with urlopen(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--print", dest="echo", action="store_true", help="echo received entries")
    parser.add_argument("--max-body", type=int, default=0, help="answer 413 above this many bytes")
    parser.add_argument("--strict", action="store_true",
                        help="answer 400 to a body that is not strict JSON (NaN, bad UTF-8)")
    args = parser.parse_args()
    try:
        serve(args.port, args.record, args.echo, args.max_body, args.strict)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
