"""What ``Transformer.encode`` costs per line, on the lines functions typically print.

Four kinds of 1,000 events each: the Python runtime's Text lines (the bench's mix,
``telemetry_data.function_events``), plain ``print`` lines, JSON-format records (what
awslambdaric's JSON logger sends) and platform events (start, runtimeDone, report).

    python -m tools.bench.encode_cost               # timeit: best of 15, µs per line
    python -m tools.bench.encode_cost --callgrind   # instructions per line (valgrind)
    python -m tools.bench.encode_cost --callgrind --formats all   # every HTTP_FORMAT
    python -m tools.bench.encode_cost --callgrind --modes off,redact,all --kinds text,secrets
    python -m tools.bench.encode_cost --framing     # batching's cost per entry, per format
    python -m tools.bench.encode_cost --kernel --formats all   # kernel time, page faults

Each kind is measured in each chosen output format (``HTTP_FORMAT``; ``--formats``, default
``seed``) and mode (``--modes``, default ``redact``). A fifth kind, ``secrets``, is Text lines
each holding a secret of one built-in kind (an access key id, a URL password, a bearer token, a
JWT, ``password=``…). A sixth, ``pushes``, is the whole per-record path short of the sockets:
the bench's Text pushes (``telemetry_data.function_pushes``, 1,000 records each) parsed as the
listener parses them (``parse_push``), and taken in as the worker takes them
(``Intake.ingest``: encoded and batched, one batch and its body per push). The modes
(``MODES``): ``off`` (``HTTP_REDACT=false``: no screen at all), ``redact`` (the default:
built-in redaction on) and ``all`` (redaction plus one user pattern, an exclusion pattern and
a minimum level: what the bench's ``filter_redact`` throughput row sets,
``FILTER_REDACT_ENV``).

This process does not go through the layer's launcher, so it runs with glibc's malloc defaults
unless ``GLIBC_TUNABLES`` is set as the launcher sets it: without them the wall-clock figures
(``--framing`` above all: a batch body is ~1 MB) include page faults the extension does not pay
(``--kernel`` shows them). Instruction counts do not see the kernel either way.

Wall-clock figures on a shared machine move by 10-30 % from run to run; instruction counts
under callgrind (1,000-line rounds, 3 rounds minus 0 rounds, ``PYTHONHASHSEED=0``) move by about
1 %, which is what tells a small regression from noise. To compare with another revision, point
``--tree`` at a copy of it (its ``lambda_logs_http`` is measured), e.g.
``git archive main | tar -x -C /tmp/main && python -m tools.bench.encode_cost --tree /tmp/main``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import timeit
from collections.abc import Callable

from tools.bench.telemetry_data import FILTER_REDACT_ENV, function_events

REQUEST_ID = "8f5c6a4e-2b1d-4c3e-9f0a-1b2c3d4e5f60"
KINDS = ("text", "plain", "json", "platform", "secrets", "pushes")
MODES = {"off": {"HTTP_REDACT": "false"}, "redact": {}, "all": FILTER_REDACT_ENV}
_SECRET_LINES = (
    "using key AKIAIOSFODNN7EXAMPLE for bucket {i}",
    "connecting to postgres://app:pw-{i}@db.internal:5432/orders",
    "GET /orders/{i} Authorization: Bearer tok-{i}-0123456789abcdef",
    "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ7aX0ifQ.c2lnbmF0dXJlLXtpfQ for user {i}",
    "login attempt {i} password=hunter{i} rejected",
)


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
    if kind == "secrets":
        return [{"time": e["time"], "type": "function",
                 "record": f"[INFO]\t{e['time']}\t{REQUEST_ID}\t"
                           f"{_SECRET_LINES[i % len(_SECRET_LINES)].format(i=i)}\n"}
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


def encoder(output_format: str = "seed", mode: str = "redact") -> object:
    from lambda_logs_http.records.transform import EntryContext, Transformer

    context = EntryContext("bench", "$LATEST", 1024, "us-east-1", "x86_64")
    options: dict[str, object] = {}
    if output_format != "seed":  # the default is also what a tree from before the formats has
        from lambda_logs_http.records.encoders import encoder_class

        options["encoder"] = encoder_class(output_format)(context)
    try:
        from lambda_logs_http.records import options as screens
    except ImportError:  # a tree from before filtering and redaction (--tree)
        return Transformer(context, **options).encode
    from lambda_logs_http.settings.load import load

    settings = load({"HTTP_ENDPOINT": "http://127.0.0.1:9/bench", **MODES[mode]})
    return Transformer(context, screen=screens.build(settings.records), **options).encode


def all_formats() -> list[str]:
    try:
        from lambda_logs_http.records.encoders import MODULES
    except ImportError:  # a tree from before the formats
        return ["seed"]
    return list(MODULES)


class _Bodies:
    """The backlog's place in the ``pushes`` kind: each batch's body is built as it is queued,
    as the sender would build it."""

    def add(self, batch: object, may_spill: bool) -> None:
        batch.body()  # type: ignore[attr-defined]

    def waiting_in_memory(self) -> int:
        return 0


class _Sending:
    def receiver_is_behind(self) -> bool:
        return False

    def cut_backoff(self) -> None:
        pass


def pushes_round(output_format: str = "seed", mode: str = "redact") -> Callable[[], None]:
    """One round of the ``pushes`` kind: a function that takes in the next push of 1,000
    records, as the listener and the worker do, short of the sockets."""
    from lambda_logs_http.listener.server import parse_push
    from tools.bench.telemetry_data import function_pushes

    encode = encoder(output_format, mode)
    transformer = encode.__self__  # type: ignore[attr-defined]
    bodies = itertools.cycle(function_pushes(REQUEST_ID))
    try:
        from lambda_logs_http.delivery.backlog import Ledger
        from lambda_logs_http.delivery.batching import Framing
        from lambda_logs_http.delivery.intake import Intake
        from lambda_logs_http.invocations import InvocationProgress
        from lambda_logs_http.settings.model import Batching
        from lambda_logs_http.stats import Stats

        stats = Stats()
        # A batch of each push's 1,000 records: its body is built in every counted round.
        batching = Batching(
            max_bytes=1 << 24, max_records=1_000, max_age_ms=1_000, compression="none",
            compression_level=0, output_format=output_format,
        )  # fmt: skip
        ledger = Ledger(stats, InvocationProgress())
        framing = Framing.of(transformer.encoder)
        intake = Intake(
            batching, False, transformer, _Bodies(), _Sending(), stats,  # type: ignore[arg-type]
            ledger, framing=framing,
        )  # fmt: skip
    except (ImportError, TypeError):  # an older tree (``--tree``): batch as its worker did
        return _batched_round(transformer, bodies, parse_push)

    def take_in() -> None:
        intake.ingest(parse_push(next(bodies)) or [])

    return take_in


def _batched_round(
    transformer: object, bodies: itertools.cycle[bytes], parse_push: Callable[[bytes], object]
) -> Callable[[], None]:
    from lambda_logs_http.delivery.batching import Batcher, Framing

    encode = transformer.encode  # type: ignore[attr-defined]
    batcher = Batcher(1 << 24, 1_000, Framing.of(transformer.encoder))  # type: ignore[attr-defined]

    def take_in() -> None:
        for event in parse_push(next(bodies)) or ():  # type: ignore[attr-defined]
            full = batcher.add(encode(event), 0.0)
            if full is not None:
                full.body()

    return take_in


def run_rounds(kind: str, rounds: int, output_format: str = "seed", mode: str = "redact") -> None:
    """Encode ``rounds`` times 1,000 events (the process callgrind counts)."""
    if kind == "pushes":
        take_in = pushes_round(output_format, mode)
        take_in()  # warm up: the counted rounds are steady state
        for _ in range(rounds):
            take_in()
        return
    encode = encoder(output_format, mode)
    batch = events(kind)
    for event in batch[:50]:  # warm up: the counted rounds are steady state
        encode(event)  # type: ignore[operator]
    for _ in range(rounds):
        for event in batch:
            encode(event)  # type: ignore[operator]


def timed(output_formats: list[str], kinds: list[str], modes: list[str]) -> None:
    for output_format in output_formats:
        for kind in kinds:
            for mode in modes:
                if kind == "pushes":
                    run = pushes_round(output_format, mode)
                else:
                    encode = encoder(output_format, mode)
                    batch = events(kind)

                    def run(
                        batch: list[dict[str, object]] = batch, encode: object = encode
                    ) -> None:
                        for event in batch:
                            encode(event)  # type: ignore[operator]

                best = min(timeit.repeat(run, number=20, repeat=15)) / (20 * 1000)
                print(f"{output_format:13s} {kind:9s} {mode:7s} {best * 1e6:6.3f} µs/line  "
                      f"{1 / best:10,.0f} lines/s")


def framing_cost(output_formats: list[str]) -> None:
    """What the batching adds per entry (``Batcher.add``: the exact count) and per body
    (``Framing.body``: one join), on 4,000 text lines in each format."""
    from lambda_logs_http.delivery.batching import Batcher, Framing

    for output_format in output_formats:
        encode = encoder(output_format)
        entries = [encode(e) for e in events("text")] * 4  # type: ignore[operator]
        framing = Framing.of(encode.__self__.encoder)  # type: ignore[attr-defined]

        def add(entries: list[str] = entries, framing: Framing = framing) -> Batcher:
            batcher = Batcher(10**8, 10**6, framing)
            for entry in entries:
                batcher.add(entry, 0.0)
            return batcher

        per_add = min(timeit.repeat(add, number=5, repeat=7)) / (5 * len(entries))
        batch = add().take()
        assert batch is not None
        per_body = min(timeit.repeat(batch.body, number=20, repeat=7)) / 20
        print(f"{output_format:7s} add {per_add * 1e9:5.0f} ns/entry   body "
              f"{per_body * 1e9 / len(batch):5.0f} ns/entry   {batch.size:>10,d} bytes for "
              f"{len(batch):,} lines")


def kernel_cost(output_formats: list[str], modes: list[str], pushes: int = 200) -> None:
    """The ``pushes`` kind's CPU split into user and kernel time, and its minor page faults:
    pages the process took from the kernel (each zeroed first) while taking pushes in. The
    launcher's ``GLIBC_TUNABLES`` make them ~0; run with and without the variable to compare
    (this process does not go through the launcher)."""
    import resource

    for output_format in output_formats:
        for mode in modes:
            take_in = pushes_round(output_format, mode)
            for _ in range(5):  # warm up: the heap has grown to its working size
                take_in()
            before = resource.getrusage(resource.RUSAGE_SELF)
            for _ in range(pushes):
                take_in()
            after = resource.getrusage(resource.RUSAGE_SELF)
            records = pushes * 1000
            print(f"{output_format:13s} pushes    {mode:7s} "
                  f"user {(after.ru_utime - before.ru_utime) / records * 1e6:5.2f} µs/line  "
                  f"kernel {(after.ru_stime - before.ru_stime) / records * 1e6:5.2f} µs/line  "
                  f"{(after.ru_minflt - before.ru_minflt) / pushes:6.1f} page faults/push")


def counted(tree: str | None, output_formats: list[str], kinds: list[str], modes: list[str]) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for output_format in output_formats:
        for kind in kinds:
            for mode in modes:
                totals = []
                for rounds in (0, 3):
                    done = subprocess.run(
                        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
                         sys.executable, "-m", "tools.bench.encode_cost",
                         "--rounds", kind, str(rounds), "--formats", output_format,
                         "--modes", mode, *(["--tree", tree] if tree else [])],
                        capture_output=True, text=True, env=env, timeout=600, check=True,
                    )  # fmt: skip
                    found = re.search(r"Collected : (\d+)", done.stderr)
                    assert found, done.stderr[-500:]
                    totals.append(int(found.group(1)))
                print(f"{output_format:13s} {kind:9s} {mode:7s} "
                      f"{(totals[1] - totals[0]) // 3000:7,d} instructions/line")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under valgrind instead of timing")
    parser.add_argument("--tree", metavar="DIR",
                        help="measure the lambda_logs_http in DIR (default: this one)")
    parser.add_argument("--framing", action="store_true",
                        help="time the batching (count and body) per entry instead")
    parser.add_argument("--formats", default="seed",
                        help="comma-separated output formats, or all (default: seed)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated, of {', '.join(KINDS)} (default: all)")
    parser.add_argument("--modes", default="redact",
                        help=f"comma-separated, of {', '.join(MODES)} (default: redact)")
    parser.add_argument("--kernel", action="store_true",
                        help="the pushes' user and kernel CPU per line and page faults per push")
    parser.add_argument("--rounds", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, os.path.abspath(args.tree))
    import lambda_logs_http

    if not args.rounds:
        print(f"lambda_logs_http from {os.path.dirname(lambda_logs_http.__file__)}, "
              f"Python {sys.version.split()[0]}")
    output_formats = all_formats() if args.formats == "all" else args.formats.split(",")
    kinds = args.kinds.split(",")
    modes = args.modes.split(",")
    unknown = [k for k in kinds if k not in KINDS] + [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown kind or mode: {', '.join(unknown)}")
    if args.rounds:
        run_rounds(args.rounds[0], int(args.rounds[1]), output_formats[0], modes[0])
        return 0
    if args.callgrind:
        return counted(args.tree, output_formats, kinds, modes)
    if args.framing:
        framing_cost(output_formats)
        return 0
    if args.kernel:
        kernel_cost(output_formats, modes)
        return 0
    timed(output_formats, kinds, modes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
