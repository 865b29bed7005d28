"""Hotspots from a py-spy profile of the extension (``py-spy record --format raw --threads``).

py-spy samples every thread of the running extension from outside: no change to how it is
started, and all threads (cProfile or pyinstrument inside the process see one thread; the
work here is on two). It runs with ``--gil --nonblocking`` (see ``throughput._start_profiler``):
each sample is the thread holding the GIL, read without stopping the process.

The split *between* threads is taken from ``/proc/PID/task/*/schedstat`` (``thread_cpu``), which
measures CPU time exactly, including C code that releases the GIL (socket I/O, zlib); py-spy's
samples give the breakdown *within* each thread. A function's percentage is its share of its
thread's samples times that thread's share of the extension's CPU time. Samples whose innermost
frame is a blocking wait (``Condition.wait``, a socket read, ``select``) are left out, in case
the GIL holder is caught just entering one.

Views, each a list of ``(name, samples, percent of the extension's CPU time)``:

* ``extension``: the innermost frame in ``lambda_logs_http/`` — "which of our functions is
  running, including the stdlib and C code it called": the list to optimise from;
* ``lines``: the same, by source line;
* ``leaf``: the innermost frame of any file (e.g. ``json/decoder.py:JSONDecoder.raw_decode``);
* ``threads``: each thread role's weight; ``by_thread``: the top functions within each thread.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

PACKAGE = "lambda_logs_http/"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Innermost frames that mean "blocked, waiting for something", not "working".
_WAIT_FUNCS = ("Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock", "Thread.join",
               "SocketIO.readinto", "socket.accept")
_WAIT_FILES = ("selectors.py",)
OUTSIDE = "(outside lambda_logs_http: server and thread frames)"


def _short(path: str) -> str:
    """``lambda_logs_http/worker.py`` for the extension, the path py-spy shows otherwise."""
    index = path.find(PACKAGE)
    return path[index:] if index >= 0 else path


def role(thread: str) -> str:
    """A thread's job, from the name py-spy reports."""
    if "worker" in thread:
        return "worker thread"
    if "process_request_thread" in thread:
        return "listener connection thread (reads and parses pushes)"
    if "listener" in thread or thread.startswith("thread ("):
        # Unnamed: the listener runs on a _thread thread (threading loads only after init).
        return "listener accept thread"
    if "MainThread" in thread:
        return "main thread"
    return thread or "other"


def _waiting(func: str, file: str) -> bool:
    return func.endswith(_WAIT_FUNCS) or file.endswith(_WAIT_FILES)


# /proc roles (see throughput._thread_roles) for py-spy's thread roles.
PROC_ROLES = {
    "worker thread": "worker",
    "listener connection thread (reads and parses pushes)": "listener connections",
    "listener accept thread": "listener accept + other",
    "main thread": "main",
}


def parse(text: str, thread_cpu: dict[str, float] | None = None) -> dict[str, Any]:
    """Summarise py-spy's raw (collapsed-stack) output; see the module docstring.

    ``thread_cpu``: CPU seconds by /proc role during the profiled run; without it, threads are
    weighted by their busy samples (biased, see above).
    """
    per_thread: dict[str, dict[str, Counter[str]]] = {}
    busy = waiting = 0
    for raw in text.splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        thread = ""
        if parts and parts[0].startswith("thread ("):
            thread = parts[0].split(":", 1)[1].strip() if ":" in parts[0] else parts[0]
            parts = parts[1:]
        frames = []
        for part in parts:
            match = _FRAME.match(part.strip())
            if match:
                frames.append((match["func"], _short(match["file"]), match["line"] or ""))
        if not frames:
            continue
        func, file, line = frames[-1]
        if _waiting(func, file):
            waiting += count
            continue
        busy += count
        views = per_thread.setdefault(role(thread), {
            "samples": Counter(), "extension": Counter(), "lines": Counter(),
            "leaf": Counter()})
        views["samples"]["all"] += count
        views["leaf"][f"{file}:{func}"] += count
        ours = [f for f in frames if f[1].startswith(PACKAGE)]
        if ours:
            func, file, line = ours[-1]
            views["extension"][f"{file}:{func}"] += count
            views["lines"][f"{file}:{line} ({func})"] += count
        else:
            views["extension"][OUTSIDE] += count

    # Each thread's weight: its share of the measured CPU time (or of busy samples).
    weights: dict[str, float] = {}
    measured = {name: (thread_cpu or {}).get(PROC_ROLES.get(name, ""), 0.0)
                for name in per_thread}
    total_cpu = sum(measured.values())
    for name, views in per_thread.items():
        if thread_cpu and total_cpu > 0:
            weights[name] = measured[name] / total_cpu
        else:
            weights[name] = views["samples"]["all"] / busy if busy else 0.0

    def merged(view: str, limit: int) -> list[tuple[str, int, float]]:
        share: dict[str, float] = {}
        samples: Counter[str] = Counter()
        for name, views in per_thread.items():
            n = views["samples"]["all"]
            for key, count in views[view].items():
                share[key] = share.get(key, 0.0) + 100.0 * weights[name] * count / n
                samples[key] += count
        ranked = sorted(share.items(), key=lambda item: -item[1])[:limit]
        return [(key, samples[key], pct) for key, pct in ranked]

    return {
        "samples": busy + waiting,
        "busy_samples": busy,
        "waiting_samples": waiting,
        "weighted_by": "measured thread CPU" if thread_cpu and total_cpu > 0 else "samples",
        "threads": sorted(((name, views["samples"]["all"], 100.0 * weights[name])
                           for name, views in per_thread.items()), key=lambda t: -t[2]),
        "extension": merged("extension", 15),
        "lines": merged("lines", 12),
        "leaf": merged("leaf", 15),
        "by_thread": {
            name: [(key, count, 100.0 * count / views["samples"]["all"])
                   for key, count in views["extension"].most_common(6)]
            for name, views in per_thread.items()},
    }


def parse_file(path: Path, thread_cpu: dict[str, float] | None = None) -> dict[str, Any]:
    return parse(path.read_text(errors="replace"), thread_cpu)
