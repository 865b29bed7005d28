"""Processes the bench owns: starting the extension, reading its CPU time and memory, stopping it.

Everything is read from ``/proc`` (Linux only, like Lambda): CPU time per thread from
``/proc/PID/task/*/schedstat`` (nanoseconds; ``/proc/PID/stat`` counts 10 ms ticks, too coarse
for a 50 ms init), memory from ``/proc/PID/status`` (``VmRSS`` now, ``VmHWM`` the peak so far).
Processes are stopped by PID, never by name.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

LAUNCHER = Path("extensions") / "lambda-logs-http"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for ``HTTP_LISTENER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pin_prefix(cpus: Sequence[int] | None) -> list[str]:
    """``taskset -c LIST`` to prepend to a command, or nothing (unpinned, or no taskset)."""
    if not cpus or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cpus)]


def can_pin(cpus: Sequence[int]) -> bool:
    """Whether this machine has those CPUs and a way to pin to them."""
    try:
        available = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return False
    return shutil.which("taskset") is not None and set(cpus) <= available


def base_env(runtime_api: str, python: str, extra: Mapping[str, str]) -> dict[str, str]:
    """What Lambda gives an extension, plus the bench's settings; nothing from the shell."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        # The launcher's documented override: the interpreter under test, by its real path.
        "LAMBDA_LOGS_HTTP_PYTHON": python,
    }
    env.update(extra)
    return env


def start_extension(
    layer: Path,
    env: Mapping[str, str],
    stdout_path: Path,
    cpus: Sequence[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the built layer's launcher the way Lambda does (its own file name as argv[0])."""
    command = [*pin_prefix(cpus), str(layer / LAUNCHER)]
    with stdout_path.open("wb") as out:
        return subprocess.Popen(
            command, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, cwd=str(layer),
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """Wait for ``process`` to exit, then SIGTERM, then SIGKILL; its exit code (None if unknown)."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and process.poll() is None:
            try:
                process.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of ``pid``, by thread id (schedstat)."""
    found: dict[int, float] = {}
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                found[int(path.split("/")[-2])] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_seconds(pid: int) -> float | None:
    """CPU time of the live threads of ``pid`` (schedstat, ns resolution); None if gone."""
    threads = thread_cpu_seconds(pid)
    if threads:
        return sum(threads.values())
    return process_cpu_seconds(pid)


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (which may hold spaces), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of the whole process, exited threads included (``utime+stime``, 10 ms ticks)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def minor_faults(pid: int) -> int | None:
    """Page faults of the whole process served without I/O (``minflt``): each one a page the
    kernel mapped, most of them zeroed first, so a count that grows with the records shows
    memory taken from the kernel and given back again and again."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[7])


def settled_cpu_seconds(pid: int, quiet: float = 0.06, limit: float = 1.5) -> float | None:
    """CPU time once the process went idle (no CPU used for ``quiet`` s), at most after ``limit``.

    Why wait: the extension keeps importing ``http.server``/``http.client``/``ssl`` on its
    threads after calling ``/event/next``; that CPU competes with the function's runtime init
    on a small Lambda, so it belongs to the cold-start cost even though it is off the
    critical path.
    """
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now is None or last is None or now - last < 0.0005:
            return now
        last = now
    return last


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: everything but idle, iowait)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(values) - values[3] - (values[4] if len(values) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user + times.system


class LoadMeter:
    """How much CPU the rest of the machine used during a block (% of one CPU).

    Machine-wide busy time (/proc/stat) minus this process and every child it reaped (their
    CPU is in ``os.times()``'s children fields once waited for — the bench waits for all of its
    processes by the end of a section). Another session's test run on a shared machine shows
    up here, and tells how much to trust the section's numbers.
    """

    def __init__(self) -> None:
        self.other_percent: float | None = None
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        busy = machine_busy_seconds()
        if busy is None:
            return None
        times = os.times()
        ours = times.user + times.system + times.children_user + times.children_system
        return time.monotonic(), busy, ours

    def __enter__(self) -> LoadMeter:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.other_percent = max(0.0, 100.0 * other / (end[0] - self._start[0]))


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in KiB (empty when the process is gone)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    values[name] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return values


class RssSampler:
    """Samples ``VmRSS`` of a process every ``interval`` seconds on a thread, until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(2.0)
        return self.samples

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = memory_kib(self.pid).get("VmRSS")
            if rss is None:
                return
            self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)
