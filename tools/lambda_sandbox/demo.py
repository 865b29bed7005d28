"""``make demo``: the built layer forwarding a real function's logs, in the local sandbox.

A sample Python function (print, ``logging`` at every level, a JSON line, an exception) runs on
AWS's own runtime client; the extension comes from the built layer; the sandbox freezes both
between invocations as Lambda does, and the last invocation times out. Without ``HTTP_ENDPOINT``
an embedded receiver records what arrives and the demo shows it; with it (and the auth
variables), the logs go to your endpoint instead.

It ends with what a user cares about: records Lambda handed the extension, records received,
records lost (must be 0), and the time the extension added to cold start and invocations.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import SAMPLE_FUNCTION_DIR, FunctionSpec
from .lifecycle import Sandbox
from .receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
OWN_PREFIX = "[EXTENSION]"
# Settings of the user's shell that configure the extension (HTTP_*), passed to the function.
_FORWARDED_PREFIXES = ("HTTP_",)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=Path, default=REPO / "dist" / "layer",
                        help="unpacked layer (default: dist/layer from build.sh)")
    parser.add_argument("--invocations", type=int, default=4,
                        help="normal invocations, before the one that times out (default 4)")
    parser.add_argument("--lines", type=int, default=3, help="extra lines each invocation prints")
    parser.add_argument("--log-format", choices=("Text", "JSON"), default="Text")
    parser.add_argument("--no-timeout", action="store_true", help="skip the timed-out invocation")
    parser.add_argument("--quiet", action="store_true", help="don't show each received record")
    return parser.parse_args(argv)


def _show_entry(entry: dict[str, Any]) -> None:
    message = str(entry.get("message", "")).replace("\n", " ⏎ ").replace("\t", "  ")
    if len(message) > 110:
        message = message[:107] + "..."
    print(f"      {entry.get('level', '?'):5} {entry.get('log_type', '?'):9} {message}")


def _delivered_from_summary(lines: list[str]) -> int | None:
    for line in reversed(lines):
        match = re.search(r"shutdown summary: .*delivered=(\d+)", line)
        if match:
            return int(match.group(1))
    return None


def _forwardable(event: dict[str, Any]) -> bool:
    """Records the extension is meant to forward: all but its own ``[EXTENSION]`` lines."""
    record = event.get("record")
    return not (event.get("type") == "extension" and isinstance(record, str)
                and record.startswith(OWN_PREFIX))


def run(args: argparse.Namespace) -> int:
    layer = args.layer
    if not (layer / "extensions" / "lambda-logs-http").is_file():
        print(f"no built layer at {layer}: run `bash build.sh` (make demo does)", file=sys.stderr)
        return 2
    user_endpoint = os.environ.get("HTTP_ENDPOINT", "")
    workdir = Path(tempfile.mkdtemp(prefix="lambda-logs-http-demo-"))
    receiver = None if user_endpoint else Receiver(workdir)
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
    env.setdefault("HTTP_LISTENER_PORT", "0")  # any free port: the subscription names it
    # A fresh spill directory: batches left by an earlier demo must not count in this one.
    env.setdefault("HTTP_SPILL_DIR", str(workdir / "spill"))
    if receiver is not None:
        env["HTTP_ENDPOINT"] = receiver.url
    many = args.invocations > 10 or args.lines > 20
    quiet = args.quiet or many or receiver is None

    print(f"lambda-logs-http demo — layer {layer}")
    shown = env["HTTP_ENDPOINT"] if receiver is None else f"{receiver.url}  (embedded)"
    print(f"  receiver: {shown}")
    print(f"  function: sample function on awslambdaric, log format {args.log_format}, "
          f"{args.invocations} invocations + {'no' if args.no_timeout else 'one'} timeout\n")
    post_runtime: list[float] = []
    seen = 0
    sandbox = Sandbox(layer, FunctionSpec(handler="app.handler", code_dir=SAMPLE_FUNCTION_DIR),
                      env, timeout_s=2.0, log_format=args.log_format, function_name="demo-function")
    try:
        init = sandbox.start()
        if not init.ok:
            print(f"init failed: {init.error}\n" + "\n".join(sandbox.extension_output))
            return 1
        print(f"init: {init.duration_ms:.0f} ms in all; the extension had registered after "
              f"{init.extensions_registered_ms:.0f} ms and was ready after "
              f"{init.extensions_ready_ms:.0f} ms\n")
        events = [{"lines": args.lines}] * args.invocations
        if not args.no_timeout:
            events.append({"lines": 1, "sleep": 3})
        started = time.monotonic()
        for number, event in enumerate(events, 1):
            result = sandbox.invoke(event)
            added = result.post_runtime_extensions_ms
            if added is not None and result.status == "success":
                post_runtime.append(added)
            if many:
                if number % max(1, len(events) // 10) == 0 or number == len(events):
                    print(f"  {number}/{len(events)} invocations "
                          f"({time.monotonic() - started:.1f} s)", flush=True)
                continue
            added_text = f"{added:.1f} ms" if added is not None else "n/a"
            print(f"  invocation {number}: {result.status:7} in {result.duration_ms:6.1f} ms, "
                  f"extension added {added_text} after the response")
            if not quiet and receiver is not None:
                entries = receiver.entries()
                for entry in entries[seen:]:
                    _show_entry(entry)
                seen = len(entries)
        shutdown = sandbox.shutdown()
    finally:
        sandbox.shutdown()
        if receiver is not None:
            receiver.stop()

    own = [line for line in sandbox.extension_output if line.startswith(OWN_PREFIX)]
    if not quiet and receiver is not None:
        entries = receiver.entries()
        if entries[seen:]:
            print("  at shutdown:")
            for entry in entries[seen:]:
                _show_entry(entry)
    print("\nthe extension's own lines (CloudWatch only):")
    for line in own:
        print(f"  {line}")

    expected = sum(1 for e in sandbox.telemetry_events if _forwardable(e))
    received = len(receiver.entries()) if receiver is not None else _delivered_from_summary(own)
    lost = None if received is None else max(0, expected - received)
    print("\nsummary")
    print(f"  invocations                      {len(events)}")
    print(f"  records Lambda handed over       {expected}")
    label = "received by the receiver" if receiver is not None else "delivered (per the extension)"
    print(f"  records {label:25}{received if received is not None else 'unknown'}")
    print(f"  records lost                     {lost if lost is not None else 'unknown'}")
    if post_runtime:
        print(f"  added per invocation (median)    {statistics.median(post_runtime):.1f} ms "
              f"(max {max(post_runtime):.1f} ms; after the function's response)")
    # After the timeout, Lambda's reset already shut the extension down: report that exit.
    exits = [*[r.exit_codes for r in sandbox.resets], shutdown.exit_codes]
    codes = [c["lambda-logs-http"] for c in exits if c.get("lambda-logs-http") is not None]
    print(f"  extension exit codes             {', '.join(map(str, codes)) or 'n/a'}")
    ok = lost == 0
    print("\nOK: every record arrived" if ok else "\nrecords were lost: see the lines above")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    logging_quiet = os.environ.get("DEMO_DEBUG") is None
    if logging_quiet:
        import logging

        logging.getLogger("lambda_sandbox").setLevel(logging.WARNING)
    return run(_parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
