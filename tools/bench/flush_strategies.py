"""The flush-strategy trade-off, measured: ``end`` versus ``periodic`` in the local sandbox.

For each strategy: 20 invocations of the sample function printing 100 lines, against a local
receiver, with the sandbox freezing the extension between invocations. Reports the time the
extension added after the function's response (Lambda's PostRuntimeExtensionsDuration), how
many invocations had their logs at the receiver when they were released, and whether every
record arrived by shutdown.

    .venv/bin/python -m tools.bench.flush_strategies [--invocations 20] [--lines 100]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
from pathlib import Path

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.config import SAMPLE_FUNCTION_DIR
from tools.lambda_sandbox.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(layer: Path, strategy: str, invocations: int, lines: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"flush-{strategy}-"))
    with Receiver(workdir) as receiver:
        env = {"HTTP_ENDPOINT": receiver.url, "HTTP_LISTENER_PORT": str(_free_port()),
               "HTTP_FLUSH_STRATEGY": strategy, "HTTP_SPILL_DIR": str(workdir / "spill")}
        function = FunctionSpec(handler="app.handler", code_dir=SAMPLE_FUNCTION_DIR)
        added, before_release = [], 0
        with Sandbox(layer, function, env) as sandbox:
            sandbox.start()
            for _ in range(invocations):
                result = sandbox.invoke({"lines": lines})
                added.append(result.post_runtime_extensions_ms or 0.0)
                # The extension is frozen now: what the receiver has arrived before release.
                got = {e["message"] for e in receiver.entries()}
                before_release += f"END RequestId: {result.request_id}" in got
            sandbox.shutdown()
            handed_over = sum(
                1 for e in sandbox.telemetry_events
                if not (e.get("type") == "extension" and str(e.get("record")).startswith("[EXT"))
            )
        received = len(receiver.entries())
    return {"strategy": strategy, "added_median_ms": statistics.median(added),
            "added_max_ms": max(added), "delivered_before_release": before_release,
            "invocations": invocations, "handed_over": handed_over, "received": received}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=Path, default=REPO / "dist" / "layer")
    parser.add_argument("--invocations", type=int, default=20)
    parser.add_argument("--lines", type=int, default=100)
    args = parser.parse_args()
    print("| strategy | added after the response (median / max) | invocations delivered before "
          "release | records handed over / received |")
    print("|---|---|---|---|")
    for strategy in ("end", "periodic"):
        r = measure(args.layer, strategy, args.invocations, args.lines)
        print(f"| `{strategy}` | {r['added_median_ms']:.1f} ms / {r['added_max_ms']:.1f} ms | "
              f"{r['delivered_before_release']} / {r['invocations']} | "
              f"{r['handed_over']} / {r['received']} |")


if __name__ == "__main__":
    main()
