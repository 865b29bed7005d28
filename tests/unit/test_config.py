from __future__ import annotations

import pytest

from lambda_logs_http.settings import load as config
from lambda_logs_http.settings.load import ConfigError, load

BASE = {"HTTP_ENDPOINT": "https://logs.example.com/ingest"}


def env(**values: str) -> dict[str, str]:
    return {**BASE, **values}


def test_defaults() -> None:
    cfg = load(env())
    assert cfg.endpoint == "https://logs.example.com/ingest"
    assert cfg.auth_type == "none"
    assert cfg.timeout_seconds == 30.0
    assert cfg.test_mode is False
    assert cfg.tls_verify is True
    assert cfg.listener_port == 4243
    assert cfg.telemetry_types == ("platform", "function", "extension")
    assert (cfg.telemetry_max_items, cfg.telemetry_max_bytes, cfg.telemetry_timeout_ms) == (
        1000, 262144, 25,
    )  # fmt: skip
    assert cfg.flush_budget_ms == 500
    assert cfg.warnings == ()


def test_lambda_variables_are_read() -> None:
    cfg = load(env(AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_REGION="eu-west-1"))
    assert (cfg.function_name, cfg.function_version, cfg.function_memory_size, cfg.aws_region) == (
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
        ({"HTTP_TIMEOUT_SECONDS": "0"}, "HTTP_TIMEOUT_SECONDS", "at least"),
        ({"HTTP_TIMEOUT_SECONDS": "nan"}, "HTTP_TIMEOUT_SECONDS", "finite"),
        ({"HTTP_TEST_MODE": "maybe"}, "HTTP_TEST_MODE", "true or false"),
        ({"HTTP_FLUSH_BUDGET_MS": "-1"}, "HTTP_FLUSH_BUDGET_MS", "at least 0"),
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
    assert load(env(HTTP_TEST_MODE=raw)).test_mode is expected


def test_auth_type_is_case_insensitive_and_header_defaults() -> None:
    cfg = load(env(HTTP_AUTH_TYPE="ApiKey", HTTP_AUTH_CREDENTIALS="k"))
    assert cfg.auth_type == "apikey"
    assert cfg.auth_header_name == "X-API-Key"


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
    attribute = variable[len("HTTP_"):].lower()
    assert getattr(cfg, attribute) == expected
    assert len(cfg.warnings) == 1
    assert variable in cfg.warnings[0]


def test_repr_never_shows_credentials() -> None:
    cfg = load(env(HTTP_AUTH_TYPE="bearer", HTTP_AUTH_CREDENTIALS="s3cr3t-token"))
    assert "s3cr3t-token" not in repr(cfg)


def test_config_is_read_only() -> None:
    cfg = load(env())
    with pytest.raises(AttributeError):
        cfg.endpoint = "x"  # type: ignore[misc]
    assert cfg.replace(test_mode=True).test_mode is True


def test_managed_instances_and_strict_are_detected() -> None:
    cfg = load(env(AWS_LAMBDA_INITIALIZATION_TYPE="lambda-managed-instances",
                   HTTP_STRICT_CONFIG="true"))
    assert cfg.managed_instances and cfg.strict
    assert config.strict_requested({"HTTP_STRICT_CONFIG": "TRUE"})
