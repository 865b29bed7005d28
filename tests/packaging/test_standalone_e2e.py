"""The end-to-end sandbox scenarios (tests/e2e/test_extension.py), every one of them, with the
standalone layer of this machine's architecture and no other Python anywhere the extension could
find one: its PATH holds no interpreter, there is no /var/lang/bin/python3, and each scenario
checks that the running extension process is the layer's own interpreter.

The function itself (awslambdaric) still runs on this test's Python, started by absolute path, as
a Node.js or Java runtime would be by Lambda: only the extension must do without.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.e2e.test_extension as e2e
from tests.e2e.test_extension import *  # noqa: F403 (re-collects every scenario in this module)
from tests.packaging.standalone_helpers import BUNDLED, Standalone, build_standalone, host_arch

# That scenario picks each pyenv Python through LAMBDA_LOGS_HTTP_PYTHON: the plain layer's case.
del test_runs_on_every_lambda_python  # noqa: F821


@pytest.fixture(scope="module")
def standalone_layer(tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    if os.access("/var/lang/bin/python3", os.X_OK):
        pytest.skip("/var/lang/bin/python3 exists here: the launcher would prefer it")
    if e2e.EXTENSION_PYTHON:
        pytest.skip("E2E_EXTENSION_PYTHON is set: it would override the layer's interpreter")
    arch = host_arch()
    if not arch:
        pytest.skip("no standalone build for this machine's architecture")
    return build_standalone(arch, tmp_path_factory.mktemp("standalone-e2e"))


@pytest.fixture(scope="module")
def real_layer(standalone_layer: Standalone) -> Path:  # overrides tests/e2e's plain layer
    return standalone_layer.layer


@pytest.fixture(autouse=True)
def no_other_python(
    standalone_layer: Standalone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The sandbox hands its own PATH to the extension: an empty directory. Every started
    sandbox must then run the extension on the bundled interpreter."""
    empty = tmp_path / "no-python-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    bundled = os.path.realpath(standalone_layer.layer / BUNDLED)

    class CheckedSandbox(e2e.Sandbox):
        def start(self):  # type: ignore[no-untyped-def]
            result = super().start()
            if result.ok:
                exe = e2e.running_interpreter(self)
                assert exe in (bundled, None), f"extension runs {exe}, not {bundled}"
                checked.append(exe)
            return result

    checked: list[str | None] = []
    monkeypatch.setattr(e2e, "Sandbox", CheckedSandbox)
    yield
    # At least one start saw the process alive and on the bundled interpreter, if any started.
    assert not checked or bundled in checked, checked
