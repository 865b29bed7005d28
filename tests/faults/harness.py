"""What every fault scenario shares: the function, the counting, the timing, the results file.

Counting is by marker. The function prints ``FMK-<invocation>-<line>`` lines, one marker each, so
"expected" is exact without guessing which platform records a given fault produces, and the
receiver's record file can be scanned with a regular expression instead of parsing a million
entries. Copies are counted twice over: as received, and after dropping every request whose
``Idempotency-Key`` was already seen (what a de-duplicating receiver keeps). A copy that survives
the second count is a duplicate nobody could have identified.

Timing is Lambda's ``PostRuntimeExtensionsDuration``: the sandbox's ``post_runtime_extensions_ms``,
from the function's response to the extension's ``/event/next``. For attribution it is split at
the moment the sandbox started the push that carried the invocation's ``platform.runtimeDone``
(recorded by wrapping ``lambda_sandbox.delivery.post_batch``): before it, the Telemetry stream was
still catching up; after it, the extension was working or waiting on its receiver.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from tests.support.fixtures import BASIC_AUTH
from tests.support.nginx import Nginx
from tools.lambda_sandbox import FunctionSpec, InvokeResult, Sandbox
from tools.lambda_sandbox import delivery as sandbox_delivery
from tools.lambda_sandbox.receiver import Receiver

EXTENSION = "lambda-logs-http"
"""The extension's name: its file in the layer's ``extensions/`` and its key in ``pids()``."""

SLACK_MS = 150.0
"""Allowed beyond ``HTTP_FLUSH_BUDGET_MS``: the Telemetry API's own 25 ms buffering, one local
round trip and scheduling noise on a loaded 2-core machine."""

DEFAULT_BUDGET_MS = 500
"""The extension's default ``HTTP_FLUSH_BUDGET_MS``; scenarios keep it unless they say why."""

APP = '''
import sys
import time


def handler(event, context):
    n = event["n"]
    count = event.get("count", 0)
    pad = " " + "x" * event["width"] if event.get("width") else ""
    # Whole chunks per write: a tight print() loop would measure awslambdaric, not the extension.
    for start in range(0, count, 10000):
        stop = min(count, start + 10000)
        sys.stdout.write("".join(f"FMK-{n}-{i}{pad}\\n" for i in range(start, stop)))
    if event.get("big"):
        sys.stdout.write(f"FMK-{n}-{count} " + "y" * event["big"] + "\\n")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"n": n}
'''
"""The function: ``count`` marker lines (``width`` bytes of padding each), optionally one ``big``
line more (marker first, so truncation keeps it), then an optional ``sleep``."""

MARKER = re.compile(r"FMK-(\d+)-(\d+)")
_RUNTIME_DONE_PUSH = re.compile(rb'"type":"platform\.runtimeDone","record":\{"requestId":"([^"]+)"')
_SUMMARY = re.compile(r"shutdown summary: (.*)$")


def write_function(directory: Path) -> Path:
    """The function's code directory (``app.handler``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(APP, encoding="utf-8")
    return directory


# --- counting ---------------------------------------------------------------------------------


class Tally:
    """Marker counts from the capture receiver's record file, read incrementally.

    The receiver appends one JSON line per request it accepted; only complete lines are read, and
    each only once, so polling it during a million-record run stays cheap.
    """

    def __init__(self, record: Path) -> None:
        self.record = record
        self._offset = 0
        self.copies: dict[int, bytearray] = {}
        """invocation -> copies received of each line (saturating at 255)."""
        self.kept: dict[int, bytearray] = {}
        """The same after de-duplication by Idempotency-Key."""
        self.requests = 0
        self.repeated_requests = 0
        """Requests whose Idempotency-Key an earlier request already carried."""
        self.unexpected = 0
        """Markers of lines never printed (would mean corruption or a counting bug)."""
        self._keys: set[str] = set()

    def skip_existing(self) -> None:
        """Count only what the receiver records from now on (a second run against it)."""
        self._offset = self.record.stat().st_size if self.record.exists() else 0

    def update(self, expected: Mapping[int, int]) -> None:
        """Read what the receiver recorded since the last call."""
        keys = self._keys
        with self.record.open("rb") as source:
            source.seek(self._offset)
            while True:
                line = source.readline()
                if not line.endswith(b"\n"):
                    break  # not complete yet: read it next time
                self._offset += len(line)
                request = json.loads(line)
                headers = request["headers"]
                # Receivers other than the capture one may record header names lower-cased.
                key = headers.get("Idempotency-Key", headers.get("idempotency-key", ""))
                repeated = bool(key) and key in keys
                keys.add(key)
                self.requests += 1
                self.repeated_requests += repeated
                self._count(request["body"], expected, repeated)

    def _count(self, body: str, expected: Mapping[int, int], repeated: bool) -> None:
        for match in MARKER.finditer(body):
            invocation, line = int(match[1]), int(match[2])
            size = expected.get(invocation, 0)
            if line >= size:
                self.unexpected += 1
                continue
            copies = self.copies.get(invocation)
            if copies is None:
                copies = self.copies[invocation] = bytearray(size)
                self.kept[invocation] = bytearray(size)
            if copies[line] < 255:
                copies[line] += 1
            if not repeated and self.kept[invocation][line] < 255:
                self.kept[invocation][line] += 1

    def delivered(self) -> int:
        """Distinct lines received."""
        return sum(len(c) - c.count(0) for c in self.copies.values())

    def duplicated(self) -> int:
        """Extra copies received (a line received three times counts two)."""
        return sum(sum(c) - (len(c) - c.count(0)) for c in self.copies.values())

    def unidentifiable(self) -> int:
        """Extra copies left after de-duplication by Idempotency-Key."""
        return sum(sum(k) - (len(k) - k.count(0)) for k in self.kept.values())

    def missing(self, expected: Mapping[int, int]) -> set[tuple[int, int]]:
        """``(invocation, line)`` of every expected line not received."""
        absent = set()
        for invocation, size in expected.items():
            copies = self.copies.get(invocation, bytearray(size))
            absent.update((invocation, i) for i in range(size) if not copies[i])
        return absent


def markers_in(directory: Path) -> set[tuple[int, int]]:
    """Markers in the spill files of ``directory`` (the batches kept on disk)."""
    found = set()
    for path in directory.glob("*.batch"):
        text = path.read_text(encoding="utf-8", errors="replace")
        found.update((int(m[1]), int(m[2])) for m in MARKER.finditer(text))
    return found


# --- sampling and timing ----------------------------------------------------------------------


class PeakRss:
    """Samples the extension's peak resident set (``VmHWM``) while a scenario runs.

    ``VmHWM`` is already a high-water mark, so sampling only has to catch each process before it
    exits; a reset starts a new process, and each pid is kept apart.
    """

    def __init__(self, sandbox: Sandbox, interval: float = 0.05) -> None:
        self._sandbox = sandbox
        self._interval = interval
        self.peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-matrix-rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(2)

    @property
    def max_mb(self) -> float:
        return max(self.peak_kb.values(), default=0) / 1024

    def sample(self) -> None:
        pid = self._sandbox.pids().get(EXTENSION)
        if pid is None:
            return
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()


class PushLog:
    """When the sandbox started pushing each invocation's ``platform.runtimeDone`` (epoch s)."""

    def __init__(self) -> None:
        self.runtime_done_push: dict[str, float] = {}

    def wrap(self, original: Callable[..., int]) -> Callable[..., int]:
        def post_batch(destination: Any, body: bytes, timeout_s: float) -> int:
            started = time.time()
            if b"platform.runtimeDone" in body:
                for match in _RUNTIME_DONE_PUSH.finditer(body):
                    self.runtime_done_push.setdefault(match[1].decode(), started)
            return original(destination, body, timeout_s)

        return post_batch


@contextmanager
def push_log() -> Iterator[PushLog]:
    """Record runtimeDone pushes of every sandbox in this process while the block runs."""
    log = PushLog()
    original = sandbox_delivery.post_batch
    sandbox_delivery.post_batch = log.wrap(original)  # type: ignore[assignment]
    try:
        yield log
    finally:
        sandbox_delivery.post_batch = original  # type: ignore[assignment]


def _epoch(iso_time: str) -> float:
    return datetime.strptime(iso_time.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def response_times(sandbox: Sandbox) -> dict[str, float]:
    """request id -> epoch time the function's response began (from runtimeDone's spans)."""
    times = {}
    for event in sandbox.telemetry_events:
        if event["type"] != "platform.runtimeDone":
            continue
        record = event["record"]
        for span in record.get("spans", []):
            if span["name"] == "responseDuration":
                times[record["requestId"]] = _epoch(span["start"])
    return times


def summaries(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every ``shutdown summary`` the extension printed, parsed (one per process that ended)."""
    parsed = []
    for line in sandbox.extension_output:
        match = _SUMMARY.search(line)
        if not match:
            continue
        text = match[1]
        fields: dict[str, Any] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}
        reasons = re.search(r"dropped=\d+ \(([^)]*)\)", text)
        fields["dropped_by"] = dict(
            (k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", reasons[1])) if reasons else {}
        parsed.append(fields)
    return parsed


# --- one scenario -----------------------------------------------------------------------------


@dataclass
class Run:
    """A started sandbox plus what the scenario printed and measured.

    ``invoke`` numbers invocations and remembers how many marker lines each printed; ``tally``
    reads the receiver; ``figures`` turns it all into one results line.
    """

    sandbox: Sandbox
    record: Path
    pushes: PushLog
    budget_ms: float = DEFAULT_BUDGET_MS
    expected: dict[int, int] = field(default_factory=dict)
    results: list[InvokeResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    sandboxes: list[Sandbox] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tally = Tally(self.record)
        self.sandboxes.append(self.sandbox)

    def invoke(self, lines: int = 20, **event: Any) -> InvokeResult:
        """Invoke once; ``lines`` marker lines (+1 with ``big``) are expected at the receiver."""
        n = len(self.expected)
        self.expected[n] = lines + (1 if event.get("big") else 0)
        result = self.sandbox.invoke({"n": n, "count": lines, **event})
        self.results.append(result)
        return result

    def switch(self, sandbox: Sandbox) -> None:
        """Carry on in another sandbox (e.g. a new environment sharing the spill directory)."""
        self.sandbox = sandbox
        self.sandboxes.append(sandbox)

    def update(self) -> Tally:
        self.tally.update(self.expected)
        return self.tally

    def delivered_now(self) -> int:
        return self.update().delivered()

    def latencies(self) -> list[float]:
        return [r.post_runtime_extensions_ms for r in self.results
                if r.post_runtime_extensions_ms is not None]

    def held(self) -> list[float]:
        """Added latencies beyond the flush budget plus slack (should be empty)."""
        return [ms for ms in self.latencies() if ms > self.budget_ms + SLACK_MS]

    def split(self) -> list[dict[str, Any]]:
        """Per invocation: Telemetry lag before runtimeDone was pushed, and the hold after it."""
        responses: dict[str, float] = {}
        for sandbox in self.sandboxes:
            responses.update(response_times(sandbox))
        rows = []
        for result in self.results:
            response = responses.get(result.request_id)
            pushed = self.pushes.runtime_done_push.get(result.request_id)
            if result.post_runtime_extensions_ms is None or response is None or pushed is None:
                continue
            released = response + result.post_runtime_extensions_ms / 1000
            rows.append({"request_id": result.request_id,
                         "lag_ms": round((pushed - response) * 1000, 1),
                         "hold_after_push_ms": round((released - pushed) * 1000, 1)})
        return rows

    def extension_lines(self, needle: str) -> list[str]:
        return [line for s in self.sandboxes for line in s.extension_output if needle in line]

    def figures(self, scenario: str, title: str, *, explained: Mapping[str, int] | None = None,
                notes: str = "", **extra: Any) -> dict[str, Any]:
        """The scenario's results line. ``explained``: lost lines with a legitimate reason."""
        tally = self.update()
        expected = sum(self.expected.values())
        delivered = tally.delivered()
        explained = dict(explained or {})
        latencies = self.latencies()
        split = self.split()
        return {
            "scenario": scenario,
            "title": title,
            "expected": expected,
            "delivered": delivered,
            "lost": expected - delivered,
            "lost_explained": explained,
            "lost_unexplained": expected - delivered - sum(explained.values()),
            "duplicated": tally.duplicated(),
            "duplicated_unidentifiable": tally.unidentifiable(),
            "requests": tally.requests,
            "repeated_requests": tally.repeated_requests,
            "unexpected_markers": tally.unexpected,
            "invocations": len(self.results),
            "statuses": [r.status for r in self.results],
            "budget_ms": self.budget_ms,
            "latency_ms": {
                "median": round(statistics.median(latencies), 1) if latencies else None,
                "max": round(max(latencies), 1) if latencies else None,
                "all": [round(ms, 1) for ms in latencies],
            },
            "held_past_bound": bool(self.held()),
            "max_hold_after_push_ms": max((r["hold_after_push_ms"] for r in split), default=None),
            "max_telemetry_lag_ms": max((r["lag_ms"] for r in split), default=None),
            "summaries": [s for sandbox in self.sandboxes for s in summaries(sandbox)],
            "duration_s": round(time.monotonic() - self.started, 1),
            "notes": notes,
            **extra,
        }


# --- launching ------------------------------------------------------------------------------


def nginx_env(nginx: Nginx, password: str = BASIC_AUTH[1]) -> dict[str, str]:
    """Settings for an endpoint behind ``nginx``: HTTPS with its CA, basic auth."""
    assert nginx.ca_file is not None
    return {
        "HTTP_ENDPOINT": nginx.url,
        "HTTP_CA_BUNDLE": str(nginx.ca_file),
        "HTTP_AUTH_TYPE": "basic",
        "HTTP_AUTH_USERNAME": BASIC_AUTH[0],
        "HTTP_AUTH_CREDENTIALS": password,
    }


class Launcher:
    """Starts sandboxes running the built layer (freeze on) and shuts every one down at the end.

    Each test gets its own listener port and its own ``HTTP_SPILL_DIR`` under ``tmp_path``, so no
    spilled batch of one scenario is ever sent by another.
    """

    def __init__(self, layer: Path, tmp_path: Path, receiver: Receiver, pushes: PushLog) -> None:
        self.layer = layer
        self.code_dir = write_function(tmp_path / "code")
        self.spill_dir = tmp_path / "spill"
        self.receiver = receiver
        self.pushes = pushes
        self.made: list[Sandbox] = []

    def sandbox(self, env: dict[str, str], **options: Any) -> Sandbox:
        """A started sandbox with ``env`` over the defaults (listener port, spill directory)."""
        settings = {
            "HTTP_LISTENER_PORT": "0",  # the system picks a free port; the subscription names it
            "HTTP_SPILL_DIR": str(self.spill_dir),
            **env,
        }
        options.setdefault("timeout_s", 10.0)
        sandbox = Sandbox(self.layer, FunctionSpec(handler="app.handler", code_dir=self.code_dir),
                          settings, function_name="fault-fn", freeze=True, **options)
        self.made.append(sandbox)
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        return sandbox

    def run(self, env: dict[str, str], **options: Any) -> Run:
        """A sandbox wrapped in a ``Run`` that counts what reaches the receiver."""
        budget = float(env.get("HTTP_FLUSH_BUDGET_MS", DEFAULT_BUDGET_MS))
        return Run(self.sandbox(env, **options), self.receiver.record, self.pushes, budget)

    def close(self) -> None:
        for sandbox in self.made:
            sandbox.shutdown()


# --- the results file -------------------------------------------------------------------------


class Results:
    """Appends one JSON line per scenario to ``results.jsonl`` (the report keeps the last per id)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "results.jsonl"

    def write(self, figures: Mapping[str, Any]) -> None:
        """One scenario's figures, tagged with the test that measured them."""
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        self._append({**figures, "test": test, "written_at": time.time()})

    def outcome(self, test: str, outcome: str) -> None:
        """A test's pass/fail, written after its assertions ran (the report joins on ``test``)."""
        self._append({"test": test, "outcome": outcome, "written_at": time.time()})

    def _append(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
