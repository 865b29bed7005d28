"""Shared fixtures (real local servers, started and stopped by each test that needs them), and
one summary at the end of what was skipped and the command that installs what it needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.lambda_sandbox.receiver import Receiver

# Skip reasons name what is missing as "(Debian: apt-get install PKG ...)" or "(pip install ...)".
_APT_HINT = re.compile(r"apt-get install ([a-z0-9.+\- ]+)")
_PIP_HINT = re.compile(r"pip install (-r \S+|[A-Za-z0-9_.\-\[\]=]+)")


@pytest.fixture(autouse=True)
def _no_secrets_between_tests() -> Iterator[None]:
    """Each test starts with no secret registered for scrubbing (``load`` registers the
    credentials it reads, in this process for the whole run otherwise)."""
    from lambda_logs_http import log

    log.clear_secrets()
    yield
    log.clear_secrets()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A capture receiver process on 127.0.0.1 (answers 200 unless scripted otherwise)."""
    with Receiver(tmp_path) as running:
        yield running


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Which groups of tests were skipped for a missing component, once, with one command."""
    groups: dict[str, dict[str, int]] = {}
    apt: set[str] = set()
    pip: set[str] = set()
    for report in terminalreporter.stats.get("skipped", []):
        if getattr(report, "wasxfail", None) is not None:
            continue  # an expected failure is not a skip
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        group = "/".join(Path(report.location[0]).parts[:2]) if report.location else "tests"
        groups.setdefault(group, {}).setdefault(reason, 0)
        groups[group][reason] += 1
        for match in _APT_HINT.finditer(reason):
            apt.update(match.group(1).split())
        for match in _PIP_HINT.finditer(reason):
            pip.add(match.group(1))
    if not groups:
        return
    terminalreporter.section("skipped: what did not run here, and why")
    for group, reasons in sorted(groups.items()):
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{group}: {count} test(s): {reason}")
    commands = []
    if apt:
        commands.append("sudo apt-get install -y " + " ".join(sorted(apt)))
    if pip:
        commands.append(".venv/bin/pip install " + " ".join(sorted(pip)))
    if commands:
        terminalreporter.write_line("to run them: " + " && ".join(commands))
    terminalreporter.write_line("(bash .ci/run installs everything the suite uses)")
