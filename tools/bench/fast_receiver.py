"""A log receiver fast enough not to be the bottleneck of a throughput run.

Run as a program (``python -m tools.bench.fast_receiver [--port 0] [--marker bench-rec]
[--delay-ms N]``) it prints ``LISTENING <port>`` and answers every ``POST`` with 200 at once (or
``N`` ms later, to play a distant receiver). It stores nothing: per request
it gunzips the body if ``Content-Encoding: gzip`` and counts occurrences of the marker (one per
record, see ``telemetry_data``), which is a C-speed ``bytes.count`` — no JSON parsing — so it
works for any output format. It keeps running totals and stamps, on ``time.monotonic()``
(CLOCK_MONOTONIC, comparable with the bench's readings), when the expected count was reached.

``--stdlib`` serves the same counting with a stock ``http.server`` instead: a
``BaseHTTPRequestHandler`` on HTTP/1.1 with Nagle on, which writes an answer's head and body in
two writes — the shape of countless small webhook receivers, and the one that stalls a client
that lets its delayed ACK wait. Slower per request, so rows using it are about the stall, not
about the receiver.

Control, on the same port: ``POST /__reset`` with ``{"expected": N}`` zeroes the totals;
``GET /__stats`` returns them as JSON. Raw sockets and a thread per connection rather than
``http.server``: its per-request header parsing (``email.parser``) would cost more than the
counting. Supports Content-Length and chunked bodies, HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import zlib
from typing import Any

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_MAX_LINE = 65536


class Totals:
    """Counters shared by the connection threads (under one lock)."""

    def __init__(self, marker: bytes, delay: float = 0.0) -> None:
        self.marker = marker
        self.delay = delay
        self.lock = threading.Lock()
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.requests = 0
        self.records = 0
        self.wire_bytes = 0
        self.body_bytes = 0
        self.gzip_requests = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.done_at: float | None = None

    def add(self, records: int, wire: int, body: int, gzipped: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            self.records += records
            self.wire_bytes += wire
            self.body_bytes += body
            self.gzip_requests += gzipped
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
            if self.done_at is None and self.expected and self.records >= self.expected:
                self.done_at = now

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {name: getattr(self, name) for name in (
                "expected", "requests", "records", "wire_bytes", "body_bytes", "gzip_requests",
                "first_at", "last_at", "done_at")}


def _read_body(rfile: Any, headers: dict[bytes, bytes]) -> bytes:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks = []
        while True:
            size = int(rfile.readline(_MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.read(2)
    length = int(headers.get(b"content-length", b"0") or 0)
    return rfile.read(length) if length else b""


def _serve_connection(conn: socket.socket, totals: Totals) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile = conn.makefile("rb", buffering=1 << 18)
    try:
        while True:
            request_line = rfile.readline(_MAX_LINE)
            if not request_line:
                return
            if not request_line.strip():
                continue
            headers: dict[bytes, bytes] = {}
            while True:
                line = rfile.readline(_MAX_LINE)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            body = _read_body(rfile, headers)
            parts = request_line.split()
            path = parts[1] if len(parts) > 1 else b"/"
            if path == b"/__stats":
                answer = json.dumps(totals.snapshot()).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n"
                             + answer)
            elif path == b"/__reset":
                totals.reset(int(json.loads(body or b"{}").get("expected", 0)))
                conn.sendall(_OK)
            else:
                wire = len(body)
                gzipped = headers.get(b"content-encoding", b"").lower() == b"gzip"
                if gzipped:
                    body = zlib.decompress(body, 47)  # 32 + 15: gzip or zlib header
                totals.add(body.count(totals.marker), wire, len(body), gzipped)
                if totals.delay:
                    time.sleep(totals.delay)  # a distant receiver: the answer takes this long
                conn.sendall(_OK)
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except (OSError, ValueError, zlib.error):
        return
    finally:
        rfile.close()
        conn.close()


def serve(port: int, marker: bytes, delay: float = 0.0) -> None:
    totals = Totals(marker, delay)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print(f"LISTENING {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_connection, args=(conn, totals), daemon=True).start()


def serve_stdlib(port: int, marker: bytes, delay: float = 0.0) -> None:
    """The same protocol on ``http.server.ThreadingHTTPServer``, left as it ships."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    totals = Totals(marker, delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept-alive connections, as webhook receivers run it

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(json.dumps(totals.snapshot()).encode())

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/__reset":
                totals.reset(int(json.loads(body or b"{}").get("expected", 0)))
            else:
                wire = len(body)
                gzipped = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
                if gzipped:
                    body = zlib.decompress(body, 47)
                totals.add(body.count(totals.marker), wire, len(body), gzipped)
                if totals.delay:
                    time.sleep(totals.delay)
            self._answer(b"{}")

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()  # the head goes out here, in a write of its own
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per request on stderr would cost more than the counting

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--marker", default="bench-rec")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="answer each log request this much later (a distant receiver)")
    parser.add_argument("--stdlib", action="store_true",
                        help="serve with a stock http.server (HTTP/1.1, Nagle on)")
    args = parser.parse_args()
    try:
        (serve_stdlib if args.stdlib else serve)(
            args.port, args.marker.encode(), args.delay_ms / 1000.0)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
