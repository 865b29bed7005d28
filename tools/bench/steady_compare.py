"""Two builds of the layer, interleaved, on the steady-state rows: is a change free after init?

    python -m tools.bench.steady_compare before=/tmp/main/dist/layer after=dist/layer --rounds 12

Each round runs, for each layer (the order alternating from round to round), section 2's
``http``/no compression/100 lines row (20 invocations: runtimeDone → next, its overhead over
the receiver's round trip, Lambda's ``PostRuntimeExtensionsDuration``) and section 3's
"default format, no compression, 1 core" row (300,000 records: records/s, and the extension's
CPU seconds per million records, which moves less with other load than records/s does).
Prints median (range) over the rounds. For a change that is meant to move the cold start only,
on a machine too busy for one full ``make bench`` per build to be comparable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from . import machine, post_runtime, throughput

FIGURES = (
    ("next", "runtimeDone → next, ms"),
    ("overhead", "overhead over the receiver RT, ms"),
    ("post_runtime", "PostRuntimeExtensionsDuration, ms"),
    ("records_per_s", "throughput, records/s"),
    ("cpu_per_million", "extension CPU s per 1M records"),
)


def _median(row: dict, key: str) -> float | None:
    value = row.get(key)
    return value.get("median") if isinstance(value, dict) else None


def measure(layer: Path, python: str, records: int) -> dict[str, float | None]:
    post = post_runtime.run(layer, python, [100], 20).get("post.http.none.100", {})
    tput = throughput.run(layer, python, records, variants=(throughput.VARIANTS[0],))
    tput = tput.get("tput.default.pinned", {})
    cpu = tput.get("extension_cpu_s")
    return {
        "next": _median(post, "runtime_done_to_next_ms"),
        "overhead": post.get("overhead_ms"),
        "post_runtime": _median(post, "post_runtime_extensions_ms"),
        "records_per_s": tput.get("records_per_s"),
        "cpu_per_million": cpu / tput["records"] * 1e6 if cpu and tput.get("records") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.steady_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("layers", nargs="+", metavar="NAME=LAYER")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--python", help="interpreter the extensions run on (real path)")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args(argv)
    layers = {}
    for item in args.layers:
        name, sep, path = item.partition("=")
        if not sep or not name or name in layers:
            parser.error(f"{item!r}: give NAME=LAYER, names unique")
        layers[name] = Path(path).resolve()
    python = args.python or machine.default_python()
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k, _ in FIGURES} for n in layers}
    names = list(layers)
    for index in range(args.rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            for key, value in measure(layers[name], python, args.records).items():
                if value is not None:
                    samples[name][key].append(value)
        print(f"  round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    for key, title in FIGURES:
        cells = []
        for name in names:
            values = samples[name][key]
            cells.append(f"{name} {statistics.median(values):,.2f} "
                         f"({min(values):,.2f}-{max(values):,.2f})" if values else f"{name} -")
        print(f"{title}: " + "; ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
