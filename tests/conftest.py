"""Shared fixtures: real local servers, started and stopped by each test that needs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.lambda_sandbox.receiver import Receiver


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A capture receiver process on 127.0.0.1 (answers 200 unless scripted otherwise)."""
    with Receiver(tmp_path) as running:
        yield running
