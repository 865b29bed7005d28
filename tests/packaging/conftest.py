"""Fixtures for the layer packaging tests (helpers live in layer_helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import Build, build, write_fixture_package


@pytest.fixture(scope="session")
def fixture_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture_package(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, fixture_src: Path) -> Build:
    """The stand-in package built with every interpreter found (build.sh's own discovery)."""
    return build(tmp_path_factory.mktemp("out"), fixture_src)


@pytest.fixture
def layer_copy(tmp_path: Path, built: Build) -> Path:
    """A private copy of the unpacked layer (unzipped with modes kept) that a test may modify."""
    dest = tmp_path / "opt"
    shutil.copytree(built.layer, dest, symlinks=True)
    return dest
