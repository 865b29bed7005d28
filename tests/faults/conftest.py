"""Fixtures for the fault matrix: the built layer, the real servers, a sandbox launcher, results.

The layer comes from the e2e ``real_layer`` fixture (built once per session by build.sh); nginx,
mitmproxy and the TLS material from ``tests/support/fixtures.py``. Each skips, naming what to
install, when its program is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import real_layer  # noqa: F401
from tests.faults.harness import Launcher, PushLog, Results, push_log
from tests.support.faults import FaultProxy
from tests.support.fixtures import (  # noqa: F401
    BASIC_AUTH,
    fault_proxy,
    nginx_in_front_of,
    nginx_tls_receiver,
    tls_material,
)
from tests.support.nginx import Nginx
from tests.support.tls import TlsMaterial
from tools.lambda_sandbox.receiver import Receiver

OUT_ENV = "FAULT_MATRIX_OUT"
"""Directory for ``results.jsonl``; a fresh temporary directory per session when unset."""

_RESULTS_PATH = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long-running fault scenario (the burst); deselect with -m 'not slow'")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the figures went, so a plain pytest run can be turned into the table too."""
    path = config.stash.get(_RESULTS_PATH, None)
    if path is not None and path.exists():
        terminalreporter.write_line(
            f"fault matrix results: {path} (table: python tests/faults/report.py {path})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add each scenario's pass/fail to the results file, so the table can show it."""
    report = yield
    store = item.funcargs.get("results") if hasattr(item, "funcargs") else None
    if isinstance(store, Results) and report.when == "call":
        store.outcome(item.nodeid, report.outcome)
    return report


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Where each scenario appends its figures."""
    chosen = os.environ.get(OUT_ENV)
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("fault-matrix")
    store = Results(directory)
    request.config.stash[_RESULTS_PATH] = store.path
    return store


@pytest.fixture
def pushes() -> Iterator[PushLog]:
    """When each runtimeDone push started (to split added latency between lag and hold)."""
    with push_log() as log:
        yield log


@pytest.fixture
def nginx_fault_chain(
    fault_proxy: FaultProxy, tls_material: TlsMaterial, tmp_path: Path  # noqa: F811
) -> Iterator[Nginx]:
    """nginx (TLS, basic auth ``BASIC_AUTH``) → mitmproxy fault layer → the capture receiver.

    Statuses the proxy injects reach the extension unchanged through nginx (Retry-After too); a
    connection the proxy drops becomes nginx's 502.
    """
    with nginx_in_front_of(fault_proxy.port, tls_material, tmp_path) as nginx:
        yield nginx


@pytest.fixture
def launch(
    real_layer: Path, tmp_path: Path, receiver: Receiver, pushes: PushLog  # noqa: F811
) -> Iterator[Launcher]:
    """Sandboxes running the built layer against ``receiver`` (through whatever front the test
    puts before it); every one shut down at the end, even when the test failed."""
    launcher = Launcher(real_layer, tmp_path, receiver, pushes)
    try:
        yield launcher
    finally:
        launcher.close()
