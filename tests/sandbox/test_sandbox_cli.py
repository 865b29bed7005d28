"""The command line: a readable summary per phase."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def test_cli_runs_a_layer_and_prints_a_summary(layer):
    layer.add("demo-ext", work_after_invoke_s=0.05)
    completed = subprocess.run(
        [sys.executable, "-m", "tools.lambda_sandbox", "--layer", str(layer.root),
         "--handler", "app.handler", "--invocations", "2", "--event", '{"lines": 1}'],
        cwd=ROOT, capture_output=True, text=True, timeout=25)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "INIT  ok=True" in out
    assert "extension demo-ext registered for ['INVOKE', 'SHUTDOWN']" in out
    assert out.count("status=success") == 2
    assert "post-runtime extensions=" in out
    assert "SHUTDOWN spindown" in out and "killed=[]" in out
    assert "TELEMETRY demo-ext:" in out
    assert "| function: line 1" in out


def test_cli_exit_status_reports_failures():
    completed = subprocess.run(
        [sys.executable, "-m", "tools.lambda_sandbox", "--event", '{"raise": true}', "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=25)
    assert completed.returncode == 1
    assert "status=error" in completed.stdout
