"""Cold start of several builds of the layer side by side, measured as section 6 measures it.

    python -m tools.bench.cold_compare before=/tmp/old/layer after=dist/layer
    python -m tools.bench.cold_compare after=dist/layer --memory 128 --rounds 30

For comparing two versions (a change and what it changes from) on a machine that drifts: every
round runs, at each memory size, the bundled sample function with no extension, with section 6's
floor (the minimal ``socket`` extension: register, subscribe, ``/event/next``) and with each
named layer, in an order that rotates from round to round, one fresh ``lambda_sandbox`` per run
with Lambda's CPU share for the memory size (``limit_cpu``; needs root, see
``tools/lambda_sandbox/cpu_share.py``); one unrecorded round first (page cache).

Per row, median (range) over the rounds: Lambda's init duration; "added" = median - the
no-extension median at that size, and "x floor" = added / the floor's added (section 6's
target: ≤ 1.3x at 128 MB, ≤ +5 ms over the floor at 1,769 MB); initStart → registered and →
ready (the extension's first ``/event/next``); the first invocation: invoke → response, init +
that (what the caller of a cold request waits for), and its post-runtime hold
(``PostRuntimeExtensionsDuration``: runtime response → the extension's ``/event/next``; billed,
and the environment takes no other request meanwhile); the extension's CPU (all threads,
schedstat) by the end of init and during the first invocation; its RSS after init. Work a
change moves out of init shows up in the last columns. An extension's own ``/event/next``
being late does not matter by itself: init ends when the runtime and every extension are ready.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

from . import cold_start, machine, procs

NONE = cold_start.NONE
FLOOR = cold_start.MINIMAL
COLUMNS = (
    ("init", "init"),
    ("registered", "→ registered"),
    ("ready", "→ ready"),
    ("invoke", "1st invoke"),
    ("first", "init + 1st response"),
    ("hold", "1st post-runtime hold"),
    ("cpu_init", "ext CPU by init end"),
    ("cpu_invoke", "ext CPU, 1st invoke"),
    ("rss", "RSS MiB"),
)


@dataclass
class Row:
    samples: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(name, []).append(value)

    def median(self, name: str) -> float | None:
        values = self.samples.get(name)
        return statistics.median(values) if values else None


def run_once(layer: Path | None, extension: str | None, memory_mb: int | None,
             env: dict[str, str], row: Row) -> None:
    """One cold start, one invocation, shutdown."""
    sandbox = Sandbox(layer, FunctionSpec(), env, timeout_s=30.0,
                      memory_mb=memory_mb or cold_start.UNCONSTRAINED_MEMORY_MB,
                      limit_cpu=memory_mb is not None, function_name="bench-cold",
                      init_timeout_s=30.0)
    try:
        init = sandbox.start()
        if not init.ok:
            row.failures.append(f"init failed: {init.error}")
            return
        pid = sandbox.pids().get(extension) if extension else None
        if extension and pid is None:
            row.failures.append(f"{extension} not running after init")
            return
        cpu_init = procs.cpu_seconds(pid) if pid else None  # frozen: nothing moves
        rss = procs.memory_kib(pid).get("VmRSS") if pid else None
        result = sandbox.invoke(cold_start.EVENT)
        if result.status != "success":
            row.failures.append(f"first invocation {result.status}: {result.error}")
            return
        cpu_invoke = procs.cpu_seconds(pid) if pid else None
        row.add("init", init.duration_ms)
        row.add("registered", init.extensions_registered_ms)
        row.add("ready", init.extensions_ready_ms)
        row.add("invoke", result.response_ms)
        if init.duration_ms is not None and result.response_ms is not None:
            row.add("first", init.duration_ms + result.response_ms)
        row.add("hold", result.post_runtime_extensions_ms)
        if cpu_init is not None:
            row.add("cpu_init", cpu_init * 1000)
            if cpu_invoke is not None:
                row.add("cpu_invoke", (cpu_invoke - cpu_init) * 1000)
        if rss is not None:
            row.add("rss", rss / 1024)
    finally:
        sandbox.shutdown()


def run(layers: dict[str, Path], python: str, rounds: int,
        memory_sizes: tuple[int | None, ...]) -> dict[tuple[int | None, str], Row]:
    rows: dict[tuple[int | None, str], Row] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-compare-") as tmp_name:
        tmp = Path(tmp_name)
        variants: dict[str, tuple[Path | None, str | None]] = {
            NONE: (None, None),
            FLOOR: (cold_start._minimal_layer(tmp / "floor", python, cold_start.MINIMAL_NAME,
                                              cold_start.MINIMAL_EXTENSION),
                    cold_start.MINIMAL_NAME),
            **{name: (path, cold_start.LAYER_NAME) for name, path in layers.items()},
        }
        names = list(variants)
        with Receiver(tmp) as receiver:
            for index in range(rounds + 1):  # round 0: warm-up, not recorded
                order = names[index % len(names):] + names[:index % len(names)]
                for memory_mb in memory_sizes:
                    for name in order:
                        layer, extension = variants[name]
                        row = rows.setdefault((memory_mb, name), Row()) if index else Row()
                        env = {} if extension is None else {
                            "HTTP_ENDPOINT": receiver.url,
                            "HTTP_LISTENER_PORT": str(procs.free_port()),
                            "HTTP_SPILL_DIR": str(tmp / f"spill-{index}-{name}"),
                            "LAMBDA_LOGS_HTTP_PYTHON": python,
                            "BENCH_MINIMAL_LISTENER_PORT": str(procs.free_port()),
                        }
                        try:
                            run_once(layer, extension, memory_mb, env, row)
                        except Exception as exc:  # one broken run must not end the comparison
                            row.failures.append(f"{type(exc).__name__}: {exc}")
                print(f"  round {index}/{rounds} done {time.strftime('%H:%M:%S')}",
                      file=sys.stderr, flush=True)
    return rows


def _cell(values: list[float] | None) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.0f}-{max(values):.0f})"


def report(rows: dict[tuple[int | None, str], Row], names: list[str],
           memory_sizes: tuple[int | None, ...], rounds: int) -> list[str]:
    out = [f"Cold start, {rounds} interleaved rounds: ms (MiB for RSS), median (range); "
           "sample function on awslambdaric; CPU limited to Lambda's share"]
    header = ["variant", "init", "added", "x floor", "- floor",
              *(title for _, title in COLUMNS[1:])]
    for memory_mb in memory_sizes:
        share = (cold_start.UNCONSTRAINED if memory_mb is None
                 else f"{memory_mb} MB ({cold_start.quota_us(memory_mb) / 1000:.1f} ms / 100 ms)")
        base = rows[(memory_mb, NONE)].median("init")
        floor = rows[(memory_mb, FLOOR)].median("init")
        floor_added = floor - base if floor is not None and base is not None else None
        table = [header]
        for name in [NONE, FLOOR, *names]:
            row = rows[(memory_mb, name)]
            median = row.median("init")
            added = median - base if median is not None and base is not None else None
            ratio = (f"{added / floor_added:.2f}" if added is not None and floor_added
                     and name != NONE else "")
            delta = (f"{added - floor_added:+.0f}" if added is not None and floor_added
                     is not None and name not in (NONE, FLOOR) else "")
            cells = [name, _cell(row.samples.get("init")),
                     "" if added is None or name == NONE else f"{added:+.0f}", ratio, delta]
            cells += [_cell(row.samples.get(key)) for key, _ in COLUMNS[1:]]
            table.append(cells)
            for failure in row.failures[:2]:
                table.append([f"  failed ({len(row.failures)}): {failure[:150]}"]
                             + [""] * (len(header) - 1))
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        out += ["", share]
        out += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                for line in table]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.cold_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("layers", nargs="+", metavar="NAME=LAYER",
                        help="an unpacked layer (as build.sh leaves in dist/layer) and its label")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--memory", default="0,128,512,1769",
                        help="memory sizes in MB, comma-separated (0: unconstrained)")
    parser.add_argument("--python", help="interpreter the extensions run on (real path)")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args(argv)
    layers: dict[str, Path] = {}
    for item in args.layers:
        name, sep, path = item.partition("=")
        if not sep or not name or name in (NONE, FLOOR) or name in layers:
            parser.error(f"{item!r}: give NAME=LAYER, names unique and not {NONE!r}/{FLOOR!r}")
        layers[name] = Path(path).resolve()
    memory_sizes = tuple(int(m) or None for m in args.memory.split(","))
    if any(m is not None for m in memory_sizes):
        unavailable = cold_start.cpu_share_available()
        if unavailable is not None:
            raise SystemExit(f"cannot limit the CPU here: {unavailable}")
    python = os.path.realpath(args.python) if args.python else machine.default_python()
    rows = run(layers, python, args.rounds, memory_sizes)
    print("\n".join(report(rows, list(layers), memory_sizes, args.rounds)))
    if args.json:
        args.json.write_text(json.dumps(
            {f"{m or 'unconstrained'}/{n}": {"samples": r.samples, "failures": r.failures}
             for (m, n), r in rows.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
