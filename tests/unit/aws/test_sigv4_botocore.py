"""``sigv4.sign`` against botocore's signer (the one the AWS CLI and boto3 use) on generated requests.

Methods, hosts with and without ports, paths with odd characters and dot segments, query strings,
repeated headers with odd whitespace, bodies, with and without a session token and the payload-hash
header, and S3-style signing. Where botocore takes its input already canonically encoded (a URL
query string, an S3 path), the generated input is encoded that way; where it takes decoded input
(``params``), the wire form given to ``sign`` is encoded in random ways, which ``sign`` must
canonicalise to the same string.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import random
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.aws import sigv4
from lambda_logs_http.aws.credentials import Credentials

botocore_auth = pytest.importorskip("botocore.auth", reason="botocore (requirements-dev.txt)")
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials as BotoCredentials  # noqa: E402

NOW = 1_767_225_600.5  # 2026-01-01T00:00:00.5Z
HOSTS = ["example.amazonaws.com", "abc123.execute-api.eu-west-1.amazonaws.com",
         "Search-Logs.eu-west-1.ES.amazonaws.com", "127.0.0.1:8080", "[::1]:9443", "localhost:443"]
# Text for paths and query parts: ASCII punctuation, space, '%', letters, and non-ASCII.
TEXT = st.text(
    st.sampled_from([*("aZ09-_.~!$&'()*+,;=:@ %/\"<>[]^`{|}\\"), "é", "ሴ", "😀"]),
    max_size=8,
)
SEGMENT = st.one_of(TEXT.map(lambda s: s.replace("/", "")), st.sampled_from(["", ".", ".."]))
HEADER_NAMES = ["X-Custom", "x-custom", "Content-Type", "X-Amz-Target", "X-Scope-OrgID",
                "My-Header1", "User-Agent", "Connection", "X-Amzn-Trace-Id", "Content-Encoding"]
HEADER_VALUE = st.text(st.sampled_from(list("aB1   -;=,/\"\t:")), max_size=12)
TOKENS = st.one_of(st.none(), st.text(st.sampled_from(list("AQoDYXdzEPT/+=0123456789")),
                                      min_size=1, max_size=40))


@contextlib.contextmanager
def frozen_clock() -> Iterator[None]:
    """botocore reads the time itself: pin it to NOW (the fuzz suite runs these tests too)."""
    moment = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).replace(tzinfo=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore_auth, "get_current_datetime", lambda *a, **k: moment)
        yield


@pytest.fixture(autouse=True, scope="module")
def frozen_botocore_clock() -> Iterator[None]:
    """For the whole module."""
    with frozen_clock():
        yield


def boto_sign(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes, token: str | None,
    region: str, service: str, *, params: list[tuple[str, str]] | None = None,
    content_sha256: bool = False, s3: bool = False,
) -> tuple[str, str]:
    """botocore's Authorization header and canonical request for the same request."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders appends: a repeated name keeps each value
    if content_sha256 and not s3:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    if params is not None:
        request.params = params
    signer_class = botocore_auth.S3SigV4Auth if s3 else botocore_auth.SigV4Auth
    signer = signer_class(BotoCredentials("AKIDEXAMPLE", "secret/KEY+example", token), service,
                          region)
    signer.add_auth(request)
    authorization = request.headers["Authorization"]
    del request.headers["Authorization"]  # as it was when botocore signed it
    return authorization, signer.canonical_request(request)


def ours(method: str, url: str, headers: list[tuple[str, str]], body: bytes, token: str | None,
         region: str, service: str, **options: bool) -> sigv4.Signed:
    credentials = Credentials("AKIDEXAMPLE", "secret/KEY+example", token)
    return sigv4.sign(method, url, headers, body, credentials=credentials, region=region,
                      service=service, now=NOW, **options)


def wire(text: str, rng: random.Random) -> str:
    """``text`` percent-encoded for a query, unreserved characters sometimes encoded too, in
    either hex case: every way a client may legally write the same value."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_.~") and rng.random() < 0.7:
            out.append(char)
        else:
            escape = f"%{byte:02X}"
            out.append(escape.lower() if rng.random() < 0.3 else escape)
    return "".join(out)


common = dict(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get"]),
    host=st.sampled_from(HOSTS),
    scheme=st.sampled_from(["https", "http"]),
    segments=st.lists(SEGMENT, max_size=6),
    trailing_slash=st.booleans(),
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUE), max_size=6),
    body=st.binary(max_size=64),
    token=TOKENS,
    region=st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1"]),
    service=st.sampled_from(["execute-api", "lambda", "es", "aoss", "secretsmanager"]),
    content_sha256=st.booleans(),
)


def make_path(segments: list[str], trailing_slash: bool) -> str:
    """A wire path: each segment percent-encoded once, as a client sends it."""
    path = "/" + "/".join(quote(segment, safe="!$&'()*+,;=:@") for segment in segments)
    return path + "/" if trailing_slash and segments else path


@settings(max_examples=400, deadline=None)
@given(query=st.lists(st.tuples(TEXT, TEXT, st.booleans()), max_size=5), **common)
def test_same_signature_as_botocore_with_url_query(
    method: str, host: str, scheme: str, segments: list[str],
    trailing_slash: bool, headers: list[tuple[str, str]], body: bytes, token: str | None,
    region: str, service: str, content_sha256: bool, query: list[tuple[str, str, bool]],
) -> None:
    pieces = [quote(name, safe="-_.~") + (f"={quote(value, safe='-_.~')}" if has_value else "")
              for name, value, has_value in query if name or has_value]
    url = f"{scheme}://{host}{make_path(segments, trailing_slash)}"
    if pieces:
        url += "?" + "&".join(pieces)
    expected, boto_creq = boto_sign(method, url, headers, body, token, region, service,
                                    content_sha256=content_sha256)
    signed = ours(method, url, headers, body, token, region, service,
                  content_sha256_header=content_sha256)
    assert signed.canonical_request == boto_creq
    assert signed.headers["Authorization"] == expected
    assert signed.headers["X-Amz-Date"] == "20260101T000000Z"
    assert signed.headers.get("X-Amz-Security-Token") == token


@settings(max_examples=300, deadline=None)
@given(query=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=5), seed=st.integers(0, 2**32),
       **common)
def test_query_in_any_wire_encoding_signs_as_botocore_params(
    method: str, host: str, scheme: str, segments: list[str],
    trailing_slash: bool, headers: list[tuple[str, str]], body: bytes, token: str | None,
    region: str, service: str, content_sha256: bool, query: list[tuple[str, str]], seed: int,
) -> None:
    rng = random.Random(seed)
    base = f"{scheme}://{host}{make_path(segments, trailing_slash)}"
    url = base + "?" + "&".join(f"{wire(name, rng)}={wire(value, rng)}" for name, value in query)
    expected, _ = boto_sign(method, base, headers, body, token, region, service, params=query,
                            content_sha256=content_sha256)
    signed = ours(method, url, headers, body, token, region, service,
                  content_sha256_header=content_sha256)
    assert signed.headers["Authorization"] == expected


@settings(max_examples=200, deadline=None)
@given(key=st.lists(TEXT, min_size=1, max_size=4), **common)
def test_s3_style_signing_matches_botocore_s3(
    method: str, host: str, scheme: str, segments: list[str],
    trailing_slash: bool, headers: list[tuple[str, str]], body: bytes, token: str | None,
    region: str, service: str, content_sha256: bool, key: list[str],
) -> None:
    # Object keys keep their "//" and dot segments; botocore's S3 serializer encodes them once.
    path = "/bucket/" + quote("/".join(key), safe="/~")
    url = f"http://{host}{path}"
    expected, boto_creq = boto_sign(method, url, headers, body, token, region, "s3",
                                    s3=True)
    signed = ours(method, url, headers, body, token, region, "s3", content_sha256_header=True,
                  normalize_path=False, double_encode=False)
    assert signed.canonical_request == boto_creq
    assert signed.headers["Authorization"] == expected
