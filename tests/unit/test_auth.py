"""Auth strategies: plain values in, one header out; built from the settings the same way."""

from __future__ import annotations

import base64

import pytest

from lambda_logs_http.http import auth
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.parse import ConfigError

BASE = {"HTTP_ENDPOINT": "https://x/"}


@pytest.mark.parametrize(
    ("strategy", "header", "value"),
    [
        (auth.BasicAuth("u", "p:w"), "Authorization", "Basic " + base64.b64encode(b"u:p:w").decode()),
        (auth.BearerAuth("tok"), "Authorization", "Bearer tok"),
        (auth.ApiKeyAuth("k"), "X-API-Key", "k"),
        (auth.ApiKeyAuth("k", header_name="DD-API-KEY"), "DD-API-KEY", "k"),
    ],
)
def test_each_strategy_adds_its_header(strategy: auth.Auth, header: str, value: str) -> None:
    headers: dict[str, str] = {"Content-Type": "application/json"}
    strategy.apply(headers)
    assert headers == {"Content-Type": "application/json", header: value}


@pytest.mark.parametrize(
    ("env", "header", "secret"),
    [
        ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_CREDENTIALS": "p4ss"},
         "Authorization", base64.b64encode(b"u:p4ss").decode()),
        ({"HTTP_AUTH_TYPE": "BEARER", "HTTP_AUTH_CREDENTIALS": "t0ken"}, "Authorization", "t0ken"),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k3y",
          "HTTP_AUTH_HEADER_NAME": "DD-API-KEY"}, "DD-API-KEY", "k3y"),
    ],
)
def test_the_settings_build_the_strategy_and_its_header_is_redacted(
    env: dict[str, str], header: str, secret: str
) -> None:
    settings = load({**BASE, **env}).auth
    strategy = auth.build(settings.kind, username=settings.username,
                          credentials=settings.credentials, header_name=settings.header_name)
    headers: dict[str, str] = {}
    strategy.apply(headers)
    assert secret in headers[header]
    shown = auth.redact_headers({**headers, "X-Other": "visible"}, strategy)
    assert secret not in repr(shown) and shown["X-Other"] == "visible"
    assert shown[header] in ("***", "Basic ***", "Bearer ***")


def test_none_adds_nothing() -> None:
    headers: dict[str, str] = {}
    auth.build("none", username="", credentials="", header_name="").apply(headers)
    assert headers == {}


@pytest.mark.parametrize("kind", list(auth.STRATEGIES))
def test_every_registered_strategy_is_checked_by_the_settings(kind: str) -> None:
    """A strategy's required values are required by the settings, named by their variable."""
    strategy = auth.STRATEGIES[kind]
    for value in strategy.required:
        with pytest.raises(ConfigError) as error:
            load({**BASE, "HTTP_AUTH_TYPE": kind})
        assert error.value.variable.startswith("HTTP_AUTH_")
        assert value  # each required value names a field of the settings' Auth section
    full = {"HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_CREDENTIALS": "c", "HTTP_AUTH_HEADER_NAME": "X-K"}
    settings = load({**BASE, "HTTP_AUTH_TYPE": kind, **full}).auth
    built = auth.build(kind, username=settings.username, credentials=settings.credentials,
                       header_name=settings.header_name)
    assert isinstance(built, strategy)


def test_unknown_type_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigError, match="HTTP_AUTH_TYPE: unknown auth type 'oauth'; use one of none, basic, bearer, apikey"):
        load({**BASE, "HTTP_AUTH_TYPE": "oauth"})
