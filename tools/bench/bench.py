"""lambda-logs-http benchmark: init, post-runtime, throughput, memory, hotspots, cold start.

    python -m tools.bench.bench          # full (~13 min): make bench
    python -m tools.bench.bench --quick  # < 60 s, fewer runs, 20k records, 100 lines

It builds the layer from the working tree (``build.sh`` into a temporary directory; ``--layer``
to use one already built), prints the machine and one table per section, and saves everything
as JSON in ``tools/bench/results/<UTC timestamp>.json`` (git-ignored) and ``--json PATH`` if given.

It measures, never asserts: each of the project's targets is shown as met / NOT met beside its
row. Sections are independent; a section or row that fails is reported as an error row and the
others still run, so one regression never hides the rest of the picture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import cold_start, hotspots, init_bench, machine, post_runtime, procs, report, throughput

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "tools" / "bench" / "results"
SECTIONS = ("init", "post", "throughput", "cold")


@dataclass(frozen=True)
class Settings:
    """How much of each section to run: ``full()`` for the published figures, ``quick()`` for CI."""

    mode: str
    init_runs: int
    invocations: int
    line_counts: tuple[int, ...]
    records: int
    throughput_repeats: int
    receiver_requests: int
    profile: bool
    cold_rounds: int

    @staticmethod
    def full() -> Settings:
        return Settings("full", init_runs=40, invocations=30, line_counts=(0, 100, 10_000),
                        records=1_000_000, throughput_repeats=3, receiver_requests=200,
                        profile=True, cold_rounds=20)

    @staticmethod
    def quick() -> Settings:
        return Settings("quick", init_runs=5, invocations=8, line_counts=(100,),
                        records=20_000, throughput_repeats=1, receiver_requests=20,
                        profile=False, cold_rounds=2)


def expected_rows(settings: Settings, sections: tuple[str, ...] = SECTIONS) -> list[str]:
    """Every row id a run with ``settings`` produces (the quick-mode test checks them all)."""
    rows: list[str] = []
    if "init" in sections:
        rows += [f"init.{name}" for name in (init_bench.PASS_FLOOR, init_bench.MINIMAL_FLOOR,
                                              init_bench.EXTENSION)]
    if "post" in sections:
        rows += post_runtime.expected_rows(list(settings.line_counts))
    if "throughput" in sections:
        rows += throughput.expected_rows()
    if "cold" in sections:
        rows += cold_start.expected_rows()
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.bench", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs, 20k records, 100 lines only (< 60 s)")
    parser.add_argument("--python", help="interpreter the extension runs on, by its real path "
                                         "(default: pyenv's 3.12, else /var/lang/bin/python3)")
    parser.add_argument("--layer", type=Path, help="an unpacked layer to use instead of "
                                                    "building one (dist/layer after build.sh)")
    parser.add_argument("--standalone-layer", type=Path,
                        help="the unpacked standalone layer for the cold-start section (default: "
                             "assembled from .cache/standalone/ when the interpreter is built "
                             "there, else its rows are skipped)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where <timestamp>.json goes (default: tools/bench/results)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, help="init runs per variant")
    parser.add_argument("--invocations", type=int, help="measured invocations per line count")
    parser.add_argument("--lines", help="comma-separated function line counts, e.g. 0,100,10000")
    parser.add_argument("--records", type=int, help="records in the throughput stream")
    parser.add_argument("--repeats", type=int, help="throughput runs per variant (median kept)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile one throughput run with py-spy (default: on in full mode)")
    parser.add_argument("--cold-rounds", type=int,
                        help="cold-start rounds (every memory size and variant once each)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings.quick() if args.quick else Settings.full()
    changes: dict[str, Any] = {}
    if args.runs:
        changes["init_runs"] = args.runs
    if args.invocations:
        changes["invocations"] = args.invocations
    if args.lines:
        changes["line_counts"] = tuple(int(x) for x in args.lines.split(",") if x.strip())
    if args.records:
        changes["records"] = args.records
    if args.repeats:
        changes["throughput_repeats"] = args.repeats
    if args.profile is not None:
        changes["profile"] = args.profile
    if args.cold_rounds:
        changes["cold_rounds"] = args.cold_rounds
    return Settings(**{**asdict(base), **changes})


def build_standalone_layer(out_dir: Path) -> Path | None:
    """The standalone layer for this machine's architecture, from the cached interpreter only
    (``build-standalone.sh`` with STANDALONE_REUSE_ONLY: seconds, never a build of minutes)."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine)
    if arch is None:
        return None
    env = {**os.environ, "OUT_DIR": str(out_dir), "STANDALONE_REUSE_ONLY": "1"}
    result = subprocess.run(["bash", str(REPO / "build-standalone.sh"), arch], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        return None
    return out_dir / f"standalone-{arch}" / "layer"


def build_layer(out_dir: Path) -> tuple[Path, dict[str, str]]:
    """``bash build.sh`` into ``out_dir``: the bench measures what the working tree builds."""
    env = {**os.environ, "OUT_DIR": str(out_dir)}
    result = subprocess.run(["bash", str(REPO / "build.sh")], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"build.sh failed:\n{result.stdout}\n{result.stderr}")
    info = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("sha256", "version", "pyc", "size"):
            info[key] = value.strip()
    return out_dir / "layer", info


def _say(text: str = "") -> None:
    print(text, flush=True)


def _section(name: str, function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    meter = procs.LoadMeter()
    try:
        with meter:
            result = function(*args, **kwargs)
    except Exception as exc:  # a broken section must not hide the others
        _say(f"  {name} failed: {type(exc).__name__}: {exc}")
        result = exc
    _OTHER_LOAD[name] = meter.other_percent
    if meter.other_percent is not None:
        _say(f"  (other processes used {meter.other_percent:.0f}% of one CPU during this "
             "section" + (": noisy, compare with an idle run)" if meter.other_percent > 10
                         else ")"))
    return result, time.monotonic() - started


# Per section: % of one CPU that other processes used meanwhile (see procs.LoadMeter).
_OTHER_LOAD: dict[str, float | None] = {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    python = os.path.realpath(args.python) if args.python else machine.default_python()
    busy_before = machine.busy_percent(1.0)
    started_at = time.time()
    started = time.monotonic()
    rows: dict[str, Any] = {}
    timings: dict[str, float] = {}
    profile: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        build: dict[str, str] = {}
        if args.layer:
            layer = args.layer.resolve()
        else:
            layer, build = build_layer(tmp / "build")
        info = machine.describe(python, layer, busy_before)
        _say(f"lambda-logs-http benchmark, {settings.mode} mode, "
             f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started_at))}")
        for line in machine.lines(info):
            _say(line)
        if build:
            _say(f"layer     built from the working tree, sha256 {build.get('sha256', '?')[:16]}…"
                 f", bytecode for {build.get('pyc', '?')}")

        if "init" in sections:
            _say(f"\n… init: {settings.init_runs} runs of each variant")
            result, timings["init"] = _section("init", init_bench.run, python, layer,
                                               settings.init_runs)
            for name in (init_bench.PASS_FLOOR, init_bench.MINIMAL_FLOOR, init_bench.EXTENSION):
                if isinstance(result, Exception):
                    rows[f"init.{name}"] = {"status": "error", "note": str(result)[:300]}
                    continue
                row = dict(result[name])
                failures = row.get("failures") or []
                row["status"] = "ok" if row["ready_ms"]["n"] and not failures else "error"
                if failures:
                    row["note"] = f"{len(failures)} failed run(s): {failures[0][:200]}"
                rows[f"init.{name}"] = row
            _say("\n".join(report.init_section(rows)))

        if "post" in sections:
            counts = list(settings.line_counts)
            _say(f"\n… post-runtime: {settings.invocations} invocations per row, lines {counts}")
            result, timings["post"] = _section("post", post_runtime.run, layer, python, counts,
                                               settings.invocations)
            if isinstance(result, Exception):
                result = {key: {"status": "error", "note": str(result)[:300]}
                          for key in post_runtime.expected_rows(counts)}
            rows.update(result)
            _say("\n".join(report.post_section(rows, counts)))

        if "throughput" in sections:
            profile_to = tmp / "profile.txt" if settings.profile else None
            if profile_to is not None and throughput.py_spy() is None:
                profile = {"status": "skipped", "note": "py-spy not installed "
                                                        "(pip install -r requirements-dev.txt)"}
                profile_to = None
            _say(f"\n… throughput: {settings.records:,} records, "
                 f"{settings.throughput_repeats} run(s) per variant"
                 + (", then one profiled run" if profile_to else ""))
            result, timings["throughput"] = _section(
                "throughput", throughput.run, layer, python, settings.records,
                profile_to=profile_to, receiver_requests=settings.receiver_requests,
                repeats=settings.throughput_repeats)
            if isinstance(result, Exception):
                result = {key: {"status": "error", "note": str(result)[:300]}
                          for key in throughput.expected_rows()}
            profile_run = result.pop("profile_run", None)
            rows.update(result)
            variants = list(throughput.VARIANTS)
            _say("\n".join(report.throughput_section(rows, variants)))
            _say("\n" + "\n".join(report.memory_section(rows, variants)))
            if profile_to is not None:
                profile = _profile_summary(profile_run, profile_to)
            if profile:
                _say("\n" + "\n".join(report.hotspots_section(profile)))

        if "cold" in sections:
            _say(f"\n… cold start: {settings.cold_rounds} rounds of "
                 f"{len(cold_start.MEMORY_SIZES)} CPU shares x {len(cold_start.VARIANTS)} "
                 "variants, interleaved")
            standalone = (args.standalone_layer.resolve() if args.standalone_layer
                          else build_standalone_layer(tmp / "standalone"))
            if standalone is None:
                _say("  (no standalone layer: make build_standalone_x86 builds its interpreter)")
            result, timings["cold"] = _section("cold", cold_start.run, layer, python,
                                               settings.cold_rounds, standalone=standalone)
            if isinstance(result, Exception):
                result = {key: {"status": "error", "note": str(result)[:300]}
                          for key in cold_start.expected_rows()}
            rows.update(result)
            _say("\n".join(report.cold_start_section(rows)))

    info["load_average_after"] = machine.load_average()
    missing = [key for key in expected_rows(settings, sections) if key not in rows]
    for key in missing:
        rows[key] = {"status": "error", "note": "row not produced"}
    results = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "duration_s": time.monotonic() - started,
        "section_seconds": timings,
        "section_other_load_percent": dict(_OTHER_LOAD),
        "settings": asdict(settings),
        "sections": list(sections),
        "machine": info,
        "build": build,
        "expected_rows": expected_rows(settings, sections),
        "rows": rows,
        "profile": profile,
    }
    saved = _save(results, started_at, args.results_dir, args.json)
    errors = [key for key, row in rows.items() if row.get("status") == "error"]
    _say(f"\n{len(rows)} rows ({len(errors)} errors) in {results['duration_s']:.0f} s; "
         f"saved {', '.join(str(p) for p in saved)}")
    return 0


def _profile_summary(run: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    if not run or run.get("status") != "ok" or not path.exists():
        note = (run or {}).get("note") or "the profiled run produced no profile"
        log = path.with_suffix(".log")
        if log.exists():
            note += ": " + log.read_text(errors="replace")[-300:]
        return {"status": "error", "note": note}
    profile = hotspots.parse_file(path, run.get("thread_cpu_s"))
    profile.update(status="ok", records_per_s=run.get("records_per_s"),
                   thread_cpu_s=run.get("thread_cpu_s"), raw=path.read_text(errors="replace"))
    return profile


def _save(results: dict[str, Any], started_at: float, directory: Path,
          extra: Path | None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at))
    paths = [directory / f"{stamp}.json"]
    if extra is not None:
        paths.append(extra)
    raw = (results.get("profile") or {}).pop("raw", None)
    if raw:
        # py-spy's collapsed stacks, for flamegraph.pl / speedscope; the JSON names the file.
        flame = directory / f"{stamp}.pyspy.txt"
        flame.write_text(raw)
        results["profile"]["raw_file"] = str(flame)
    text = json.dumps(results, indent=1, default=str)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return paths


if __name__ == "__main__":
    sys.exit(main())
