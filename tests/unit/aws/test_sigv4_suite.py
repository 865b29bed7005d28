"""``sigv4`` against AWS's published Signature Version 4 test suite (``testsuite.py``).

Every case is checked at each step: canonical request, string to sign, ``Authorization``.
"""

from __future__ import annotations

import pytest

from lambda_logs_http.aws import sigv4
from lambda_logs_http.aws.credentials import Credentials
from tests.unit.aws import testsuite

SUITE = testsuite.ensure_suite()
CASES = testsuite.cases(SUITE) if SUITE else []
pytestmark = pytest.mark.skipif(
    SUITE is None,
    reason=f"AWS's SigV4 test suite comes from the {testsuite.SDIST} sdist: "
    "`pip download` could not fetch it (run `python -m tests.unit.aws.testsuite` with PyPI reachable)",
)


def sign_case(case: testsuite.Case) -> sigv4.Signed:
    credentials = Credentials(testsuite.ACCESS_KEY, testsuite.SECRET_KEY, case.token)
    return sigv4.sign(
        case.method,
        f"https://example.amazonaws.com{case.target}",
        case.headers,
        case.body,
        credentials=credentials,
        region=testsuite.REGION,
        service=testsuite.SERVICE,
        now=testsuite.NOW,
        # "post-sts-header-after": the token is added once the request is signed.
        sign_session_token=not case.name.endswith("post-sts-header-after"),
    )


def test_the_suite_is_complete() -> None:
    """The sdist still ships the whole suite: a shrunken copy must not pass silently."""
    assert len(CASES) >= 30
    names = {case.name for case in CASES}
    assert {"get-vanilla", "get-utf8", "normalize-path/get-slashes",
            "post-sts-token/post-sts-header-before", "get-header-value-multiline"} <= names


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_canonical_request(case: testsuite.Case) -> None:
    assert sign_case(case).canonical_request == case.canonical_request


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_string_to_sign(case: testsuite.Case) -> None:
    assert sign_case(case).string_to_sign == case.string_to_sign


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_authorization(case: testsuite.Case) -> None:
    signed = sign_case(case)
    assert signed.headers["Authorization"] == case.authorization
    if case.name != "get-vanilla-with-session-token":
        # That case's .sreq carries get-vanilla's signature, an erratum of the published suite:
        # its .authz agrees with its .creq and .sts, and is what is checked above.
        assert f"Authorization: {case.authorization}" in case.signed_request
    assert signed.headers["X-Amz-Date"] == "20150830T123600Z"
    if case.token:
        assert signed.headers["X-Amz-Security-Token"] == case.token
