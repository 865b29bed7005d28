"""The settings: every variable parsed strictly, into frozen sections, errors naming the fix."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.settings.load import is_managed_instances, load, strict_requested
from lambda_logs_http.settings.parse import ConfigError

BASE = {"HTTP_ENDPOINT": "https://logs.example.com/ingest"}


def env(**values: str) -> dict[str, str]:
    return {**BASE, **values}


def test_defaults() -> None:
    cfg = load(env())
    assert cfg.endpoint.url == "https://logs.example.com/ingest"
    assert (cfg.endpoint.host, cfg.endpoint.port, cfg.endpoint.target) == (
        "logs.example.com", 443, "/ingest",
    )  # fmt: skip
    assert cfg.auth.kind == "none"
    assert cfg.endpoint.timeout_seconds == 10.0
    assert cfg.delivery.test_mode is False
    assert cfg.endpoint.tls_verify is True
    assert cfg.telemetry.listener_port == 4243
    assert cfg.telemetry.types == ("platform", "function", "extension")
    telemetry = cfg.telemetry
    assert (telemetry.max_items, telemetry.max_bytes, telemetry.timeout_ms) == (1000, 262144, 25)
    assert cfg.delivery.flush_budget_ms == 500
    assert cfg.delivery.flush_strategy == "end" and cfg.delivery.holds_invocations
    assert (cfg.batching.max_bytes, cfg.batching.max_records, cfg.batching.max_age_ms) == (
        1_000_000, 10_000, 1_000,
    )  # fmt: skip
    assert cfg.warnings == ()


def test_lambda_variables_are_read() -> None:
    cfg = load(env(AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_REGION="eu-west-1")).lambda_env
    assert (cfg.function_name, cfg.function_version, cfg.function_memory_size, cfg.region) == (
        "fn", "$LATEST", 512, "eu-west-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "variable", "words"),
    [
        ({"HTTP_ENDPOINT": ""}, "HTTP_ENDPOINT", "not set"),
        ({"HTTP_ENDPOINT": "ftp://x/"}, "HTTP_ENDPOINT", "http"),
        ({"HTTP_ENDPOINT": "logs.example.com"}, "HTTP_ENDPOINT", "http"),
        ({"HTTP_ENDPOINT": "https://user:pw@x/"}, "HTTP_ENDPOINT", "HTTP_AUTH_TYPE=basic"),
        ({"HTTP_ENDPOINT": "https:///path"}, "HTTP_ENDPOINT", "host"),
        ({"HTTP_ENDPOINT": "https://x:99999/"}, "HTTP_ENDPOINT", "port"),
        ({"HTTP_ENDPOINT": "https://x:\u00b3/"}, "HTTP_ENDPOINT", "port"),
        ({"HTTP_ENDPOINT": "https://[::1/x"}, "HTTP_ENDPOINT", "closing ']'"),
        ({"HTTP_ENDPOINT": "http://h:8080:9/x"}, "HTTP_ENDPOINT", "more than one ':'"),
        ({"HTTP_ENDPOINT": "http://[::g]/x"}, "HTTP_ENDPOINT", "not a valid IPv6"),
        ({"HTTP_ENDPOINT": "http://[::1]x/"}, "HTTP_ENDPOINT", "unexpected text"),
        ({"HTTP_ENDPOINT": "http://a..b/"}, "HTTP_ENDPOINT", "not a valid host name"),
        ({"HTTP_ENDPOINT": "http://a_b$/"}, "HTTP_ENDPOINT", "not a valid host name"),
        ({"HTTP_ENDPOINT": "http://h/a b"}, "HTTP_ENDPOINT", "spaces"),
        ({"HTTP_ENDPOINT": "http://h/a\x7f"}, "HTTP_ENDPOINT", "control characters"),
        ({"HTTP_AUTH_TYPE": "oauth"}, "HTTP_AUTH_TYPE", "none, basic, bearer, apikey"),
        ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_CREDENTIALS": "pw"}, "HTTP_AUTH_USERNAME", "required"),
        ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "u"}, "HTTP_AUTH_CREDENTIALS", "required"),
        ({"HTTP_AUTH_TYPE": "bearer"}, "HTTP_AUTH_CREDENTIALS", "required"),
        ({"HTTP_AUTH_TYPE": "apikey"}, "HTTP_AUTH_CREDENTIALS", "required"),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k", "HTTP_AUTH_HEADER_NAME": "X Key"},
         "HTTP_AUTH_HEADER_NAME", "valid header"),
        ({"HTTP_AUTH_TYPE": "bearer", "HTTP_AUTH_CREDENTIALS": "a\r\nX-Evil: 1"},
         "HTTP_AUTH_CREDENTIALS", "line breaks"),
        ({"HTTP_TIMEOUT_SECONDS": "3O"}, "HTTP_TIMEOUT_SECONDS", "number"),
        ({"HTTP_TIMEOUT_SECONDS": "0"}, "HTTP_TIMEOUT_SECONDS", "from 0.001 to 900"),
        ({"HTTP_TIMEOUT_SECONDS": "nan"}, "HTTP_TIMEOUT_SECONDS", "a number from"),
        ({"HTTP_TEST_MODE": "maybe"}, "HTTP_TEST_MODE", "true or false"),
        ({"HTTP_FLUSH_BUDGET_MS": "-1"}, "HTTP_FLUSH_BUDGET_MS", "from 0 to 900000"),
        ({"HTTP_LISTENER_PORT": "9001"}, "HTTP_LISTENER_PORT", "9001"),
        ({"HTTP_MAX_BATCH_BYTES": "1.5"}, "HTTP_MAX_BATCH_BYTES", "whole number"),
        ({"HTTP_TELEMETRY_TYPES": "function,metrics"}, "HTTP_TELEMETRY_TYPES", "subset"),
        ({"HTTP_EXTENSION_LOG_LEVEL": "loud"}, "HTTP_EXTENSION_LOG_LEVEL", "debug"),
        ({"HTTP_CA_BUNDLE": "/no/such/ca.pem"}, "HTTP_CA_BUNDLE", "no such file"),
    ],
)
def test_errors_name_the_variable_and_the_fix(
    values: dict[str, str], variable: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env(**values))
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
     ("false", False), ("0", False), ("no", False), ("off", False), ("", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert load(env(HTTP_TEST_MODE=raw)).delivery.test_mode is expected


def test_auth_type_is_case_insensitive() -> None:
    cfg = load(env(HTTP_AUTH_TYPE="ApiKey", HTTP_AUTH_CREDENTIALS="k"))
    assert cfg.auth.kind == "apikey"
    assert cfg.auth.header_name == ""  # the strategy's default (X-API-Key) applies


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("HTTP_TELEMETRY_TIMEOUT_MS", "5", 25),
        ("HTTP_TELEMETRY_TIMEOUT_MS", "60000", 30000),
        ("HTTP_TELEMETRY_MAX_ITEMS", "10", 1000),
        ("HTTP_TELEMETRY_MAX_BYTES", "9999999", 1048576),
    ],
)
def test_telemetry_buffering_is_clamped_with_a_warning(
    variable: str, raw: str, expected: int
) -> None:
    cfg = load(env(**{variable: raw}))
    attribute = variable[len("HTTP_TELEMETRY_"):].lower()
    assert getattr(cfg.telemetry, attribute) == expected
    assert len(cfg.warnings) == 1
    assert variable in cfg.warnings[0]


def test_repr_never_shows_credentials_or_query_values() -> None:
    cfg = load({"HTTP_ENDPOINT": "https://x/in?api_key=qu3ry-k3y", "HTTP_AUTH_TYPE": "bearer",
                "HTTP_AUTH_CREDENTIALS": "s3cr3t-token"})
    assert "s3cr3t-token" not in repr(cfg) and "qu3ry-k3y" not in repr(cfg)
    assert "https://x/in?api_key=***" in repr(cfg)


def test_settings_are_read_only() -> None:
    cfg = load(env())
    with pytest.raises(AttributeError):
        cfg.endpoint = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.delivery.test_mode = True  # type: ignore[misc]
    changed = cfg.replace(delivery=cfg.delivery.replace(test_mode=True))
    assert changed.delivery.test_mode is True and cfg.delivery.test_mode is False
    assert changed.endpoint == cfg.endpoint and changed != cfg


def test_managed_instances_and_strict_are_detected() -> None:
    values = env(AWS_LAMBDA_INITIALIZATION_TYPE="lambda-managed-instances",
                 HTTP_STRICT_CONFIG="true")
    cfg = load(values)
    assert cfg.lambda_env.managed_instances and cfg.strict and is_managed_instances(values)
    assert cfg.delivery.flush_strategy == "periodic"  # no INVOKE events there to hold
    assert strict_requested({"HTTP_STRICT_CONFIG": "TRUE"})


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "host_header", "display"),
    [
        ("https://Logs.Example.com/in", "logs.example.com", 443, "/in", "logs.example.com",
         "https://logs.example.com/in"),
        ("HTTP://h:8080", "h", 8080, "/", "h:8080", "http://h:8080/"),
        ("http://h:/x", "h", 80, "/x", "h", "http://h/x"),
        ("https://h:443/x?k=v#frag", "h", 443, "/x?k=v", "h", "https://h/x?k=***"),
        ("http://[::1]:9000/x", "::1", 9000, "/x", "[::1]:9000", "http://[::1]:9000/x"),
        ("http://h?only=query", "h", 80, "/?only=query", "h", "http://h/?only=***"),
        ("https://bücher.example/ingest", "xn--bcher-kva.example", 443, "/ingest",
         "xn--bcher-kva.example", "https://xn--bcher-kva.example/ingest"),
        ("https://h/日本/%2F?q=ü", "h", 443, "/%E6%97%A5%E6%9C%AC/%2F?q=%C3%BC", "h",
         "https://h/%E6%97%A5%E6%9C%AC/%2F?q=***"),
    ],
)
def test_the_endpoint_is_parsed_once_into_what_the_transport_sends(
    url: str, host: str, port: int, target: str, host_header: str, display: str
) -> None:
    endpoint = load({"HTTP_ENDPOINT": url}).endpoint
    assert (endpoint.host, endpoint.port, endpoint.target) == (host, port, target)
    assert (endpoint.host_header, endpoint.display) == (host_header, display)
    assert endpoint.target.isascii()


_HOST = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,2}", fullmatch=True)
_PATH = st.from_regex(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,8}){0,3}", fullmatch=True)
_QUERY = st.from_regex(r"(\?[A-Za-z0-9=&_.-]{0,12})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTPS"]), host=_HOST,
       port=st.one_of(st.none(), st.integers(1, 65535)), path=_PATH, query=_QUERY)
def test_what_the_endpoint_accepts_urllib_reads_the_same_way(
    scheme: str, host: str, port: int | None, path: str, query: str
) -> None:
    """urllib's ``urlsplit`` as the oracle: same host, port and request target."""
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}{query}"
    endpoint = load({"HTTP_ENDPOINT": url}).endpoint
    parts = urlsplit(url)
    assert endpoint.host == parts.hostname
    assert endpoint.port == (parts.port or {"http": 80, "https": 443}[parts.scheme.lower()])
    assert endpoint.target == (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
