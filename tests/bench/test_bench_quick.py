"""The benchmark must not rot: its quick mode runs end to end and produces every row.

No timing is asserted (numbers move with the machine); what is checked is that each section
ran against the real built layer and reported each of its rows as measured, "n/a" (a feature
this build does not have) or skipped (a tool this machine lacks) — never as an error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench import hotspots
from tools.bench.bench import Settings, expected_rows

REPO = Path(__file__).resolve().parents[2]
ACCEPTED = {"ok", "n/a", "skipped"}


@pytest.mark.timeout(170)
def test_quick_mode_produces_every_row(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.bench", "--quick", "--json", str(out),
         "--results-dir", str(tmp_path / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    expected = expected_rows(Settings.quick())
    assert results["expected_rows"] == expected
    assert [row for row in expected if row not in results["rows"]] == []
    bad = {key: row for key, row in results["rows"].items() if row.get("status") not in ACCEPTED}
    assert bad == {}, proc.stdout[-3000:]
    for title in ("1. Init overhead", "2. Post-runtime overhead", "3. Throughput", "4. Memory",
                  "6. Cold start"):
        assert title in proc.stdout
    assert "machine " in proc.stdout and results["machine"]["cpu_model"]
    assert list((tmp_path / "results").glob("*.json"))


def test_hotspots_weight_each_thread_by_its_measured_cpu() -> None:
    # Two threads, py-spy's raw format: the worker's samples say encode/parse_text 3:1, the
    # listener's say parse_push; /proc said the worker used 3x the listener's CPU.
    raw = "\n".join([
        "thread (1): lambda-logs-http-worker;run (threading.py:1);"
        "DeliveryWorker._ingest (/opt/lambda-logs-http/lambda_logs_http/worker.py:10);"
        "Transformer.encode (/opt/lambda-logs-http/lambda_logs_http/transform.py:20) 30",
        "thread (1): lambda-logs-http-worker;run (threading.py:1);"
        "parse_text (/opt/lambda-logs-http/lambda_logs_http/levels.py:5) 10",
        "thread (1): lambda-logs-http-worker;run (threading.py:1);"
        "Condition.wait (threading.py:300) 50",
        "thread (2): Thread-1 (process_request_thread);"
        "parse_push (/opt/lambda-logs-http/lambda_logs_http/listener.py:50);"
        "JSONDecoder.raw_decode (json/decoder.py:353) 5",
    ])
    profile = hotspots.parse(raw, {"worker": 3.0, "listener connections": 1.0})
    assert profile["busy_samples"] == 45 and profile["waiting_samples"] == 50
    shares = {name: round(pct, 1) for name, _, pct in profile["extension"]}
    assert shares == {
        "lambda_logs_http/transform.py:Transformer.encode": 56.2,
        "lambda_logs_http/listener.py:parse_push": 25.0,
        "lambda_logs_http/levels.py:parse_text": 18.8,
    }
