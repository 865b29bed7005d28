"""A log receiver that accepts only authenticated requests, as a real one behind auth does.

Run as its own process (``python -m tests.support.checking_receiver --record FILE`` with
``--bearer TOKEN`` or ``--sigv4 JSON``); it prints ``LISTENING <port>`` once ready. Each request
is checked — the exact ``Authorization: Bearer <token>``, or an AWS Signature Version 4 verified
with botocore (``sigv4_check``) for the credentials and scope given — and, with ``--header
NAME=VALUE``, for extra headers too; it is answered 200 when it passes and 403 (401 without any
``Authorization``) when not. Every request is recorded as one JSON line: accepted or not, the
problems found, the headers, and the body gunzipped when ``Content-Encoding: gzip``.

``CheckingReceiver`` starts and stops it from a test, by PID, in bounded time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import select
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0


def _handler(record: Path, bearer: str | None, sigv4: dict[str, Any] | None,
             required: dict[str, str], body_check: str = "") -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()
    expected = None
    if sigv4 is not None:
        from tests.support.sigv4_check import Expected

        expected = Expected(**sigv4)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            wire = self.rfile.read(length)
            headers = dict(self.headers.items())
            found = self._check(wire, headers)
            body = wire
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(wire)
            refused = ""
            if body_check and not found:
                from tests.support.vendor_checks import CHECKS, BodyRefused

                try:
                    CHECKS[body_check](body)
                except BodyRefused as exc:
                    refused = str(exc)
                    found = [f"body refused: {refused}"]
            entry = {"accepted": not found, "problems": found, "method": self.command,
                     "path": self.path, "headers": headers,
                     "body": body.decode("utf-8", "replace"), "wire_bytes": len(wire)}
            with lock, record.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            status = 200 if not found else 400 if refused else (
                401 if "Authorization" not in self.headers else 403
            )
            answer = json.dumps({"status": status, "problems": found}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def _check(self, wire: bytes, headers: dict[str, str]) -> list[str]:
            found = []
            for name, value in required.items():
                if self.headers.get(name) != value:
                    found.append(f"header {name} is not the expected value")
            if bearer is not None and self.headers.get("Authorization") != f"Bearer {bearer}":
                found.append("not the expected bearer token")
            if expected is not None:
                from tests.support.sigv4_check import problems

                url = f"http://{self.headers.get('Host', '')}{self.path}"
                found += problems(self.command, url, headers, wire, expected,
                                  must_sign=("content-type", "content-encoding",
                                             "idempotency-key", *(n.lower() for n in required)))
            return found

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


class CheckingReceiver:
    """The receiver process, owned by a test: what it recorded, and its stop."""

    def __init__(self, directory: Path, *, bearer: str | None = None,
                 sigv4: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, body_check: str = "") -> None:
        self.record = directory / f"checked-{os.getpid()}-{id(self)}.jsonl"
        self.record.touch()
        command = [sys.executable, "-m", "tests.support.checking_receiver",
                   "--record", str(self.record)]
        if bearer is not None:
            command += ["--bearer", bearer]
        if sigv4 is not None:
            command += ["--sigv4", json.dumps(sigv4)]
        for name, value in (headers or {}).items():
            command += ["--header", f"{name}={value}"]
        if body_check:
            command += ["--body-check", body_check]
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root,
                                         start_new_session=True)
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the checking receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/ingest"

    def requests(self) -> list[dict[str, Any]]:
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def accepted(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["accepted"]]

    def rejected(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if not r["accepted"]]

    def messages(self) -> list[str]:
        """The message of every log entry in an accepted request."""
        return [str(e["message"]) for r in self.accepted() for e in json.loads(r["body"])["logs"]]

    def stop(self) -> None:
        from tests.support.process import stop_group

        stop_group(self._process)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> CheckingReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--bearer", help="accept only Authorization: Bearer <this>")
    parser.add_argument("--sigv4", type=json.loads,
                        help="accept only SigV4 signatures by these credentials and scope (JSON)")
    parser.add_argument("--header", action="append", default=[],
                        help="NAME=VALUE that every request must carry")
    parser.add_argument("--body-check", default="",
                        help="read each body as this format's server does (vendor_checks)")
    args = parser.parse_args()
    required = dict(item.split("=", 1) for item in args.header)
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 _handler(args.record, args.bearer, args.sigv4, required,
                                          args.body_check))
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
