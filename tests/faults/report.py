"""Turn the fault matrix's ``results.jsonl`` into a Markdown table.

Usage: ``python tests/faults/report.py [RESULTS]`` — ``RESULTS`` defaults to
``$FAULT_MATRIX_OUT/results.jsonl``. Each scenario's last figures are shown (a file appended to by
several runs shows the latest), joined with its test's pass/fail when the run recorded one.

Standard library only, and no imports from the test suite: it runs on a results file copied off a
CI machine as well.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS = ("scenario", "result", "records (expected → delivered)", "lost", "duplicated",
           "added latency median / max", "held past bound?", "notes")


def load(lines: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(scenario id -> its last figures, test node id -> its last outcome)."""
    scenarios: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if "outcome" in record:
            outcomes[record["test"]] = record["outcome"]
        elif "scenario" in record:
            scenarios[record["scenario"]] = record
    return scenarios, outcomes


def _lost(figures: dict[str, Any]) -> str:
    lost = figures["lost"]
    if not lost:
        return "0"
    reasons = "; ".join(f"{count:,} {why}" for why, count in figures["lost_explained"].items())
    unexplained = figures["lost_unexplained"]
    parts = [reasons] if reasons else []
    if unexplained:
        parts.append(f"**{unexplained:,} unexplained**")
    return f"{lost:,} ({'; '.join(parts)})"


def _duplicated(figures: dict[str, Any]) -> str:
    copies = figures["duplicated"]
    if not copies:
        return "0"
    unidentifiable = figures["duplicated_unidentifiable"]
    if unidentifiable:
        return f"{copies:,} (**{unidentifiable:,} not identifiable**)"
    return f"{copies:,} (all identifiable by Idempotency-Key)"


def _latency(figures: dict[str, Any]) -> str:
    latency = figures["latency_ms"]
    if latency["median"] is None:
        return "n/a"
    return f"{latency['median']:.0f} / {latency['max']:.0f} ms"


def _held(figures: dict[str, Any]) -> str:
    """The flush bound counts from runtimeDone's arrival (the extension cannot release an
    invocation whose output Lambda has not finished pushing), so when Lambda pushed it late the
    verdict rests on the hold after the push; the total is shown beside it."""
    bound = figures["budget_ms"] + 150
    if not figures["held_past_bound"]:
        return f"no (≤ {bound:.0f} ms)"
    lag, hold = figures.get("max_telemetry_lag_ms"), figures.get("max_hold_after_push_ms")
    if lag is not None and hold is not None and hold <= bound:
        return (f"no: ≤ {hold:.0f} ms after runtimeDone arrived (Lambda pushed it up to "
                f"{lag:.0f} ms after the response; {figures['latency_ms']['max']:.0f} ms in all)")
    detail = f"**yes**: {figures['latency_ms']['max']:.0f} ms > {bound:.0f} ms"
    if lag is not None and hold is not None:
        detail += f" (runtimeDone pushed after up to {lag:.0f} ms; held ≤ {hold:.0f} ms after)"
    return detail


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(scenarios: dict[str, dict[str, Any]], outcomes: dict[str, str]) -> str:
    """The Markdown table, one row per scenario in id order."""
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for scenario_id in sorted(scenarios):
        figures = scenarios[scenario_id]
        outcome = outcomes.get(figures.get("test", ""), "")
        result = {"passed": "pass", "failed": "**FAIL**"}.get(outcome, outcome or "?")
        cells = [
            f"{scenario_id}: {figures['title']}",
            result,
            f"{figures['expected']:,} → {figures['delivered']:,}",
            _lost(figures),
            _duplicated(figures),
            _latency(figures),
            _held(figures),
            figures.get("notes", ""),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        path = Path(argv[1])
    elif os.environ.get("FAULT_MATRIX_OUT"):
        path = Path(os.environ["FAULT_MATRIX_OUT"]) / "results.jsonl"
    else:
        print("usage: python tests/faults/report.py RESULTS.jsonl (or set FAULT_MATRIX_OUT)",
              file=sys.stderr)
        return 2
    if not path.exists():
        print(f"no results at {path}: run the scenarios first (make fault_matrix)",
              file=sys.stderr)
        return 1
    scenarios, outcomes = load(path.read_text(encoding="utf-8").splitlines())
    print(table(scenarios, outcomes))
    seconds = sum(f.get("duration_s", 0) for f in scenarios.values())
    print(f"\n{len(scenarios)} scenarios, {seconds:.0f} s inside them; "
          f"bound = HTTP_FLUSH_BUDGET_MS + 150 ms; latency = post_runtime_extensions_ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
