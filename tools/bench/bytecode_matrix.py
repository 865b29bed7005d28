"""Cold start per Python version, with and without the layer's precompiled bytecode.

    python -m tools.bench.bytecode_matrix [--runs 15] [--python PATH ...] [--json out.json]

Why: /opt is read-only on Lambda and the launcher runs Python with -B, so a version the zip
carries no ``cpython-3XY.pyc`` for compiles the whole package at every cold start. This measures
what that costs on each interpreter found (pyenv's 3.9-3.13 by their real paths, not the shims,
and CI's own ``.cache/python3.*/``), the same way as the bench's init section (``init_bench``):
process start → the first ``/event/next`` at the bench's fake Extensions API, through the
layer's launcher. One layer is built by build.sh with every interpreter; the "without" layer is
the same tree minus every ``__pycache__``. Runs are interleaved (each round runs every
interpreter with each layer once, in a rotating order), so the machine's drift hits all cells alike;
the table gives the median and the range, beside ``python -I -S -c pass`` on that interpreter.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import machine, procs
from .fake_lambda import FakeLambdaApi
from .figures import fmt_ms, summary
from .init_bench import InitSamples, _run_extension, _run_pass

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("with .pyc", "without .pyc")


def discover() -> list[str]:
    """One real interpreter per minor version 3.9+: pyenv's, then CI's own in .cache/."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    ours = glob.glob(str(REPO / ".cache" / "python3.*" / "bin" / "python3.*"))
    candidates += sorted(p for p in ours if not p.endswith("-config"))
    found: dict[tuple[int, int], str] = {}
    for path in candidates:
        version = _version(path)
        if version is not None and version >= (3, 9):
            found.setdefault(version, os.path.realpath(path))
    return [found[v] for v in sorted(found)]


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-I", "-S", "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=20, check=False).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def build_layers(pythons: list[str], out: Path) -> tuple[Path, Path, str]:
    """(layer with bytecode for ``pythons``, the same without any, build.sh's pyc line)."""
    env = {**os.environ, "OUT_DIR": str(out / "with"), "PYTHONS": " ".join(pythons)}
    result = subprocess.run(["bash", str(REPO / "build.sh")], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"build.sh failed:\n{result.stdout}\n{result.stderr}")
    pyc = next((line.split(None, 1)[1] for line in result.stdout.splitlines()
                if line.startswith("pyc ")), "?")
    with_pyc = out / "with" / "layer"
    without = out / "without"
    shutil.copytree(with_pyc, without, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return with_pyc, without, pyc


def measure(pythons: list[str], layers: dict[str, Path], runs: int, warmup: int) -> dict:
    samples = {(p, name): InitSamples() for p in pythons for name in layers}
    floors: dict[str, list[float]] = {p: [] for p in pythons}
    cells = [(p, name) for p in pythons for name in layers]
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as tmp_name:
        tmp = Path(tmp_name)
        for index in range(warmup + runs):
            record = index >= warmup
            shift = index % len(cells)
            for python, name in cells[shift:] + cells[:shift]:
                target = samples[(python, name)] if record else InitSamples()
                with FakeLambdaApi() as fake:
                    env = procs.base_env(fake.runtime_api, python, {
                        "HTTP_ENDPOINT": "http://127.0.0.1:9/ingest",  # never reached: no logs
                        "HTTP_LISTENER_PORT": str(procs.free_port()),
                        "HTTP_SPILL_DIR": str(tmp / f"spill-{index}"),
                    })
                    _run_extension([str(layers[name] / procs.LAUNCHER)], env, fake,
                                   tmp / "ext.out", target)
            for python in pythons:
                wall, _ = _run_pass(python)
                if record:
                    floors[python].append(wall)
    return {
        python: {
            "version": "%d.%d" % _version(python),  # noqa: UP031 (a tuple of two ints)
            "pass_ms": summary(floors[python]),
            **{name: {"ready_ms": summary(samples[(python, name)].ready),
                      "register_ms": summary(samples[(python, name)].register),
                      "failures": samples[(python, name)].failures[:3]}
               for name in layers},
        }
        for python in pythons
    }


def table(results: dict[str, Any]) -> list[str]:
    def cell(s: dict[str, Any]) -> str:
        return f"{fmt_ms(s['median'])} ({fmt_ms(s['min'])}-{fmt_ms(s['max'])})"

    lines = [
        "| Python | start → first /event/next, with .pyc | without .pyc | cost of no .pyc "
        "(medians) | `-I -S -c pass` |",
        "|---|---|---|---|---|",
    ]
    for python, row in results.items():
        with_s, without_s = row[LAYERS[0]]["ready_ms"], row[LAYERS[1]]["ready_ms"]
        delta = (None if with_s["median"] is None or without_s["median"] is None
                 else without_s["median"] - with_s["median"])
        lines.append(f"| {row['version']} (`{python}`) | {cell(with_s)} | {cell(without_s)} | "
                     f"+{fmt_ms(delta)} ms | {cell(row['pass_ms'])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append",
                        help="interpreter (real path); repeat; default: every one found")
    parser.add_argument("--runs", type=int, default=15, help="recorded runs per cell")
    parser.add_argument("--warmup", type=int, default=2, help="unrecorded rounds first")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    pythons = [os.path.realpath(p) for p in args.python] if args.python else discover()
    if not pythons:
        raise SystemExit("no Python 3.9+ interpreter found")
    busy = machine.busy_percent(1.0)
    with tempfile.TemporaryDirectory(prefix="bench-pyc-build-") as build_dir:
        with_pyc, without, pyc = build_layers(pythons, Path(build_dir))
        print(f"bytecode in the 'with' layer: {pyc}; {args.runs} runs per cell after "
              f"{args.warmup} warm-up rounds; CPUs {fmt_ms(busy, 0)}% busy before", flush=True)
        started = time.monotonic()
        results = measure(pythons, dict(zip(LAYERS, (with_pyc, without))), args.runs,
                          args.warmup)
    print(f"({time.monotonic() - started:.0f} s)")
    print("\n".join(table(results)))
    failures = {f"{p} {n}": row[n]["failures"] for p, row in results.items() for n in LAYERS
                if row[n]["failures"]}
    if failures:
        print("failed runs:", json.dumps(failures, indent=1)[:2000], file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"busy_before": busy, "pyc": pyc, "rows": results},
                                        indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
