"""The end-to-end scenarios of settings read from AWS and of SigV4-signed delivery
(tests/e2e/test_aws_sources.py: Secrets Manager, SSM, KMS on a real moto_server, receivers that
verify the token or the signature), every one of them, with the standalone layer and no other
Python the extension could find (as in test_standalone_e2e.py): the extension's own AWS client,
SigV4 and hashing on the layer's interpreter and its trimmed standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.e2e.test_aws_sources as aws_e2e
from tests.e2e.test_aws_sources import *  # noqa: F403 (re-collects every scenario in this module)
from tests.packaging.standalone_helpers import (
    Standalone,
    only_the_bundled_python,
    standalone_for_e2e,
)


@pytest.fixture(scope="module")
def standalone_layer(tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    return standalone_for_e2e(tmp_path_factory, aws_e2e.EXTENSION_PYTHON)


@pytest.fixture(scope="module")
def real_layer(standalone_layer: Standalone) -> Path:  # overrides tests/e2e's plain layer
    return standalone_layer.layer


@pytest.fixture(autouse=True)
def no_other_python(
    standalone_layer: Standalone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    yield from only_the_bundled_python(aws_e2e, standalone_layer, tmp_path, monkeypatch)
