"""Fixtures for the sandbox tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.sandbox.sandbox_helpers import Layer
from tools.lambda_sandbox import Sandbox


@pytest.fixture
def layer(tmp_path: Path) -> Layer:
    return Layer(tmp_path / "layer")


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Build sandboxes that are always shut down at the end of the test."""
    made: list[Sandbox] = []

    def make(*args: Any, **kwargs: Any) -> Sandbox:
        sb = Sandbox(*args, **kwargs)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        pids = sb.pids()
        sb.shutdown()
        for pid in pids.values():  # belt and braces: nothing may outlive a test
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
