"""Post-runtime overhead per invocation, in the local sandbox, beside two floors.

Per row: a real function (awslambdaric) prints N lines per invocation; the built layer forwards
them to the capture receiver (``lambda_sandbox.receiver``), directly over HTTP or through nginx
over HTTPS (``HTTP_CA_BUNDLE`` = the test CA), with or without ``HTTP_COMPRESSION=gzip``.

Reported per row (median and p99 over the measured invocations, after warm-ups that also pay
the TLS handshake, so "HTTPS with a reused connection" is what is measured):

* ``runtimeDone → next``: the push carrying the invocation's ``platform.runtimeDone`` was
  started → the extension called ``/event/next`` (see ``sandbox_probe``). This is the time the
  extension holds the invocation, and what the target is about.
* ``PostRuntimeExtensionsDuration``: runtime response → ``/event/next``, as Lambda bills it
  (it adds the Telemetry API's buffering, ≥ 25 ms, which no extension controls).
* ``receiver RT``, the target's floor: one POST/response round trip from the bench to the same
  URL, on a kept-alive ``http.client`` connection, with the very body the extension sent last
  (the batch that carried the last runtimeDone; gzip'd at the extension's default level 1 for
  gzip rows, compression time excluded), each request after the same idle time the extension's
  send follows (the median interval between the measured runtimeDone pushes, ~29 ms). That
  is the round trip the extension can at best achieve: on this VM a round trip after 25 ms of
  idle receiver takes 1.0-1.3 ms where back-to-back ones take 0.45 ms (the receiver's thread and
  its CPU wake up, its caches are cold), for ``http.client`` and our transport alike.
  ``receiver RT back-to-back`` (no pause) is reported beside it, for reference.
* ``forwarder``, the method's floor: ``runtimeDone → next`` of a minimal forwarding extension
  (``FORWARDER``) in the same sandbox, same transport, same function: what the push, one round
  trip to the receiver and the ``/event/next`` call cost here, before any real work.

A gzip row whose receiver never saw ``Content-Encoding: gzip`` is reported as not supported by
this build rather than as numbers.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

from . import procs
from .figures import summary
from .raw_http import CALL_SNIPPET
from .sandbox_probe import SandboxProbe, last_next_at

EXTENSION_NAME = "lambda-logs-http"
TRANSPORTS = ("http", "https")
COMPRESSIONS = ("none", "gzip")
FORWARD = "forwarder"  # the pseudo-compression under which the forwarder floor runs
TARGET_LINES = 100
TARGET_MS_OVER_RT = 3.0
# The floor's pause when too few invocations were timed to measure their period.
DEFAULT_PERIOD_MS = 30.0
NOT_SUPPORTED = "n/a (not supported by this build)"

# The function: N realistic lines through print(), as most Python handlers log.
APP = '''
def handler(event, context):
    n = event.get("lines", 0)
    rid = context.aws_request_id
    for i in range(n):
        print(f"processed order {i} of {n} for customer c-{i * 7919 % 100000:05d}: "
              f"status=ok amount={i % 997}.{i % 100:02d} EUR items={i % 13 + 1} request={rid}")
    return {"lines": n}
'''

# The method's floor: a minimal forwarding extension (stdlib; raw sockets for Lambda's APIs,
# http.client for the receiver) that keeps the pushes as they come and, once the push with
# platform.runtimeDone arrived, POSTs them as they are (no transform, no batching), then calls
# /event/next. What lambda-logs-http takes beyond it is its own work.
FORWARDER_NAME = "bench-forwarder"
FORWARDER = r'''
import http.client, os, socket, ssl, threading

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.rsplit(":", 1)
endpoint = os.environ["BENCH_FORWARD_TO"]
listen_port = int(os.environ["BENCH_FORWARDER_PORT"])
pending, lock, done = [], threading.Lock(), threading.Event()


''' + CALL_SNIPPET + r'''


def serve(conn):
    rfile = conn.makefile("rb")
    while True:
        if not rfile.readline():
            break
        length = 0
        while True:
            line = rfile.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = rfile.read(length)
        with lock:
            pending.append(body[1:-1])
        if b'"platform.runtimeDone"' in body:
            done.set()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.close()


def accept(listener):
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", listen_port))
listener.listen(16)
threading.Thread(target=accept, args=(listener,), daemon=True).start()
answer = call("POST", "/2020-01-01/extension/register",
              {"Lambda-Extension-Name": "bench-forwarder", "Content-Type": "application/json"},
              b'{"events":["INVOKE","SHUTDOWN"]}')
ext_id = ""
for line in answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]:
    name, _, value = line.partition(":")
    if name.strip().lower() == "lambda-extension-identifier":
        ext_id = value.strip()
call("PUT", "/2022-07-01/telemetry",
     {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"},
     ('{"schemaVersion":"2022-12-13","types":["platform","function","extension"],'
      '"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},'
      '"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:%d/"}}'
      % listen_port).encode())
address, _, path = endpoint.split("://", 1)[1].partition("/")
if endpoint.startswith("https:"):
    context = ssl.create_default_context(cafile=os.environ.get("BENCH_FORWARD_CA") or None)
    receiver = http.client.HTTPSConnection(address, context=context)
else:
    receiver = http.client.HTTPConnection(address)
while True:
    event = call("GET", "/2020-01-01/extension/event/next",
                 {"Lambda-Extension-Identifier": ext_id})
    if b"SHUTDOWN" in event:
        break
    done.wait(30)
    done.clear()
    with lock:
        body = b'{"logs":[' + b",".join(p for p in pending if p) + b"]}"
        pending.clear()
    receiver.request("POST", "/" + path, body=body, headers={"Content-Type": "application/json"})
    receiver.getresponse().read()
'''


def row_id(transport: str, compression: str, lines: int) -> str:
    """The JSON/table id of one row, e.g. ``post.https.gzip.100``."""
    return f"post.{transport}.{compression}.{lines}"


def expected_rows(line_counts: list[int]) -> list[str]:
    return [row_id(t, c, n) for t in TRANSPORTS for c in COMPRESSIONS for n in line_counts]


# nginx's default client_body_buffer_size (16k) spools larger bodies to a temp file and
# forwards them upstream in pieces that hit a Nagle/delayed-ACK stall: every request of
# ~15-250 KB took 44 ms through tests/support/nginx.py's config on this machine, the floor
# included. Keeping bodies in memory (as a production ingest tier tuned for log batches would)
# removes the stall, so the rows measure the extension, not that artefact.
NGINX_EXTRA = "client_body_buffer_size 16m;"


def _nginx_modules() -> tuple[Any, Any] | None:
    """(nginx class, make_tls_material) from the test servers; None without nginx/openssl."""
    try:
        from tests.support.nginx import Nginx, nginx_available
        from tests.support.tls import make_tls_material, openssl_available
    except ImportError:
        return None
    if not (nginx_available() and openssl_available()):
        return None

    class BenchNginx(Nginx):
        """The tests' nginx (TLS in front of the receiver) with request bodies kept in memory."""

        def _config(self, port: int) -> str:
            text = super()._config(port)
            anchor = "client_max_body_size"
            if anchor not in text:
                raise RuntimeError("tests/support/nginx.py's config changed: update bench")
            return text.replace(anchor, f"{NGINX_EXTRA}\n        {anchor}", 1)

    return BenchNginx, make_tls_material


def _forwarder_layer(tmp: Path, python: str) -> Path:
    """A layer holding only the forwarder, started through ``sh`` like the real launcher."""
    layer = tmp / "forwarder-layer"
    (layer / "extensions").mkdir(parents=True, exist_ok=True)
    script = layer / "forwarder.py"
    script.write_text(FORWARDER)
    launcher = layer / "extensions" / FORWARDER_NAME
    launcher.write_text(f'#!/bin/sh\nexec "{python}" -I -S -B -u "{script}"\n')
    launcher.chmod(0o755)
    return layer


def _last_request(record: Path) -> dict[str, Any] | None:
    """The last request the receiver recorded, read from the end of its (large) JSONL file."""
    with record.open("rb") as f:
        f.seek(0, os.SEEK_END)
        position = f.tell()
        data = b""
        while position > 0:
            step = min(1 << 20, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
            lines = data.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or position == 0:
                return json.loads(lines[-1]) if lines[-1].strip() else None
    return None


def _header(request: dict[str, Any], name: str) -> str:
    for key, value in request.get("headers", {}).items():
        if key.lower() == name:
            return str(value)
    return ""


def _round_trips(url: str, body: bytes, headers: dict[str, str], ca_file: Path | None,
                 count: int, warmup: int = 3, pause_s: float = 0.0) -> list[float]:
    """``count`` POST round trips (ms) on one kept-alive connection, after ``warmup``; each
    request ``pause_s`` after the previous answer."""
    address, _, path = url.split("://", 1)[1].partition("/")
    host, port = address.rsplit(":", 1)
    connection: http.client.HTTPConnection
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        connection = http.client.HTTPSConnection(host, int(port), timeout=30, context=context)
    else:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times: list[float] = []
    try:
        for index in range(warmup + count):
            if pause_s:
                time.sleep(pause_s)
            started = time.monotonic()
            connection.request("POST", "/" + path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = (time.monotonic() - started) * 1000
            if response.status >= 300:
                raise RuntimeError(f"receiver answered {response.status} to the floor request")
            if index >= warmup:
                times.append(elapsed)
    finally:
        connection.close()
    return times


def _run_combo(
    layer: Path, python: str, code_dir: Path, tmp: Path, transport: str, compression: str,
    line_counts: list[int], invocations: int, warmup: int, floor_count: int,
    nginx_modules: tuple[Any, Any] | None, tls_material: Any,
) -> dict[int, dict[str, Any]]:
    """One sandbox for a (transport, compression) pair; a row per line count.

    ``compression`` ``FORWARD`` runs the forwarder floor instead of the built layer.
    """
    if transport == "https" and nginx_modules is None:
        return {lines: {"lines": lines, "status": "skipped",
                        "note": "nginx/openssl not installed"} for lines in line_counts}
    rows: dict[int, dict[str, Any]] = {}
    receiver = Receiver(tmp)
    nginx = None
    try:
        url, ca_file = receiver.url, None
        if transport == "https":
            nginx_class, _ = nginx_modules  # type: ignore[misc]
            nginx = nginx_class(receiver.port, tmp, tls=tls_material, basic_auth=None,
                                client_max_body_size="16m")
            url, ca_file = nginx.url, nginx.ca_file
        if compression == FORWARD:
            name, layer = FORWARDER_NAME, _forwarder_layer(tmp, python)
            env = {"BENCH_FORWARD_TO": url, "BENCH_FORWARDER_PORT": str(procs.free_port()),
                   "BENCH_FORWARD_CA": str(ca_file or "")}
        else:
            name = EXTENSION_NAME
            env = {
                "HTTP_ENDPOINT": url,
                "HTTP_LISTENER_PORT": str(procs.free_port()),
                "HTTP_SPILL_DIR": str(tmp / f"spill-{transport}-{compression}"),
                "LAMBDA_LOGS_HTTP_PYTHON": python,
            }
            if ca_file is not None:
                env["HTTP_CA_BUNDLE"] = str(ca_file)
            if compression != "none":
                env["HTTP_COMPRESSION"] = compression
        with SandboxProbe() as probe:
            sandbox = Sandbox(layer, FunctionSpec(handler="app.handler", code_dir=code_dir), env,
                              timeout_s=60.0, memory_mb=1024, function_name="bench")
            try:
                init = sandbox.start()
                if not init.ok:
                    raise RuntimeError(f"sandbox init failed: {init.error}; "
                                       + " | ".join(sandbox.extension_output[-5:]))
                for lines in line_counts:
                    row = _invoke(sandbox, probe, receiver, name, lines, invocations, warmup)
                    if compression != FORWARD:
                        _add_round_trips(row, receiver, url, ca_file, compression, floor_count)
                    rows[lines] = row
            finally:
                sandbox.shutdown()
    finally:
        if nginx is not None:
            nginx.stop()
        receiver.stop()
        try:
            receiver.record.unlink()
        except OSError:
            pass
    return rows


def _invoke(sandbox: Sandbox, probe: SandboxProbe, receiver: Receiver, extension: str,
            lines: int, invocations: int, warmup: int) -> dict[str, Any]:
    """Run the invocations; time runtimeDone → next for each measured one."""
    held: list[float] = []
    pushed_at: list[float] = []
    billed: list[float] = []
    problems: list[str] = []
    gzip_seen = False
    for index in range(warmup + invocations):
        probe.clear()
        result = sandbox.invoke({"lines": lines})
        if result.status != "success":
            problems.append(f"invocation {result.status}: {result.error}")
            continue
        last = _last_request(receiver.record)
        if last is not None and _header(last, "content-encoding").lower() == "gzip":
            gzip_seen = True
        if index < warmup:
            continue
        pushed = probe.runtime_done_pushed_at(result.request_id)
        released = last_next_at(sandbox, extension)
        if pushed is None or released is None or released < pushed:
            problems.append("could not time runtimeDone → next")
        else:
            held.append((released - pushed) * 1000)
            pushed_at.append(pushed)
        if result.post_runtime_extensions_ms is not None:
            billed.append(result.post_runtime_extensions_ms)
    probe.clear()
    row: dict[str, Any] = {
        "lines": lines,
        "runtime_done_to_next_ms": summary(held),
        # The idle time before each of the extension's sends, give or take: the floor's pause.
        "invocation_period_ms": summary([(b - a) * 1000 for a, b in zip(pushed_at, pushed_at[1:])]),
        "post_runtime_extensions_ms": summary(billed),
        "gzip_seen": gzip_seen,
        "problems": problems[:5],
        "status": "ok" if held else "error",
    }
    if problems:
        row["note"] = f"{len(problems)} problem(s): {problems[0]}"
    return row


def _add_round_trips(row: dict[str, Any], receiver: Receiver, url: str, ca_file: Path | None,
                     compression: str, count: int) -> None:
    """The receiver-RT floor, with the last body the extension sent (see the docstring)."""
    if compression == "gzip" and not row["gzip_seen"]:
        row.update(status="n/a", note=NOT_SUPPORTED)
        return
    last = _last_request(receiver.record)
    if last is None:
        row.update(status="error", note="the receiver recorded nothing")
        return
    body = last["body"].encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if compression == "gzip":
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
        body = compressor.compress(body) + compressor.flush()
        headers["Content-Encoding"] = "gzip"
    period = row["invocation_period_ms"]["median"] or DEFAULT_PERIOD_MS
    floor = summary(_round_trips(url, body, headers, ca_file, count, pause_s=period / 1000))
    row["receiver_rt_ms"] = floor
    row["receiver_rt_back_to_back_ms"] = summary(_round_trips(url, body, headers, ca_file, count))
    row["floor_pause_ms"] = period
    row["floor_body_bytes"] = len(body)
    row["floor_entries"] = len(json.loads(last["body"]).get("logs", []))
    median = row["runtime_done_to_next_ms"]["median"]
    if median is not None and floor["median"] is not None:
        row["overhead_ms"] = median - floor["median"]


def run(layer: Path, python: str, line_counts: list[int], invocations: int,
        warmup: int = 2, floor_count: int = 30) -> dict[str, dict[str, Any]]:
    """Every (transport, compression, line count) row; see the module docstring."""
    nginx_modules = _nginx_modules()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-post-") as tmp_name:
        tmp = Path(tmp_name)
        code_dir = tmp / "code"
        code_dir.mkdir()
        (code_dir / "app.py").write_text(APP)
        tls_material = None
        if nginx_modules is not None:
            _, make_tls_material = nginx_modules
            tls_material = make_tls_material(tmp / "tls")
        for transport in TRANSPORTS:
            forwarder: dict[int, dict[str, Any]] = {}
            for compression in (FORWARD, *COMPRESSIONS):
                try:
                    result = _run_combo(layer, python, code_dir, tmp, transport, compression,
                                        line_counts, invocations, warmup, floor_count,
                                        nginx_modules, tls_material)
                except Exception as exc:  # one broken combination must not hide the others
                    note = f"{type(exc).__name__}: {exc}"[:300]
                    result = {n: {"lines": n, "status": "error", "note": note}
                              for n in line_counts}
                if compression == FORWARD:
                    forwarder = result
                    continue
                for lines, row in result.items():
                    floor = forwarder.get(lines, {})
                    row["forwarder_ms"] = floor.get("runtime_done_to_next_ms")
                    if floor.get("status") not in (None, "ok"):
                        row["forwarder_note"] = floor.get("note", floor.get("status"))
                    rows[row_id(transport, compression, lines)] = row
    return rows
