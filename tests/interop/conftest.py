"""Fixtures for the interoperability suite: the built layer, TLS material, the results file.

The layer comes from the e2e ``real_layer`` fixture (built once per session by build.sh), the
TLS material from ``tests/support/fixtures.py``; the results go to ``$INTEROP_OUT/results.jsonl``
(a fresh temporary directory when unset), which ``report.py`` turns into the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import real_layer  # noqa: F401
from tests.faults.harness import Results
from tests.support.fixtures import tls_material  # noqa: F401
from tests.support.tls import TlsMaterial, make_tls_material, openssl_available

OUT_ENV = "INTEROP_OUT"

INVALID_HOST = "interop-receiver.invalid"
"""An endpoint name that never resolves (RFC 6761): reachable only through a proxy that routes
it (``proxy_addon.py``), as an endpoint is from a Lambda function in a VPC without NAT."""

_RESULTS_PATH = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    path = config.stash.get(_RESULTS_PATH, None)
    if path is not None and path.exists():
        terminalreporter.write_line(
            f"interop results: {path} (table: python tests/interop/report.py {path})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add each row's outcome (pass, fail, xfail) to the results file, for the table."""
    report = yield
    store = item.funcargs.get("results") if hasattr(item, "funcargs") else None
    if isinstance(store, Results) and report.when == "call":
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfail" if report.skipped else "xpass"
        store.outcome(item.nodeid, outcome)
    return report


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Results:
    chosen = os.environ.get(OUT_ENV)
    store = Results(Path(chosen) if chosen else tmp_path_factory.mktemp("interop"))
    request.config.stash[_RESULTS_PATH] = store.path
    return store


@pytest.fixture(scope="session")
def invalid_host_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """TLS material whose server certificate also names ``INVALID_HOST``."""
    if not openssl_available():
        pytest.skip("openssl is not installed (Debian: apt-get install openssl)")
    return make_tls_material(tmp_path_factory.mktemp("tls-invalid"), ("localhost", INVALID_HOST))


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Stops, in reverse order, every server a row started, even when the row failed."""
    with ExitStack() as servers:
        yield servers
