"""What ``Transformer.encode`` costs per line, on the lines functions typically print.

Four kinds of 1,000 events each: the Python runtime's Text lines (the bench's mix,
``telemetry_data.function_events``), plain ``print`` lines, JSON-format records (what
awslambdaric's JSON logger sends) and platform events (start, runtimeDone, report).

    python -m tools.bench.encode_cost               # timeit: best of 15, µs per line
    python -m tools.bench.encode_cost --callgrind   # instructions per line (valgrind)

Wall-clock figures on a shared machine move by 10-30 % from run to run; instruction counts
under callgrind (1,000-line rounds, 3 rounds minus 0 rounds, ``PYTHONHASHSEED=0``) move by about
1 %, which is what tells a small regression from noise. To compare with another revision, point
``--tree`` at a copy of it (its ``lambda_logs_http`` is measured), e.g.
``git archive main | tar -x -C /tmp/main && python -m tools.bench.encode_cost --tree /tmp/main``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import timeit

from tools.bench.telemetry_data import function_events

REQUEST_ID = "8f5c6a4e-2b1d-4c3e-9f0a-1b2c3d4e5f60"
KINDS = ("text", "plain", "json", "platform")


def events(kind: str) -> list[dict[str, object]]:
    text = function_events(REQUEST_ID, 1000)
    if kind == "text":
        return list(text)
    if kind == "plain":
        return [{"time": e["time"], "type": "function", "record": f"plain print line {i} ok\n"}
                for i, e in enumerate(text)]
    if kind == "json":
        return [{"time": e["time"], "type": "function",
                 "record": {"timestamp": e["time"], "level": "INFO", "message": f"order {i} done",
                            "logger": "root", "requestId": REQUEST_ID, "amount": i * 1.5,
                            "ok": True}}
                for i, e in enumerate(text)]
    stamp = text[0]["time"]
    cycle = [
        {"time": stamp, "type": "platform.start",
         "record": {"requestId": REQUEST_ID, "version": "$LATEST"}},
        {"time": stamp, "type": "platform.runtimeDone",
         "record": {"requestId": REQUEST_ID, "status": "success",
                    "metrics": {"durationMs": 12.5, "producedBytes": 100}}},
        {"time": stamp, "type": "platform.report",
         "record": {"requestId": REQUEST_ID, "status": "success",
                    "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 128,
                                "maxMemoryUsedMB": 60}}},
    ]
    return (cycle * 334)[:1000]


def encoder() -> object:
    from lambda_logs_http.records.transform import EntryContext, Transformer

    return Transformer(EntryContext("bench", "$LATEST", 1024, "us-east-1", "x86_64")).encode


def run_rounds(kind: str, rounds: int) -> None:
    """Encode ``rounds`` times 1,000 events (the process callgrind counts)."""
    encode = encoder()
    batch = events(kind)
    for event in batch[:50]:  # warm up: the counted rounds are steady state
        encode(event)  # type: ignore[operator]
    for _ in range(rounds):
        for event in batch:
            encode(event)  # type: ignore[operator]


def timed() -> None:
    for kind in KINDS:
        encode = encoder()
        batch = events(kind)

        def run(batch: list[dict[str, object]] = batch, encode: object = encode) -> None:
            for event in batch:
                encode(event)  # type: ignore[operator]

        best = min(timeit.repeat(run, number=20, repeat=15)) / (20 * len(batch))
        print(f"{kind:9s} {best * 1e6:6.3f} µs/line  {1 / best:10,.0f} lines/s")


def counted(tree: str | None) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for kind in KINDS:
        totals = []
        for rounds in (0, 3):
            done = subprocess.run(
                [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                 "-m", "tools.bench.encode_cost", "--rounds", kind, str(rounds),
                 *(["--tree", tree] if tree else [])],
                capture_output=True, text=True, env=env, timeout=600, check=True,
            )
            found = re.search(r"Collected : (\d+)", done.stderr)
            assert found, done.stderr[-500:]
            totals.append(int(found.group(1)))
        print(f"{kind:9s} {(totals[1] - totals[0]) // 3000:7,d} instructions/line")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under valgrind instead of timing")
    parser.add_argument("--tree", metavar="DIR",
                        help="measure the lambda_logs_http in DIR (default: this one)")
    parser.add_argument("--rounds", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, os.path.abspath(args.tree))
    import lambda_logs_http

    if not args.rounds:
        print(f"lambda_logs_http from {os.path.dirname(lambda_logs_http.__file__)}, "
              f"Python {sys.version.split()[0]}")
    if args.rounds:
        run_rounds(args.rounds[0], int(args.rounds[1]))
        return 0
    if args.callgrind:
        return counted(args.tree)
    timed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
