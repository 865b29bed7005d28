"""Fixtures for end-to-end tests: the real layer, built once per session by build.sh."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.layer_helpers import build


@pytest.fixture(scope="session")
def real_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked layer (``extensions/lambda-logs-http`` + the package), as Lambda lays it."""
    return build(tmp_path_factory.mktemp("layer-build")).layer
