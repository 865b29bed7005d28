"""Where the extension's CPU goes during a cold start, by phase (a profiling tool).

    python -m tools.bench.init_profile                        # build the layer, 128 MB, 5 runs
    python -m tools.bench.init_profile --layer dist/layer --memory 512 --runs 9

Method. The built layer is copied to a temporary directory and its launcher's ``-c`` code gets a
prelude (nothing in ``lambda_logs_http`` changes): an audit hook (``sys.addaudithook``) that
stamps, with ``time.monotonic_ns()``, the process CPU time and the thread's CPU time, every
module import, every socket ``connect`` and ``bind`` and every thread start; the stamps are
written out at exit. The copy then runs in ``lambda_sandbox`` with Lambda's CPU share
(``limit_cpu=True``) and the sample function, one fresh sandbox per run. Landmarks:

* the prelude's first stamp: the interpreter is up (process CPU so far = the ``sh`` trampoline
  and launcher plus Python's own start: CPU time survives ``exec``);
* the main thread's first ``connect``: the register request goes out (the client opens one
  connection per request), the next stamp after it: its answer was handled;
* the second ``connect``: subscribe; the third: the first ``/event/next`` (its gate opened
  just before, letting the worker start its imports);
* init end (every process called ``next``; the sandbox freezes the environment there) and the
  end of the first invocation (frozen again): per-thread CPU from ``/proc/PID/task/*/schedstat``,
  thread names from the prelude.

A second pass, unconstrained, adds ``-X importtime`` to the interpreter's options: import
times are wall-clock, which only equals CPU time when nothing throttles the process. Each
module is attributed to the phase (and thread) that imported it from the audit stamps.

The hook costs a few microseconds per event (~100 events): it does not change the picture,
but the totals are a little above the uninstrumented layer's (see ``make bench``, section 6).
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import statistics
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

from . import machine, procs

NAME = "lambda-logs-http"
PROFILE_ENV = "LLH_PROFILE_OUT"
# Inserted at the start of the launcher's -c code (which is in single quotes: none in here).
PRELUDE = r"""
import sys, time, _thread
_prof_events = []
_prof_names = {}
_prof_kept = ("import", "socket.connect", "socket.bind", "_thread.start_new_thread")


def _prof_hook(event, args):
    if event not in _prof_kept:
        return
    tid = _thread.get_native_id()
    if tid not in _prof_names:
        threading = sys.modules.get("threading")
        active = getattr(threading, "_active", {}) if threading is not None else {}
        thread = active.get(_thread.get_ident())
        if thread is not None:
            _prof_names[tid] = thread.name
    if event == "import":
        detail = str(args[0])
    elif event == "_thread.start_new_thread":
        detail = ""
    else:
        detail = str(args[1])
    _prof_events.append((event, detail, time.monotonic_ns(), time.process_time_ns(),
                         time.thread_time_ns(), tid))


_prof_events.append(("start", "", time.monotonic_ns(), time.process_time_ns(),
                     time.thread_time_ns(), _thread.get_native_id()))
sys.addaudithook(_prof_hook)


def _prof_dump():
    import os
    path = os.environ.get("LLH_PROFILE_OUT")
    if not path:
        return
    with open(path, "w") as out:
        for tid, name in _prof_names.items():
            out.write("name\t%s\t%d\t0\t0\t%d\n" % (name, 0, tid))
        for event in _prof_events:
            out.write("\t".join(str(x) for x in event) + "\n")


import atexit
atexit.register(_prof_dump)
"""
LAUNCHER_CODE_START = "-I -S -B -u -c '"
AFTER_NEXT = "after the first /event/next, during init"
LISTENER = "lambda-logs-http-listener"  # started with _thread: named here, not by threading
INVOCATION = "during the first invocation"


@dataclass
class Event:
    kind: str
    detail: str
    mono: float  # seconds
    cpu: float  # process CPU, ms
    thread_cpu: float  # this thread's CPU, ms
    tid: int


@dataclass
class Run:
    """One cold start of the instrumented layer."""

    phases_cpu: dict[str, float] = field(default_factory=dict)  # ms of CPU
    walls: dict[str, float] = field(default_factory=dict)  # ms after initStart
    threads_init: dict[str, float] = field(default_factory=dict)  # CPU after next → init end
    threads_invoke: dict[str, float] = field(default_factory=dict)  # CPU in the 1st invocation
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # module → (phase, thread)
    import_cpu: dict[str, float] = field(default_factory=dict)  # module → CPU ms (see _analyse)
    importtime: dict[str, tuple[int, int]] = field(default_factory=dict)  # module → (self, cum µs)


def instrumented_copy(layer: Path, dest: Path, importtime: bool = False) -> Path:
    """A copy of ``layer`` whose launcher runs :data:`PRELUDE` first (and ``-X importtime``)."""
    shutil.copytree(layer, dest, symlinks=True)
    launcher = dest / "extensions" / NAME
    text = launcher.read_text()
    if text.count(LAUNCHER_CODE_START) != 1:
        raise SystemExit(f"{launcher}: expected one {LAUNCHER_CODE_START!r}; the launcher changed, "
                         "update tools/bench/init_profile.py")
    options = "-X importtime " if importtime else ""
    text = text.replace(LAUNCHER_CODE_START, options + LAUNCHER_CODE_START + PRELUDE)
    launcher.write_text(text)
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    return dest


def _read_events(path: Path) -> tuple[list[Event], dict[int, str]]:
    events: list[Event] = []
    names: dict[int, str] = {}
    for line in path.read_text().splitlines():
        kind, detail, mono, cpu, thread_cpu, tid = line.split("\t")
        if kind == "name":
            names[int(tid)] = detail
            continue
        events.append(Event(kind, detail, int(mono) / 1e9, int(cpu) / 1e6, int(thread_cpu) / 1e6,
                            int(tid)))
    return events, names


def _thread_cpu(pid: int) -> dict[int, float]:
    """ms of CPU by thread id (schedstat)."""
    return {tid: seconds * 1000 for tid, seconds in procs.thread_cpu_seconds(pid).items()}


def _extension_state(sandbox: Sandbox) -> Any:
    for state in getattr(getattr(sandbox, "_extensions_api", None), "states", []):
        if state.name == NAME:
            return state
    raise RuntimeError("Sandbox._extensions_api.states is gone or has no lambda-logs-http: "
                       "update tools/bench/init_profile.py")


def run_once(layer: Path, python: str, memory_mb: int | None, receiver: Receiver,
             tmp: Path, index: int) -> Run:
    out = tmp / f"events-{index}.tsv"
    env = {"HTTP_ENDPOINT": receiver.url, "HTTP_LISTENER_PORT": str(procs.free_port()),
           "HTTP_SPILL_DIR": str(tmp / f"spill-{index}"), "LAMBDA_LOGS_HTTP_PYTHON": python,
           PROFILE_ENV: str(out)}
    sandbox = Sandbox(layer, FunctionSpec(), env, timeout_s=30.0, memory_mb=memory_mb or 128,
                      limit_cpu=memory_mb is not None, function_name="bench-profile",
                      init_timeout_s=30.0)
    try:
        init = sandbox.start()
        if not init.ok:
            raise RuntimeError(f"init failed: {init.error}: {sandbox.extension_output[-3:]}")
        state = _extension_state(sandbox)
        t0 = state.registered_at - (init.extensions_registered_ms or 0.0) / 1000
        pid = sandbox.pids()[NAME]
        at_init_end = _thread_cpu(pid)
        result = sandbox.invoke({"lines": 1})
        if result.status != "success":
            raise RuntimeError(f"invocation {result.status}: {result.error}")
        after_invoke = _thread_cpu(pid)
    finally:
        sandbox.shutdown()
        output = list(sandbox.extension_output)
    if not out.exists():
        raise RuntimeError(f"the instrumented extension wrote no events: {output[-5:]}")
    events, names = _read_events(out)
    run = _analyse(events, names, pid, t0, init, at_init_end, after_invoke)
    for line in output:
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0][12:].strip().isdigit():
            module = parts[2].strip()
            run.importtime[module] = (int(parts[0][12:]), int(parts[1]))
    return run


def _analyse(events: list[Event], names: dict[int, str], pid: int, t0: float, init: Any,
             at_init_end: dict[int, float], after_invoke: dict[int, float]) -> Run:
    main = [e for e in events if e.tid == pid]
    connects = [i for i, e in enumerate(main) if e.kind == "socket.connect"]
    if len(connects) < 3:
        raise RuntimeError(f"expected register, subscribe and /event/next connects, got "
                           f"{len(connects)} (not subscribed?)")
    start, register, subscribe, first_next = (main[0], main[connects[0]], main[connects[1]],
                                              main[connects[2]])
    answered = main[connects[0] + 1]
    run = Run()
    run.phases_cpu = {
        "interpreter start (sh trampoline + launcher, Python's start)": start.cpu,
        "package imports + configuration, until the register request": register.cpu - start.cpu,
        "register: request sent → answer handled": answered.cpu - register.cpu,
        "set-up: listener bind, threads start, until the subscribe request":
            subscribe.cpu - answered.cpu,
        "subscribe: request sent → first /event/next sent": first_next.cpu - subscribe.cpu,
        "= before the first /event/next (all threads)": first_next.cpu,
        "after the first /event/next, until init ends (all threads)":
            sum(at_init_end.values()) - first_next.cpu,
        "first invocation (all threads)": sum(after_invoke.values()) - sum(at_init_end.values()),
    }
    run.walls = {
        "interpreter up": (start.mono - t0) * 1000,
        "register sent": (register.mono - t0) * 1000,
        "subscribe sent": (subscribe.mono - t0) * 1000,
        "first /event/next sent": (first_next.mono - t0) * 1000,
        "runtime ready (/invocation/next)": init.runtime_ready_ms or 0.0,
        "init end": init.duration_ms,
    }
    names = {pid: "main", **{tid: n for tid, n in names.items() if tid != pid}}
    for event in events:  # a _thread thread has no name: the listener's is the one started first
        if event.tid not in names:
            names[event.tid] = (LISTENER if event.mono <= first_next.mono
                                else f"thread {event.tid}")
    # What each thread had used when the main thread sent its first /event/next.
    before: dict[int, float] = defaultdict(float)
    for event in events:
        if event.mono <= first_next.mono:
            before[event.tid] = max(before[event.tid], event.thread_cpu)
    for tid, cpu in at_init_end.items():
        label = names.get(tid, f"thread {tid}")
        run.threads_init[label] = cpu - before.get(tid, 0.0)
        run.threads_invoke[label] = after_invoke.get(tid, cpu) - cpu
    # Per module: the thread's CPU from the import's stamp to that thread's next stamp, i.e.
    # finding and loading it and running its body up to its own first import (nested imports
    # get the rest). Not import time in -X importtime's sense, but CPU, whatever the throttling.
    # An import still running when init ended is cut there (the rest is the invocation's).
    init_end = t0 + init.duration_ms / 1000
    by_thread: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_thread[event.tid].append(event)
    for tid, thread_events in by_thread.items():
        for event, following in zip(thread_events, thread_events[1:]):
            if event.kind != "import" or event.detail in run.imports:
                continue
            end_cpu = following.thread_cpu
            if event.mono > init_end:
                phase = INVOCATION
            elif event.mono > first_next.mono:
                phase = AFTER_NEXT
                if following.mono > init_end:
                    end_cpu = min(end_cpu, at_init_end.get(tid, end_cpu))
            elif event.mono <= register.mono:
                phase = "before register"
            else:
                phase = "register → first /event/next"
            run.imports[event.detail] = (phase, names.get(tid, f"thread {tid}"))
            run.import_cpu[event.detail] = max(0.0, end_cpu - event.thread_cpu)
    return run


def _median(values: list[float]) -> str:
    if not values:
        return "-"
    text = f"{statistics.median(values):7.1f}"
    return text + (f"  ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else "")


def report(runs: list[Run], timed: list[Run], memory_mb: int | None) -> list[str]:
    share = "unconstrained" if memory_mb is None else f"{memory_mb} MB"
    out = [f"lambda-logs-http init profile: {len(runs)} cold starts at {share} (CPU ms, median "
           "(range)); sample function on awslambdaric; instrumented copy of the layer", ""]
    out.append("CPU by phase")
    for phase in runs[0].phases_cpu:
        out.append(f"  {phase:<66} {_median([r.phases_cpu[phase] for r in runs])}")
    out += ["", "when (ms after initStart)"]
    for name in runs[0].walls:
        out.append(f"  {name:<66} {_median([r.walls[name] for r in runs])}")
    for title, attr in (("CPU by thread, first /event/next → init end", "threads_init"),
                        ("CPU by thread, first invocation", "threads_invoke")):
        out += ["", title]
        labels = sorted({label for r in runs for label in getattr(r, attr)})
        for label in labels:
            out.append(f"  {label:<66} "
                       f"{_median([getattr(r, attr).get(label, 0.0) for r in runs])}")
            if attr != "threads_init":
                continue
            imported = [sum(cpu for module, cpu in r.import_cpu.items()
                            if r.imports[module] == (AFTER_NEXT, label))
                        for r in runs]
            if any(imported):
                rest = [r.threads_init.get(label, 0.0) - i for r, i in zip(runs, imported)]
                out.append(f"    {'of which imports':<64} {_median(imported)}")
                out.append(f"    {'the rest (first pushes: parse, transform, batch, send)':<64} "
                           f"{_median(rest)}")
    out += ["", "imports by phase: CPU from each import's stamp to its thread's next stamp "
            "(ms, median of the sums)"]
    sums: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        totals: dict[str, float] = defaultdict(float)
        for module, cpu in r.import_cpu.items():
            phase, thread = r.imports[module]
            totals[f"{phase} [{thread}]"] += cpu
        for key, value in totals.items():
            sums[key].append(value)
    for key in sorted(sums, key=lambda k: -statistics.median(sums[k])):
        out.append(f"  {key:<66} {_median(sums[key])}")
    cpu_by_module: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        for module, cpu in r.import_cpu.items():
            cpu_by_module[module].append(cpu)
    out += ["", "  heaviest (CPU ms, median; module, phase [thread] of the first run that "
            "imported it: the worker and the listener race for json, re...):"]
    for module in sorted(cpu_by_module, key=lambda m: -statistics.median(cpu_by_module[m]))[:25]:
        phase, thread = runs[0].imports.get(module) or next(
            r.imports[module] for r in runs if module in r.imports)
        out.append(f"    {statistics.median(cpu_by_module[module]):6.2f}  {module:<40} "
                   f"{phase} [{thread}]")
    if timed:
        out += ["", f"imports by phase (-X importtime, wall-clock, so in threads it includes "
                f"waiting for the GIL; {len(timed)} unconstrained runs: self-time, median)"]
        per_phase: dict[str, list[float]] = defaultdict(list)
        modules: dict[str, list[int]] = defaultdict(list)
        placed: dict[str, tuple[str, str]] = {}
        for r in timed:
            totals: dict[str, float] = defaultdict(float)
            for module, (self_us, _) in r.importtime.items():
                phase, thread = r.imports.get(module, ("interpreter start", "before the prelude"))
                placed.setdefault(module, (phase, thread))
                totals[f"{phase} [{thread}]"] += self_us
                modules[module].append(self_us)
            for key, value in totals.items():
                per_phase[key].append(value)
        for key in sorted(per_phase, key=lambda k: -statistics.median(per_phase[k])):
            out.append(f"  {key:<66} {statistics.median(per_phase[key]) / 1000:7.1f} ms")
        out += ["", "  heaviest (µs self, median):"]
        heaviest = sorted(modules, key=lambda m: -statistics.median(modules[m]))[:15]
        for module in heaviest:
            phase, thread = placed[module]
            out.append(f"    {statistics.median(modules[module]):7.0f}  {module:<40} {phase} "
                       f"[{thread}]")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.init_profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=Path, help="unpacked layer (default: build one)")
    parser.add_argument("--memory", type=int, default=128,
                        help="memory size whose CPU share to run with (0: unconstrained)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--importtime-runs", type=int, default=3)
    parser.add_argument("--python", help="interpreter the extension runs on (real path)")
    args = parser.parse_args(argv)
    python = os.path.realpath(args.python) if args.python else machine.default_python()
    memory_mb = args.memory or None
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp_name:
        tmp = Path(tmp_name)
        if args.layer is not None:
            layer = args.layer.resolve()
        else:
            from .bench import build_layer
            layer = build_layer(tmp / "build")[0]
        stamped = instrumented_copy(layer, tmp / "stamped")
        timed_layer = instrumented_copy(layer, tmp / "importtime", importtime=True)
        runs: list[Run] = []
        timed: list[Run] = []
        with Receiver(tmp) as receiver:
            run_once(stamped, python, memory_mb, receiver, tmp, -1)  # warm-up (page cache)
            for index in range(max(args.runs, args.importtime_runs)):
                if index < args.runs:
                    runs.append(run_once(stamped, python, memory_mb, receiver, tmp, index))
                if index < args.importtime_runs:
                    timed.append(run_once(timed_layer, python, None, receiver, tmp,
                                          1000 + index))
    print("\n".join(report(runs, timed, memory_mb)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
