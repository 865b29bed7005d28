from __future__ import annotations

import base64

import pytest

from lambda_logs_http.http import auth
from lambda_logs_http.settings.load import load

BASE = {"HTTP_ENDPOINT": "https://x/"}


@pytest.mark.parametrize(
    ("values", "header", "value"),
    [
        ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_CREDENTIALS": "p:w"},
         "Authorization", "Basic " + base64.b64encode(b"u:p:w").decode()),
        ({"HTTP_AUTH_TYPE": "bearer", "HTTP_AUTH_CREDENTIALS": "tok"}, "Authorization",
         "Bearer tok"),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k"}, "X-API-Key", "k"),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k",
          "HTTP_AUTH_HEADER_NAME": "DD-API-KEY"}, "DD-API-KEY", "k"),
    ],
)
def test_strategies_add_their_header(values: dict[str, str], header: str, value: str) -> None:
    strategy = auth.from_config(load({**BASE, **values}))
    headers: dict[str, str] = {}
    strategy.apply(headers)
    assert headers == {header: value}
    shown = auth.redact_headers(headers, strategy)
    assert value not in str(shown) or (value == "k" and shown[header] == "***")
    assert shown[header].endswith("***")


def test_none_adds_nothing() -> None:
    headers: dict[str, str] = {}
    auth.from_config(load(BASE)).apply(headers)
    assert headers == {}


def test_registry_lists_the_seed_types() -> None:
    assert list(auth.STRATEGIES) == ["none", "basic", "bearer", "apikey"]
