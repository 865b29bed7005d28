"""tools.bench.bytecode_matrix must not rot: one run per cell, on this interpreter, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_one_round_measures_both_layers(tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    python = os.path.realpath(sys.executable)
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.bytecode_matrix", "--runs", "1", "--warmup", "0",
         "--python", python, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"].values()
    for layer in ("with .pyc", "without .pyc"):
        assert row[layer]["ready_ms"]["n"] == 1 and not row[layer]["failures"], row
    assert "| Python |" in proc.stdout
