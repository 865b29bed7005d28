"""Turn the interoperability suite's ``results.jsonl`` into a Markdown table.

Usage: ``python tests/interop/report.py [RESULTS]`` — ``RESULTS`` defaults to
``$INTEROP_OUT/results.jsonl``. Each row's last figures are shown, joined with its test's
outcome (pass, FAIL, xfail: fails today as expected, XPASS: passes though marked to fail).

Standard library only, and no imports from the test suite: it runs on a results file copied off
a CI machine as well.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS = ("receiver", "result", "delivered", "duplicates",
           "runtimeDone → next, median (max)", "receiver RT, median", "http.client RT, median",
           "notes")
SLACK_MS = 3.0


def load(lines: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(row id -> its last figures, test node id -> its last outcome), in first-seen order."""
    rows: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if "outcome" in record:
            outcomes[record["test"]] = record["outcome"]
        elif "row" in record:
            rows[record["row"]] = record
    return rows, outcomes


def _ms(figure: dict[str, Any] | None, with_max: bool = False) -> str:
    if not figure or figure.get("median") is None:
        return "n/a"
    text = f"{figure['median']:.1f} ms"
    if with_max:
        text += f" ({figure['max']:.1f})"
    return text


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row.get("stalls"):
        notes.append(f"**stall**: > RT + {SLACK_MS:.0f} ms")
    if row.get("proxy"):
        notes.append(f"proxy saw {row.get('proxied', 0)} of the endpoint's requests"
                     + (f", and {row['proxy_other_requests']}"
                        if row.get("proxy_other_requests") else ""))
    if row.get("secret_leaked"):
        notes.append("**proxy password in the output**")
    if row["delivered_before_shutdown"] != row["expected"] and row.get("extension_errors"):
        said = row["extension_errors"][0]
        notes.append("extension: " + said.split(" ", 3)[-1][:160])
    if row.get("rt_error"):
        notes.append(f"RT: {row['rt_error'][:120]}")
    return "; ".join(notes)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: dict[str, dict[str, Any]], outcomes: dict[str, str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row_id, row in rows.items():
        outcome = outcomes.get(row.get("test", ""), "")
        if "skipped" in row:
            cells = [f"{row_id}: {row['title']}", "skipped", "", "", "", "", "", row["skipped"]]
        else:
            result = {"passed": "pass", "failed": "**FAIL**", "xfail": "xfail",
                      "xpass": "**XPASS**"}.get(outcome, outcome or "?")
            delivered = f"{row['delivered_before_shutdown']:,} / {row['expected']:,}"
            if row["delivered"] != row["delivered_before_shutdown"]:
                delivered += f" ({row['delivered']:,} after shutdown)"
            cells = [
                f"{row_id}: {row['title']}",
                result,
                delivered,
                f"{row['duplicated']:,}",
                _ms(row["runtime_done_to_next_ms"], with_max=True),
                _ms(row.get("rt_ms")),
                _ms(row.get("rt_plain_ms")),
                _notes(row),
            ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        path = Path(argv[1])
    elif os.environ.get("INTEROP_OUT"):
        path = Path(os.environ["INTEROP_OUT"]) / "results.jsonl"
    else:
        print("usage: python tests/interop/report.py RESULTS.jsonl (or set INTEROP_OUT)",
              file=sys.stderr)
        return 2
    if not path.exists():
        print(f"no results at {path}: run the suite first (make interop)", file=sys.stderr)
        return 1
    rows, outcomes = load(path.read_text(encoding="utf-8").splitlines())
    print(table(rows, outcomes))
    print(f"\n{len(rows)} rows. delivered: distinct function lines at the receiver before each "
          "invocation was released (frozen after the last one) / printed. runtimeDone → next: "
          "the push carrying platform.runtimeDone → the extension's /event/next. receiver RT: "
          "POSTs of the extension's median-size body from the test on a kept-alive connection after "
          "the same idle time, TCP_QUICKACK re-armed after each request; http.client RT: the "
          "same without it. Pass needs all delivered, no duplicates, runtimeDone → next "
          f"≤ receiver RT + {SLACK_MS:.0f} ms, and through a proxy, the proxy having seen the "
          "requests.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
