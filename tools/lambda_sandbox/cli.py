"""``python -m tools.lambda_sandbox``: run a layer's extensions and a function, print a summary.

Meant for demos (``make demo``) and quick manual checks: it inits, invokes N times, shuts
down, and prints per phase what Lambda would bill and report, plus the processes' output.

``--memory MB`` also gives the processes Lambda's CPU share for that memory (a cgroup CPU
quota, see ``cpu_share``) and prints the cold start as a caller feels it: the init duration
and the first invocation's latency. Without ``--memory`` the memory size is 128 MB and the CPU
is not limited.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .config import SAMPLE_FUNCTION_DIR, FunctionSpec
from .cpu_share import CpuShareUnavailable
from .lifecycle import Sandbox

DEFAULT_MEMORY_MB = 128


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env expects NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.lambda_sandbox",
        description="Run Lambda extensions and a function locally, the way Lambda does.")
    parser.add_argument("--layer", type=Path, help="unpacked layer (with extensions/)")
    parser.add_argument("--handler", default="app.handler", help="module.function")
    parser.add_argument("--code", type=Path, default=SAMPLE_FUNCTION_DIR,
                        help="function code directory (default: the bundled sample function)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter with awslambdaric installed")
    parser.add_argument("--command", nargs="+", help="a bootstrap-style runtime instead")
    parser.add_argument("--invocations", type=int, default=1)
    parser.add_argument("--event", default='{"lines": 2}', help="event JSON for every invoke")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait (frozen) between invocations")
    parser.add_argument("--timeout", type=float, default=3.0, help="function timeout (s)")
    parser.add_argument("--memory", type=int, metavar="MB",
                        help="memory size (AWS_LAMBDA_FUNCTION_MEMORY_SIZE), and Lambda's CPU "
                             "share for it: 1 vCPU per 1,769 MB, as a cgroup CPU quota (needs "
                             f"root); default {DEFAULT_MEMORY_MB} MB with the CPU unlimited")
    parser.add_argument("--no-cpu-limit", action="store_true",
                        help="with --memory: set the memory size only, leave the CPU unlimited")
    parser.add_argument("--log-format", choices=("Text", "JSON"), default="Text")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--telemetry", choices=("full", "not-supported"), default="full")
    parser.add_argument("--no-freeze", action="store_true", help="do not SIGSTOP between invokes")
    parser.add_argument("--managed-instances", action="store_true")
    parser.add_argument("--snapstart", action="store_true",
                        help="SnapStart: snapshot after init, restore at the first invoke")
    parser.add_argument("--snapshot-freeze", type=float, default=1.0, metavar="S",
                        help="with --snapstart: how long the snapshot stays frozen")
    parser.add_argument("--tenant-id", metavar="ID",
                        help="tenant isolation: the tenant this environment serves")
    parser.add_argument("--function-name", default="demo")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--quiet", action="store_true", help="do not print process output")
    parser.add_argument("--verbose", action="store_true", help="log the sandbox's own debug")
    return parser


def _print_output(sb: Sandbox, start: int) -> int:
    for line in sb.output[start:]:
        text = line.text.rstrip("\n").replace("\n", "\n    | ")
        print(f"    | {line.source}: {text}")
    return len(sb.output)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="sandbox %(levelname)s %(name)s: %(message)s")
    try:
        event = json.loads(args.event)
    except ValueError as exc:
        raise SystemExit(f"--event is not JSON: {exc}") from exc
    function = FunctionSpec(handler=args.handler, code_dir=args.code, python=args.python,
                            command=args.command)
    try:
        sandbox = Sandbox(args.layer, function, _parse_env(args.env), timeout_s=args.timeout,
                          memory_mb=args.memory or DEFAULT_MEMORY_MB,
                          limit_cpu=args.memory is not None and not args.no_cpu_limit,
                          log_format=args.log_format, log_level=args.log_level,
                          function_name=args.function_name, telemetry=args.telemetry,
                          freeze=not args.no_freeze, managed_instances=args.managed_instances,
                          snapstart=args.snapstart, snapshot_freeze_s=args.snapshot_freeze,
                          tenant_id=args.tenant_id)
    except CpuShareUnavailable as exc:
        print(f"sandbox: {exc} (--no-cpu-limit)", file=sys.stderr)
        return 2
    with sandbox as sb:
        seen = 0
        print(f"sandbox: AWS_LAMBDA_RUNTIME_API={sb.runtime_api}")
        print(f"CPU   {sb.cpu_limit.describe()}" if sb.cpu_limit is not None
              else f"CPU   unlimited ({sb.config.memory_mb} MB memory size)")
        init = sb.start()
        print(f"INIT  ok={init.ok} duration={init.duration_ms:.1f} ms "
              f"extensions registered={_ms(init.extensions_registered_ms)} "
              f"ready={_ms(init.extensions_ready_ms)}"
              + (f" error={init.error}" if init.error else ""))
        for reg in sb.registrations:
            print(f"      extension {reg.name} registered for {list(reg.events)}")
        for sub in sb.telemetry_subscriptions:
            print(f"      {sub.extension} subscribed to {list(sub.types)} at {sub.uri} "
                  f"buffering={sub.buffering}")
        if not args.quiet:
            seen = _print_output(sb, seen)
        failures = 0 if init.ok else 1
        for n in range(1, args.invocations + 1):
            if n > 1 and args.pause:
                time.sleep(args.pause)
            restored = len(sb.restores)
            r = sb.invoke(event)
            failures += r.status != "success"
            for restore in sb.restores[restored:]:
                print(f"RESTORE after {restore.frozen_s:.1f} s frozen: "
                      f"{restore.broken}/{restore.connections} connections destroyed, "
                      f"duration={restore.duration_ms:.1f} ms")
            print(f"INVOKE {n} {r.request_id} status={r.status} "
                  f"response={_ms(r.response_ms)} duration={r.duration_ms:.1f} ms "
                  f"post-runtime extensions={_ms(r.post_runtime_extensions_ms)}"
                  + (f" (re-init {r.init.duration_ms:.1f} ms)" if r.init and n > 1 else ""))
            if r.status == "success":
                print(f"      response: {json.dumps(r.response)[:200]}")
            else:
                print(f"      error: {json.dumps(r.error)[:300]}")
            if not args.quiet:
                seen = _print_output(sb, seen)
            if n == 1 and init.ok and r.response_ms is not None:
                print(f"COLD START init {init.duration_ms:.1f} ms + first invocation "
                      f"{r.response_ms:.1f} ms (to its response) = "
                      f"{init.duration_ms + r.response_ms:.1f} ms")
        throttling = sb.cpu_stat()
        result = sb.shutdown()
        print(f"SHUTDOWN {result.reason} in {result.duration_ms:.1f} ms "
              f"exit codes={result.exit_codes} killed={result.killed}")
        if not args.quiet:
            _print_output(sb, seen)
        for name, stats in sb.delivery_stats().items():
            print(f"TELEMETRY {name}: {stats.events} events in {stats.batches} pushes, "
                  f"{stats.failed_attempts} failed tries, {stats.dropped_records} dropped")
        if throttling:
            print(f"CPU   throttled in {throttling.get('nr_throttled', 0)} of "
                  f"{throttling.get('nr_periods', 0)} periods")
    return 0 if failures == 0 else 1


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
