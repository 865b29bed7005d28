"""``sigv4``'s own rules, beyond AWS's suite and botocore: URL splitting, Host, headers it owns,
its cost at import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lambda_logs_http.aws import sigv4
from lambda_logs_http.aws.credentials import Credentials

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok/en==")
NOW = 1_440_938_160.0  # 2015-08-30T12:36:00Z


def sign(url: str = "https://example.amazonaws.com/", headers: object = (), body: bytes = b"",
         **options: object) -> sigv4.Signed:
    return sigv4.sign("POST", url, headers, body, credentials=CREDENTIALS,  # type: ignore[arg-type]
                      region="us-east-1", service="service", now=NOW, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("https://h/", "/", ""),
        ("https://h", "/", ""),
        ("https://h?a=1", "/", "a=1"),
        ("https://h:8443/a/b?x=1&y=2#frag", "/a/b", "x=1&y=2"),
        ("https://h/a?x=/y?z", "/a", "x=/y?z"),
        ("http://user:pw@h/p", "/p", ""),
        ("/relative?q", "/relative", "q"),
    ],
)
def test_split_url(url: str, path: str, query: str) -> None:
    assert sigv4.split_url(url) == (path, query)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Example.COM/", "example.com"),
        ("https://h:443/", "h"),
        ("http://h:80/", "h"),
        ("https://h:80/", "h:80"),
        ("http://h:8080/", "h:8080"),
        ("https://[::1]:9443/", "[::1]:9443"),
        ("https://[::1]/", "[::1]"),
        ("https://user:pw@h/", "h"),
    ],
)
def test_host_header_matches_what_the_transport_sends(url: str, host: str) -> None:
    assert sigv4.host_header(url) == host


def test_host_given_by_the_caller_is_signed_as_given() -> None:
    signed = sign(headers={"Host": "front.example.com"})
    assert "host:front.example.com\n" in signed.canonical_request


def test_the_headers_sign_owns_replace_the_callers() -> None:
    stale = {"X-Amz-Date": "19990101T000000Z", "Authorization": "old",
             "x-amz-security-token": "old-token", "X-Amz-Content-Sha256": "old"}
    signed = sign(headers=stale, content_sha256_header=True)
    assert signed.headers["X-Amz-Date"] == "20150830T123600Z"
    assert signed.headers["X-Amz-Security-Token"] == "tok/en=="
    assert signed.headers["X-Amz-Content-Sha256"] == sigv4.EMPTY_SHA256
    assert "old" not in signed.canonical_request
    assert signed.canonical_request.count("x-amz-date:") == 1
    assert signed.signed_headers == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"


def test_payload_hash_is_of_the_bytes_sent() -> None:
    import gzip
    import hashlib

    body = gzip.compress(b'{"message": "hello"}')
    signed = sign(body=body, content_sha256_header=True)
    assert signed.headers["X-Amz-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert signed.canonical_request.endswith("\n" + hashlib.sha256(body).hexdigest())


def test_session_token_may_be_added_unsigned() -> None:
    signed = sign(sign_session_token=False)
    assert signed.headers["X-Amz-Security-Token"] == "tok/en=="
    assert signed.signed_headers == "host;x-amz-date"


def test_without_a_token_no_token_header() -> None:
    plain = Credentials("AKIDEXAMPLE", "secret")
    signed = sigv4.sign("GET", "https://h/", {}, b"", credentials=plain, region="r",
                        service="s", now=NOW)
    assert set(signed.headers) == {"X-Amz-Date", "Authorization"}


def test_proxy_and_tracing_headers_are_not_signed() -> None:
    signed = sign(headers={"User-Agent": "x", "Connection": "keep-alive", "X-Amzn-Trace-Id": "t",
                           "traceparent": "00-1", "Content-Type": "application/json"})
    assert signed.signed_headers == "content-type;host;x-amz-date;x-amz-security-token"


def test_nothing_secret_in_the_repr() -> None:
    signed = sign()
    assert "tok/en" not in repr(signed) and CREDENTIALS.secret_access_key not in repr(signed)


@pytest.mark.parametrize(
    ("path", "double", "single"),
    [
        ("/a%20b/", "/a%2520b/", "/a%20b/"),
        ("/a b", "/a%20b", "/a%20b"),
        ("/~user/$x", "/~user/%24x", "/~user/%24x"),
        ("//a/./b/../c//", "/a/c/", "//a/./b/../c//"),
        ("", "/", "/"),
    ],
)
def test_canonical_uri_double_and_s3_single_encoding(path: str, double: str, single: str) -> None:
    assert sigv4.canonical_uri(path) == double
    assert sigv4.canonical_uri(path, normalize=False, double_encode=False) == single


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1&a=10", "a=1&a=10&a=2"),
        ("flag&x=", "flag=&x="),
        ("a=1&&b=2&", "a=1&b=2"),
        ("q=a+b", "q=a%2Bb"),
        ("q=a%20b", "q=a%20b"),
        ("k=%7e%2d%41", "k=~-A"),
        ("k=%ff", "k=%FF"),
        ("eq=a=b", "eq=a%3Db"),
        ("p=/path", "p=%2Fpath"),
    ],
)
def test_canonical_query(query: str, canonical: str) -> None:
    assert sigv4.canonical_query(query) == canonical


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("abc123.execute-api.eu-west-1.amazonaws.com", "execute-api"),
        ("ABC123.Execute-API.eu-west-1.amazonaws.com:443", "execute-api"),
        ("abcdefghij.lambda-url.us-east-1.on.aws", "lambda"),
        ("search-logs-abc123.eu-west-1.es.amazonaws.com", "es"),
        ("vpc-logs-abc123.eu-west-1.es.amazonaws.com", "es"),
        ("abc123xyz.us-east-1.aoss.amazonaws.com", "aoss"),
        ("aps-workspaces.eu-west-1.amazonaws.com", "aps"),
        ("abc.execute-api.cn-north-1.amazonaws.com.cn", "execute-api"),
        ("logs.example.com", ""),
        ("execute-api.example.com", ""),
        ("[::1]:8080", ""),
        ("127.0.0.1", ""),
    ],
)
def test_infer_service_from_the_host(host: str, service: str) -> None:
    assert sigv4.infer_service(host) == service


def test_importing_sigv4_loads_nothing_heavy() -> None:
    """The cold start pays for this module only: OpenSSL (hashlib, hmac) and urllib load on the
    first signature."""
    code = (
        "import sys, json; before = set(sys.modules); "
        "import lambda_logs_http.aws.sigv4, lambda_logs_http.aws.sources, "
        "lambda_logs_http.aws.credentials, lambda_logs_http.aws.services; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                       text=True, check=True, timeout=60).stdout)
    # __future__ comes with every module of the package (``from __future__ import annotations``).
    # The variable names come from settings/names.py (names only, no code).
    assert loaded == ["__future__", "lambda_logs_http", "lambda_logs_http.aws", "lambda_logs_http.aws.credentials",
                      "lambda_logs_http.aws.errors", "lambda_logs_http.aws.services",
                      "lambda_logs_http.aws.sigv4", "lambda_logs_http.aws.sources",
                      "lambda_logs_http.settings", "lambda_logs_http.settings.names"]
