"""The init profiler must not rot: it finds its landmarks in the real built layer.

It relies on the launcher's shape (one ``-c '`` to prepend its prelude to) and on the extension
opening a connection for register, subscribe and ``/event/next``; when either changes, this
test says so. Run unconstrained, so it needs no cgroup; no figure is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import build

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_profile_reports_every_phase(tmp_path: Path) -> None:
    layer = build(tmp_path / "build").layer
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench.init_profile", "--layer", str(layer), "--memory", "0",
         "--runs", "1", "--importtime-runs", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for phase in ("interpreter start", "until the register request", "register: request sent",
                  "until the subscribe request", "= before the first /event/next",
                  "until init ends", "first invocation (all threads)"):
        line = next((x for x in out.splitlines() if phase in x), None)
        assert line is not None and re.search(r"\d+\.\d\s*$", line), (phase, out[-3000:])
    assert "lambda-logs-http-worker" in out and "before register [main]" in out
    assert "-X importtime" in out
