"""``make demo`` must keep working: run its script on the built layer, small, and read its verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(layer: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tools.lambda_sandbox.demo", "--layer", str(layer), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_demo_shows_logs_flowing_with_nothing_lost(real_layer: Path) -> None:
    out = run_demo(real_layer, "--invocations", "2", "--lines", "2")
    assert "records lost                     0" in out
    assert "OK: every record arrived" in out
    assert "Status: timeout" in out  # the timed-out invocation's END line was received
    assert "added per invocation (median)" in out


def test_demo_json_format_and_long_runs_show_progress(real_layer: Path) -> None:
    out = run_demo(real_layer, "--invocations", "12", "--lines", "1", "--log-format", "JSON",
                   "--no-timeout")
    assert "12/12 invocations" in out
    assert "records lost                     0" in out
