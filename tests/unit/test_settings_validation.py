"""Settings validated where they are read: ranges, headers, the CA bundle, strict booleans, hosts.

The rule under test: a value the sender would reject (or that would overflow a wait, or break a
request) never passes the loader; it is one configuration error naming the variable instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.http.auth import build
from lambda_logs_http.http.result import SendResult
from lambda_logs_http.http.transport import HttpTransport
from lambda_logs_http.settings import load as load_module
from lambda_logs_http.settings.load import RANGES, load, strict_requested
from lambda_logs_http.settings.parse import RESERVED_HEADERS, ConfigError
from tests.support.fixtures import tls_material  # noqa: F401
from tests.support.tls import TlsMaterial

BASE = {"HTTP_ENDPOINT": "https://logs.example.com/ingest"}
README = Path(__file__).resolve().parents[2] / "README.md"


def refused(**values: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load({**BASE, **values})
    return caught.value


def plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@pytest.mark.parametrize("name", sorted(RANGES))
def test_every_number_has_a_range_and_its_bounds_are_allowed(name: str) -> None:
    low, high = RANGES[name]
    extra = {"HTTP_MAX_BATCH_BYTES": "1024"} if name == "HTTP_MAX_BUFFER_BYTES" else {}
    for ok in (low, high):
        load({**BASE, **extra, name: plain(ok)})
    for bad in (high + 1, low - 1, 10**30):
        error = refused(**extra, **{name: plain(bad)})
        assert error.variable == name and f"from {plain(low)} to {plain(high)}" in str(error)


@pytest.mark.parametrize("value", ["1e308", "inf", "nan", "-0.0", "1e-9", "9" * 5000])
def test_the_timeout_cannot_overflow_a_send(value: str) -> None:
    error = refused(HTTP_TIMEOUT_SECONDS=value)
    assert error.variable == "HTTP_TIMEOUT_SECONDS" and len(str(error)) < 200


def test_a_huge_batch_age_is_refused() -> None:
    error = refused(HTTP_BATCH_MAX_AGE_MS="1" + "0" * 30)
    assert error.variable == "HTTP_BATCH_MAX_AGE_MS" and "to 900000" in str(error)


@pytest.mark.parametrize("name", sorted(RANGES))
def test_the_readme_gives_every_range(name: str) -> None:
    low, high = RANGES[name]
    rows = [line for line in README.read_text().splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1
    shown = re.sub(r"[,_]", "", rows[0])
    assert f"{plain(low)}\u2013{plain(high)}" in shown, rows[0]  # an en dash


@pytest.mark.parametrize(
    "header",
    ["Content-Length", "host", "Transfer-Encoding", "Connection", "Content-Type",
     "Content-Encoding", "Expect", "TE", "Upgrade", "Proxy-Authorization", "Proxy-Anything",
     "Keep-Alive", "Trailer", "Content-MD5", "User-Agent", "Idempotency-Key", "X-Request-Id"],
)  # fmt: skip
def test_the_auth_header_cannot_be_one_the_transport_owns(header: str) -> None:
    error = refused(HTTP_AUTH_TYPE="apikey", HTTP_AUTH_CREDENTIALS="k-123456",
                    HTTP_AUTH_HEADER_NAME=header)
    assert error.variable == "HTTP_AUTH_HEADER_NAME" and "sets itself" in str(error)


@pytest.mark.parametrize("header", ["X-API-Key", "DD-API-KEY", "Authorization", "x_key"])
def test_ordinary_auth_headers_are_accepted(header: str) -> None:
    cfg = load({**BASE, "HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k-123456",
                "HTTP_AUTH_HEADER_NAME": header})
    assert cfg.auth.header_name == header


@pytest.mark.parametrize("kind", ["bearer", "apikey"])
@pytest.mark.parametrize("value", ["日本", "tok\x00en", "tok\ten", "a\x7fb", "a\x85b", "\udcff-x"])
def test_a_header_credential_must_be_sendable(kind: str, value: str) -> None:
    error = refused(HTTP_AUTH_TYPE=kind, HTTP_AUTH_CREDENTIALS=value)
    assert error.variable == "HTTP_AUTH_CREDENTIALS" and value not in str(error)


def test_basic_auth_takes_any_utf8_but_no_colon_in_the_user_name() -> None:
    cfg = load({**BASE, "HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "jürgen",
                "HTTP_AUTH_CREDENTIALS": "日本-pässword"})
    assert cfg.auth.credentials == "日本-pässword"
    error = refused(HTTP_AUTH_TYPE="basic", HTTP_AUTH_USERNAME="a:b", HTTP_AUTH_CREDENTIALS="pw")
    assert error.variable == "HTTP_AUTH_USERNAME" and "':'" in str(error)
    error = refused(HTTP_AUTH_TYPE="basic", HTTP_AUTH_USERNAME="a", HTTP_AUTH_CREDENTIALS="\udcff")
    assert error.variable == "HTTP_AUTH_CREDENTIALS" and "UTF-8" in str(error)


def _request_head(cfg: object, body: bytes = b"[]") -> bytes | SendResult:
    """The request head the real transport would write for these settings."""
    auth = cfg.auth  # type: ignore[attr-defined]
    strategy = build(auth.kind, username=auth.username, credentials=auth.credentials,
                     header_name=auth.header_name)
    transport = HttpTransport(cfg.endpoint, strategy)  # type: ignore[attr-defined]
    connection = SimpleNamespace(proxied=False)
    return transport._request_head(connection, "/ingest", {"Idempotency-Key": "k"}, body)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["bearer", "apikey", "basic"]),
    st.text(min_size=1, max_size=12),
    st.text(alphabet=st.characters(codec="latin-1"), min_size=0, max_size=8),
)
def test_whatever_the_loader_accepts_the_transport_sends(
    kind: str, credentials: str, header: str
) -> None:
    env = {**BASE, "HTTP_AUTH_TYPE": kind, "HTTP_AUTH_CREDENTIALS": credentials,
           "HTTP_AUTH_USERNAME": "user", "HTTP_AUTH_HEADER_NAME": header}
    try:
        cfg = load(env)
    except ConfigError:
        return
    head = _request_head(cfg)
    assert isinstance(head, bytes), head
    assert head.count(b"\r\n\r\n") == 1 and head.endswith(b"\r\n\r\n")


def test_the_ca_bundle_is_loaded_at_start(tls_material: TlsMaterial, tmp_path: Path) -> None:  # noqa: F811
    assert load({**BASE, "HTTP_CA_BUNDLE": str(tls_material.ca_file)}).endpoint.ca_bundle
    for path, words in (("/etc/passwd", "holds no certificate"), ("/no/such.pem", "no such file"),
                        (str(tmp_path), "cannot read")):
        error = refused(HTTP_CA_BUNDLE=path)
        assert error.variable == "HTTP_CA_BUNDLE" and words in str(error), error
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(tls_material.key_file.read_bytes())
    assert "holds no certificate" in str(refused(HTTP_CA_BUNDLE=str(key_only)))


@pytest.mark.parametrize("value", ["yes please", "2", "enabled"])
def test_a_broken_strict_flag_is_an_error_itself_and_reported_first(value: str) -> None:
    error = refused(HTTP_STRICT_CONFIG=value, HTTP_ENDPOINT="")
    assert error.variable == "HTTP_STRICT_CONFIG" and repr(value) in str(error)
    assert strict_requested({"HTTP_STRICT_CONFIG": value}) is False  # the default meanwhile


@pytest.mark.parametrize("value", ["true", "YES", "1", "on"])
def test_the_strict_flag_takes_every_boolean(value: str) -> None:
    assert load({**BASE, "HTTP_STRICT_CONFIG": value}).strict is True
    assert strict_requested({"HTTP_STRICT_CONFIG": value}) is True


@pytest.mark.parametrize(
    ("url", "host", "target"),
    [
        ("http://bücher.de/x", "xn--bcher-kva.de", "/x"),
        ("https://Bücher.DE/", "xn--bcher-kva.de", "/"),
        ("http://example.com/päth?q=日本", "example.com", "/p%C3%A4th?q=%E6%97%A5%E6%9C%AC"),
        ("http://example.com./", "example.com.", "/"),
    ],
)
def test_international_hosts_and_paths_are_encoded(url: str, host: str, target: str) -> None:
    endpoint = load({"HTTP_ENDPOINT": url}).endpoint
    assert (endpoint.host, endpoint.target) == (host, target)
    assert endpoint.host_header.isascii() and endpoint.target.isascii()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", "closing ']'"),
        ("http://straße.de/", "xn--"),
        ("http://" + "a" * 64 + ".com/", "63 characters"),
        ("http://" + ("a" * 60 + ".") * 5 + "com/", "253 in all"),
    ],
)
def test_hosts_dns_cannot_take_are_refused(url: str, words: str) -> None:
    error = refused(HTTP_ENDPOINT=url)
    assert error.variable == "HTTP_ENDPOINT" and words in str(error)


def test_the_spill_directory_must_be_absolute() -> None:
    assert refused(HTTP_SPILL_DIR="spill").variable == "HTTP_SPILL_DIR"


def test_reserved_headers_are_lower_case() -> None:
    assert all(name == name.lower() for name in RESERVED_HEADERS)
    assert load_module.LONGEST_INVOCATION_MS == 900_000
