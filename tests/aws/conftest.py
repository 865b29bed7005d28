"""The ``moto`` fixture: a real ``moto_server`` with IAM enforced, seeded with the real AWS CLI
(``tests/support/moto.py`` says what is seeded)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto import (  # noqa: F401  (the names the tests import from here)
    ACCOUNT,
    FUNCTION_NAME,
    JSON_TOKEN,
    KMS_TOKEN,
    KMS_TOKEN_NO_CONTEXT,
    PLAIN_TOKEN,
    REGION,
    SECRET_VALUES,
    SKIP_REASON,
    SSM_TOKEN,
    Moto,
    moto_available,
    running_moto,
)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    if not moto_available():
        pytest.skip(SKIP_REASON)
    try:
        with running_moto(tmp_path_factory.mktemp("moto")) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(str(exc))
