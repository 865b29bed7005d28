"""Throughput and memory: a record stream through listener → transform → batch → encode → send.

Not through the sandbox (it could not produce a million records fast enough): the built layer's
launcher runs as a subprocess against the bench's fake Extensions/Telemetry API
(``fake_lambda``), gets one INVOKE, and the bench POSTs pre-built Telemetry pushes (1,000
records each, as Lambda batches them) to its listener on one kept-alive connection, each as soon
as the previous one was answered — as fast as the listener accepts them. The last push carries
the invocation's ``platform.runtimeDone``, which makes the extension send its last partial batch
at once. The fast receiver (``fast_receiver``, a separate process) counts records as they arrive.

Time = first push sent → the receiver counted the last expected record (both
``time.monotonic()``, CLOCK_MONOTONIC across processes). "Listener ingest" is first push → last
push answered: how fast pushes are *accepted*, which can run ahead of delivery (they queue).

Pinned rows run the extension (both its threads, it is one process) on CPU 0 with
``taskset -c 0`` and the bench and receiver on CPU 1, which is the "one core" figure; unpinned
rows let the scheduler place everything on the 2 cores.

Memory is sampled from ``/proc/PID/status`` while the stream runs: RSS once init has settled
(idle), the median during the stream, the peak (``VmHWM``) and RSS 0.3 s after the last record
arrived. The peak above idle is what the backlog cost; ``HTTP_MAX_BUFFER_BYTES`` is meant to bound
it.

A variant is one entry of ``VARIANTS``: a name, env settings, pinned or not, and what the
receiver must see for the row to count (e.g. gzip). Each output format is one entry
(``HTTP_FORMAT``); filtering or redaction later is one more.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .fake_lambda import FakeLambdaApi
from .figures import percentile
from .telemetry_data import (
    FILTER_REDACT_ENV,
    RECORDS_PER_PUSH,
    function_events,
    function_pushes,
    new_request_id,
    output_body,
    platform_runtime_done,
    platform_start,
    tiny_pushes,
)
from .telemetry_data import encode as encode_push

EXTENSION_CPU = 0
BENCH_CPU = 1
LISTENER_HOST = "sandbox.localdomain"
NOT_SUPPORTED = "n/a (not supported by this build)"
DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024  # the README's HTTP_MAX_BUFFER_BYTES default


@dataclass(frozen=True)
class Variant:
    """One throughput row: ``env`` is added to the extension's environment.

    ``needs``: ``"gzip"`` makes the row "not supported by this build" unless the receiver saw
    ``Content-Encoding: gzip``. ``target``: records/s the project targets (None: no target).
    ``expect_all``: every pushed record must arrive (False for a filtering variant).
    ``receiver_delay_ms``: the receiver answers each request this much later (a distant
    endpoint), which is what makes a backlog build up in the extension. ``once``: run it once
    even when the others are repeated (a row about memory and loss, not speed, and a slow one).
    """

    name: str
    label: str
    env: Mapping[str, str] = field(default_factory=dict)
    pinned: bool = True
    needs: str = ""
    target: float | None = None
    expect_all: bool = True
    receiver_delay_ms: float = 0.0
    once: bool = False
    tiny_events: int = 0
    """Pushes of this many tiny records (~40 bytes each) instead of 1,000 typical ones."""
    stdlib_receiver: bool = False
    """The receiver is a stock ``http.server`` (HTTP/1.1, Nagle on: head and body written
    apart), the shape that stalls a client waiting on its delayed ACK."""


VARIANTS: tuple[Variant, ...] = (
    Variant("default.pinned", "default format, no compression, 1 core", {}, True,
            target=150_000),
    Variant("default.unpinned", "default format, no compression, unpinned", {}, False),
    Variant("gzip.pinned", "HTTP_COMPRESSION=gzip, 1 core", {"HTTP_COMPRESSION": "gzip"}, True,
            needs="gzip", target=100_000),
    Variant("gzip.unpinned", "HTTP_COMPRESSION=gzip, unpinned", {"HTTP_COMPRESSION": "gzip"},
            False, needs="gzip"),
    # The other output formats (HTTP_FORMAT), each against the same receiver: the bench's marker
    # is in every record's message, whatever body holds it.
    Variant("ndjson.pinned", "HTTP_FORMAT=ndjson, 1 core", {"HTTP_FORMAT": "ndjson"}, True,
            target=150_000),
    Variant("otlp.pinned", "HTTP_FORMAT=otlp, 1 core", {"HTTP_FORMAT": "otlp"}, True,
            target=150_000),
    Variant("loki.pinned", "HTTP_FORMAT=loki, 1 core", {"HTTP_FORMAT": "loki"}, True,
            target=150_000),
    # One row per output format besides the default (seed), same stream and receiver.
    Variant("elasticsearch.pinned", "HTTP_FORMAT=elasticsearch, 1 core",
            {"HTTP_FORMAT": "elasticsearch"}, True, target=150_000),
    Variant("splunk_hec.pinned", "HTTP_FORMAT=splunk_hec, 1 core",
            {"HTTP_FORMAT": "splunk_hec"}, True, target=150_000),
    Variant("datadog.pinned", "HTTP_FORMAT=datadog (1,000 logs a request), 1 core",
            {"HTTP_FORMAT": "datadog"}, True, target=150_000),
    # Every row redacts (HTTP_REDACT is on by default); this one adds a minimum level, an
    # exclusion pattern and a user redaction pattern, none of which leaves a record out.
    Variant("filter_redact.pinned", "HTTP_MIN_LEVEL + HTTP_EXCLUDE_PATTERN + "
            "HTTP_REDACT_PATTERNS, 1 core", FILTER_REDACT_ENV, True, target=120_000),
    # A stock http.server receiver: its two writes per answer would stall every kept-alive send
    # on a delayed ACK (~40 ms) if the transport let it.
    Variant("stdlib_receiver.pinned", "default, stock http.server receiver (HTTP/1.1), 1 core",
            {}, True, target=150_000, stdlib_receiver=True),
    # A receiver slower than the extension but still "healthy" (sends < 100 ms): the worker
    # encodes only up to the next batch and the listener pushes back on the pusher.
    Variant("slow_receiver.pinned", "default, receiver answers in 20 ms, 1 core", {}, True,
            receiver_delay_ms=20.0, once=True),
    # A slow receiver (sends >= 100 ms): the worker takes pushes in up to HTTP_MAX_BUFFER_BYTES
    # and spills beyond, so the memory table shows whether the cap bounds the peak. The spill
    # cap is raised so that the whole stream fits on disk (at the default 64 MiB the oldest
    # records would be dropped, counted, once the disk cap is reached too).
    Variant("slower_receiver.pinned", "default, receiver answers in 120 ms, 1 core, spill cap "
            "512 MiB", {"HTTP_MAX_SPILL_BYTES": str(512 << 20)}, True,
            receiver_delay_ms=120.0, once=True),
    # The push shape that costs the most memory per byte parsed: Lambda's largest pushes
    # (maxItems 10,000) of ~40-byte records, behind the same slow receiver: the memory row shows
    # that the peak is bounded by bytes whatever the shape.
    Variant("tiny_events.pinned", "10,000 tiny records a push, receiver answers in 120 ms, "
            "1 core, spill cap 512 MiB",
            {"HTTP_TELEMETRY_MAX_ITEMS": "10000", "HTTP_MAX_SPILL_BYTES": str(512 << 20)},
            True, receiver_delay_ms=120.0, once=True, tiny_events=10_000),
)


def expected_rows() -> list[str]:
    return ([f"tput.{v.name}" for v in VARIANTS] + [f"mem.{v.name}" for v in VARIANTS]
            + ["tput.receiver.plain", "tput.receiver.gzip"])


# -- the receiver process -------------------------------------------------------------------------


class FastReceiver:
    """The ``fast_receiver`` process, owned by the bench (stopped by PID)."""

    def __init__(
        self, cpus: list[int] | None = None, delay_ms: float = 0.0, stdlib: bool = False
    ) -> None:
        command = [*procs.pin_prefix(cpus), sys.executable, "-m", "tools.bench.fast_receiver",
                   "--port", "0", "--delay-ms", str(delay_ms), *(["--stdlib"] if stdlib else [])]
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                         cwd=str(root), stdin=subprocess.DEVNULL)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"fast receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/ingest"
        self.pid = self._process.pid

    def _call(self, method: str, path: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1]

    def reset(self, expected: int) -> None:
        self._call("POST", "/__reset", json.dumps({"expected": expected}).encode())

    def stats(self) -> dict[str, Any]:
        return json.loads(self._call("GET", "/__stats"))

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            procs.stop(self._process, timeout=5.0)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> FastReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- pushing --------------------------------------------------------------------------------------


class Pusher:
    """Lambda's side of the listener: sequential POSTs on one kept-alive connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.retries = 0
        self._sock: socket.socket | None = None
        self._rfile: Any = None

    def _connect(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self._sock.makefile("rb")

    def push(self, body: bytes) -> None:
        """POST one push until the listener takes it (503 = queue full: retry shortly)."""
        head = (f"POST / HTTP/1.1\r\nHost: {LISTENER_HOST}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        for attempt in range(10_000):
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            try:
                self._sock.sendall(head + body)
                status, close = self._read_response()
            except OSError:
                status, close = 0, True
            if close:
                self.close()
            if 200 <= status < 300:
                return
            self.retries += 1
            time.sleep(0.002 if status == 503 else 0.01 * min(attempt + 1, 10))
        raise RuntimeError("the listener kept refusing a push")

    def _read_response(self) -> tuple[int, bool]:
        status_line = self._rfile.readline(65536)
        if not status_line:
            return 0, True
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = self._rfile.readline(65536)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            self._rfile.read(length)
        return status, close

    def close(self) -> None:
        if self._rfile is not None:
            self._rfile.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._rfile = None


def listener_host() -> str:
    """Where the extension's listener is: ``sandbox.localdomain`` if it resolves, else 127.0.0.1."""
    try:
        return socket.getaddrinfo(LISTENER_HOST, None, socket.AF_INET)[0][4][0]
    except (OSError, IndexError):
        return "127.0.0.1"


# -- one run --------------------------------------------------------------------------------------


@dataclass
class Stream:
    """The pre-built pushes of one stream (built before any clock starts)."""

    request_id: str
    records: int
    bodies: list[bytes]
    tail: bytes | None
    per_push: int = RECORDS_PER_PUSH


def build_stream(records: int, tiny_events: int = 0) -> Stream:
    request_id = new_request_id()
    if tiny_events:
        return Stream(request_id, records - records % tiny_events,
                      tiny_pushes(request_id, tiny_events), None, tiny_events)
    remainder = records % RECORDS_PER_PUSH
    tail = (encode_push(function_events(request_id, remainder)) if remainder else None)
    return Stream(request_id, records, function_pushes(request_id), tail)


class _Affinity:
    """Pin this (the bench) process to ``cpus`` for a block, then restore."""

    def __init__(self, cpus: set[int] | None) -> None:
        self.cpus = cpus
        self.saved: set[int] | None = None

    def __enter__(self) -> None:
        if self.cpus:
            self.saved = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.cpus)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)


def run_variant(layer: Path, python: str, variant: Variant, stream: Stream, tmp: Path,
                profile_to: Path | None = None) -> dict[str, Any]:
    """Stream ``stream`` through one extension configured by ``variant``; one result row."""
    pinned = variant.pinned and procs.can_pin([EXTENSION_CPU, BENCH_CPU])
    ext_cpus = [EXTENSION_CPU] if pinned else None
    side_cpus = [BENCH_CPU] if pinned else None
    row: dict[str, Any] = {"label": variant.label, "records": stream.records, "pinned": pinned,
                           "env": dict(variant.env)}
    if variant.pinned and not pinned:
        row["note"] = "could not pin (needs 2 CPUs and taskset): ran unpinned"
    with FastReceiver(side_cpus, variant.receiver_delay_ms, variant.stdlib_receiver) as receiver, \
            FakeLambdaApi() as fake:
        receiver.reset(stream.records)
        port = procs.free_port()
        env = procs.base_env(fake.runtime_api, python, {
            "HTTP_ENDPOINT": receiver.url,
            "HTTP_LISTENER_PORT": str(port),
            "HTTP_SPILL_DIR": str(tmp / f"spill-{variant.name}-{time.monotonic_ns()}"),
            **variant.env,
        })
        out = tmp / f"{variant.name}.out"
        process = procs.start_extension(layer, env, out, ext_cpus)
        profiler: subprocess.Popen[bytes] | None = None
        try:
            if fake.wait_next(1, timeout=15.0) is None:
                raise RuntimeError("the extension never called /event/next: "
                                   + out.read_text(errors="replace")[-400:])
            fake.invoke(stream.request_id, timeout_s=3600)
            procs.settled_cpu_seconds(process.pid)  # background imports done: idle baseline
            rss_idle = procs.memory_kib(process.pid).get("VmRSS")
            if profile_to is not None:
                profiler = _start_profiler(process.pid, profile_to, side_cpus)
            sampler = procs.RssSampler(process.pid).start()
            cpu_before = procs.process_cpu_seconds(process.pid)
            faults_before = procs.minor_faults(process.pid)
            threads_before = procs.thread_cpu_seconds(process.pid)
            ours_before = _our_cpu(receiver.pid, process.pid)
            pusher = Pusher(listener_host(), port)
            with _Affinity(set(side_cpus) if side_cpus else None):
                started = time.monotonic()
                pusher.push(platform_start(stream.request_id))
                for index in range(stream.records // stream.per_push):
                    pusher.push(stream.bodies[index % len(stream.bodies)])
                if stream.tail is not None:
                    pusher.push(stream.tail)
                pusher.push(platform_runtime_done(stream.request_id))
                pushed = time.monotonic()
                stats = _wait_delivered(receiver, stream.records, variant.expect_all, fake)
            cpu_after = procs.process_cpu_seconds(process.pid)
            faults_after = procs.minor_faults(process.pid)
            threads_after = procs.thread_cpu_seconds(process.pid)
            ours_after = _our_cpu(receiver.pid, process.pid)
            memory = procs.memory_kib(process.pid)
            samples = sampler.stop()
            pusher.close()
            if profiler is not None:
                _stop_profiler(profiler)
                profiler = None
            time.sleep(0.3)
            rss_after = procs.memory_kib(process.pid).get("VmRSS")
            released = fake.wait_next(2, timeout=10.0)
            fake.shutdown_event()
            exit_code = procs.stop(process, timeout=10.0)
        finally:
            if profiler is not None:
                _stop_profiler(profiler)
            if process.poll() is None:
                procs.stop(process, timeout=0.0)
    output = out.read_text(errors="replace")
    end = stats.get("done_at") or stats.get("last_at")
    elapsed = (end - started) if end else None
    delivered = stats.get("records", 0)
    during = [rss for t, rss in samples if started <= t <= (end or pushed)]
    row.update({
        "delivered": stats.get("records", 0),
        "requests": stats.get("requests", 0),
        "gzip_requests": stats.get("gzip_requests", 0),
        "wire_bytes": stats.get("wire_bytes", 0),
        "body_bytes": stats.get("body_bytes", 0),
        "seconds": elapsed,
        # Records that arrived, per second: the same as records pushed per second unless the
        # extension dropped some (then "lost" says how many).
        "records_per_s": delivered / elapsed if elapsed else None,
        "lost_records": max(0, stream.records - delivered) if variant.expect_all else None,
        "ingest_seconds": pushed - started,
        "ingest_records_per_s": stream.records / (pushed - started),
        "push_retries": pusher.retries,
        "extension_cpu_s": (cpu_after - cpu_before) if cpu_after and cpu_before is not None
        else None,
        "minor_faults_per_record": (faults_after - faults_before) / stream.records
        if faults_after is not None and faults_before is not None else None,
        "released_before_delivery": bool(released is not None and end is not None
                                          and released < end),
        "exit_code": exit_code,
        "summary": _summary_line(output),
        "warnings": [line for line in output.splitlines()
                     if " WARNING " in line or " ERROR " in line][:5],
        "thread_cpu_s": _thread_roles(process.pid, threads_before, threads_after),
        "rss_idle_kib": rss_idle,
        "rss_median_kib": percentile(during, 50) if during else None,
        "rss_peak_kib": memory.get("VmHWM"),
        "rss_after_kib": rss_after,
        "buffer_cap_bytes": int(variant.env.get("HTTP_MAX_BUFFER_BYTES", DEFAULT_BUFFER_BYTES)),
    })
    if row["thread_cpu_s"]:
        # The threads' schedstat (ns) is finer than /proc/PID/stat's 10 ms ticks; no thread
        # ends during the stream (the push connection stays open), so nothing is missed.
        row["extension_cpu_s"] = sum(row["thread_cpu_s"].values())
    if row["extension_cpu_s"] is not None and elapsed:
        row["extension_cpu_percent"] = 100.0 * row["extension_cpu_s"] / elapsed
    if ours_before is not None and ours_after is not None and elapsed:
        # CPU the rest of the machine used meanwhile (another test run, a build...): noise.
        wall = ours_after[0] - ours_before[0]
        busy, ours = ours_after[1] - ours_before[1], ours_after[2] - ours_before[2]
        row["other_cpu_percent"] = max(0.0, 100.0 * (busy - ours) / wall)
    complete = stats.get("done_at") is not None or not variant.expect_all
    dropped = re.search(r"\bdropped=(\d+)", row["summary"])
    if variant.needs == "gzip" and not row["gzip_requests"]:
        row.update(status="n/a", note=NOT_SUPPORTED)
    elif complete:
        row["status"] = "ok"
    elif dropped and int(dropped.group(1)) > 0 and exit_code == 0:
        # A measurement, not a bench failure: the extension chose to drop (and said so).
        row.update(status="ok", note=f"LOST {row['lost_records']:,} of {stream.records:,} "
                                     f"records ({row['summary']})")
    else:
        row.update(status="error", note=f"only {delivered} of {stream.records} records "
                                        f"arrived ({row['summary'] or 'no shutdown summary'})")
    return row


def _wait_delivered(receiver: FastReceiver, expected: int, expect_all: bool,
                    fake: FakeLambdaApi) -> dict[str, Any]:
    """Poll the receiver until every record arrived, or it stalled (nothing new for 10 s)."""
    last_count, last_change = -1, time.monotonic()
    while True:
        stats = receiver.stats()
        if stats.get("done_at") is not None:
            return stats
        if stats["records"] != last_count:
            last_count, last_change = stats["records"], time.monotonic()
        quiet = time.monotonic() - last_change
        released = len(fake.next_arrivals) >= 2
        if quiet > 10.0 or (not expect_all and released and quiet > 2.0):
            return stats
        time.sleep(0.02)


def _our_cpu(*pids: int) -> tuple[float, float, float] | None:
    """(now, machine busy CPU seconds, CPU seconds of the bench + its receiver + extension)."""
    busy = procs.machine_busy_seconds()
    if busy is None:
        return None
    ours = procs.own_cpu_seconds() + sum(procs.process_cpu_seconds(p) or 0.0 for p in pids)
    return time.monotonic(), busy, ours


def _thread_roles(pid: int, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds each thread used during the stream, by role.

    CPython does not name OS threads, so roles are inferred: the main thread has the process's
    id; of the threads that existed before the stream, the busiest is the worker (the other is
    the listener's accept loop); threads born during the stream serve the push connection
    (the listener parses pushes there).
    """
    roles: dict[str, float] = {}
    existing = sorted((tid for tid in after if tid in before and tid != pid),
                      key=lambda tid: after[tid] - before[tid], reverse=True)
    for tid, used in ((tid, after[tid] - before.get(tid, 0.0)) for tid in after):
        if tid == pid:
            name = "main"
        elif tid not in before:
            name = "listener connections"
        elif existing and tid == existing[0]:
            name = "worker"
        else:
            name = "listener accept + other"
        roles[name] = roles.get(name, 0.0) + used
    return roles


def _summary_line(output: str) -> str:
    match = re.search(r"shutdown summary: (.*)", output)
    return match.group(1).strip() if match else ""


# -- profiling ------------------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy next to this interpreter (the dev venv) or on PATH."""
    candidate = Path(sys.executable).with_name("py-spy")
    if candidate.exists():
        return str(candidate)
    from shutil import which

    return which("py-spy")


def _start_profiler(pid: int, output: Path, cpus: list[int] | None) -> subprocess.Popen[bytes]:
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed (pip install -r requirements-dev.txt)")
    log = output.with_suffix(".log").open("wb")
    # --threads names each sample's thread. --gil samples the thread holding the GIL, i.e. the
    # one running Python (or C called from it); --nonblocking reads the process without
    # stopping it: py-spy's default stop-the-world sampling perturbed the GIL hand-offs
    # between the two threads enough to misattribute the listener's JSON parsing to its
    # socket and header code (checked against the listener run alone and against /proc).
    profiler = subprocess.Popen(
        [*procs.pin_prefix(cpus), tool, "record", "--pid", str(pid), "--rate", "250", "--gil",
         "--nonblocking",
         "--format", "raw", "--threads", "--output", str(output)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    time.sleep(0.5)  # attaching takes a moment; nothing is pushed before it samples
    return profiler


def _stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    if profiler.poll() is None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        profiler.wait(30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait(5)


# -- the receiver alone ---------------------------------------------------------------------------


def receiver_alone(requests: int, entries: int = 2500) -> dict[str, dict[str, Any]]:
    """Records/s the fast receiver absorbs by itself (plain and gzip'd ~1 MB bodies).

    Sent from this process on CPU 0 to the receiver on CPU 1 (as in the pinned rows), so the
    receiver's capacity can be compared with the extension's rate: it must be far above it.
    """
    body = output_body(entries, new_request_id())
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    gzipped = compressor.compress(body) + compressor.flush()
    rows: dict[str, dict[str, Any]] = {}
    pin = procs.can_pin([EXTENSION_CPU, BENCH_CPU])
    with FastReceiver([BENCH_CPU] if pin else None) as receiver, \
            _Affinity({EXTENSION_CPU} if pin else None):
        for name, payload, extra in (("plain", body, b""),
                                     ("gzip", gzipped, b"Content-Encoding: gzip\r\n")):
            receiver.reset(entries * requests)
            head = (b"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                    b"\r\n" + extra + b"Content-Length: " + str(len(payload)).encode()
                    + b"\r\n\r\n")
            with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rfile = sock.makefile("rb")
                started = time.monotonic()
                for _ in range(requests):
                    sock.sendall(head + payload)
                    while rfile.readline() not in (b"\r\n", b""):
                        pass
                    rfile.read(2)
                elapsed = time.monotonic() - started
                rfile.close()
            stats = receiver.stats()
            ok = stats["records"] == entries * requests
            rows[f"tput.receiver.{name}"] = {
                "label": f"fast receiver alone, {name} ~1 MB bodies",
                "records": entries * requests,
                "seconds": elapsed,
                "records_per_s": entries * requests / elapsed,
                "body_bytes": len(payload),
                "pinned": pin,
                "status": "ok" if ok else "error",
                **({} if ok else {"note": f"counted {stats['records']} records"}),
            }
    return rows


def _attempt(layer: Path, python: str, variant: Variant, stream: Stream, tmp: Path,
             supported: dict[str, bool]) -> dict[str, Any]:
    """One run of ``variant``, as a row (an error row rather than an exception)."""
    try:
        if variant.needs and variant.needs not in supported:
            # A short probe first, so an unsupported feature does not cost full runs.
            probe = run_variant(layer, python, variant, build_stream(2000), tmp)
            supported[variant.needs] = probe.get("status") != "n/a"
        if variant.needs and not supported[variant.needs]:
            return {"label": variant.label, "status": "n/a", "note": NOT_SUPPORTED}
        return run_variant(layer, python, variant, stream, tmp)
    except Exception as exc:  # one broken variant must not hide the others
        return {"label": variant.label, "status": "error",
                "note": f"{type(exc).__name__}: {exc}"[:300]}


def _combine(label: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run (by records/s) of ``attempts``, with every run's rate and the worst peak.

    Single 1M-record runs moved by ±10 % between runs here (unpinned ones more): one run is
    not a figure. The memory columns come from the same median run, except the peak, which is
    the highest seen in any run (a bound is about the worst case).
    """
    good = [a for a in attempts if a.get("status") == "ok" and a.get("records_per_s")]
    lost = [a["lost_records"] for a in good if a.get("lost_records")]
    if not good:
        return attempts[0] if attempts else {"label": label, "status": "error",
                                             "note": "not run"}
    good.sort(key=lambda a: a["records_per_s"])
    row = dict(good[(len(good) - 1) // 2])
    rates = [a["records_per_s"] for a in good]
    row["runs"] = len(attempts)
    row["records_per_s_all"] = rates
    row["rss_peak_kib_max"] = max(a.get("rss_peak_kib") or 0 for a in good)
    row["other_cpu_percent_max"] = max(a.get("other_cpu_percent") or 0.0 for a in good)
    row["lost_records_max"] = max(lost) if lost else 0
    row["runs_with_loss"] = len(lost)
    failed = [a for a in attempts if a.get("status") != "ok"]
    if failed:
        row["note"] = f"{len(failed)} of {len(attempts)} runs failed: {failed[0].get('note')}"
    elif lost and not row.get("note"):
        row["note"] = (f"LOST records in {len(lost)} of {len(attempts)} runs (up to "
                       f"{max(lost):,}); the median run lost none")
    return row


def run(layer: Path, python: str, records: int, variants: tuple[Variant, ...] = VARIANTS,
        profile_to: Path | None = None, receiver_requests: int = 200,
        repeats: int = 1) -> dict[str, Any]:
    """Every variant (tput.* and mem.* rows), the receiver alone, and an optional profile run.

    With ``repeats`` > 1 the variants run round-robin (so drift in the machine's state hits all
    alike) and each row is the median run (``_combine``).
    """
    rows: dict[str, Any] = {}
    stream = build_stream(records)
    supported: dict[str, bool] = {}
    attempts: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench-tput-") as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(max(1, repeats)):
            for variant in variants:
                done = attempts[variant.name]
                if done and (variant.once or done[-1]["status"] == "n/a"):
                    continue
                shaped = build_stream(records, variant.tiny_events) if variant.tiny_events \
                    else stream
                attempts[variant.name].append(
                    _attempt(layer, python, variant, shaped, tmp, supported))
        for variant in variants:
            key = f"tput.{variant.name}"
            row = _combine(variant.label, attempts[variant.name])
            if variant.target is not None:
                row["target_records_per_s"] = variant.target
            rows[key] = row
            rows[f"mem.{variant.name}"] = {"label": variant.label, "status": row["status"],
                                           "source": key, **({"note": row["note"]}
                                                             if "note" in row else {})}
        try:
            rows.update(receiver_alone(receiver_requests))
        except Exception as exc:
            for name in ("plain", "gzip"):
                rows[f"tput.receiver.{name}"] = {"status": "error",
                                                 "note": f"{type(exc).__name__}: {exc}"[:300]}
        if profile_to is not None:
            try:
                rows["profile_run"] = run_variant(layer, python, VARIANTS[0], stream, tmp,
                                                  profile_to=profile_to)
            except Exception as exc:
                rows["profile_run"] = {"status": "error",
                                       "note": f"{type(exc).__name__}: {exc}"[:300]}
    return rows
