"""The end-to-end sandbox scenarios (tests/e2e/test_extension.py), every one of them, with the
standalone layer of this machine's architecture and no other Python anywhere the extension could
find one: its PATH holds no interpreter, there is no /var/lang/bin/python3, and each scenario
checks that the running extension process is the layer's own interpreter.

The function itself (awslambdaric) still runs on this test's Python, started by absolute path, as
a Node.js or Java runtime would be by Lambda: only the extension must do without.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.e2e.test_extension as e2e
from tests.e2e.test_extension import *  # noqa: F403 (re-collects every scenario in this module)
from tests.packaging.standalone_helpers import (
    Standalone,
    only_the_bundled_python,
    standalone_for_e2e,
)

# That scenario picks each pyenv Python through LAMBDA_LOGS_HTTP_PYTHON: the plain layer's case.
del test_runs_on_every_lambda_python  # noqa: F821


@pytest.fixture(scope="module")
def standalone_layer(tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    return standalone_for_e2e(tmp_path_factory, e2e.EXTENSION_PYTHON)


@pytest.fixture(scope="module")
def real_layer(standalone_layer: Standalone) -> Path:  # overrides tests/e2e's plain layer
    return standalone_layer.layer


@pytest.fixture(autouse=True)
def no_other_python(
    standalone_layer: Standalone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    yield from only_the_bundled_python(e2e, standalone_layer, tmp_path, monkeypatch)
