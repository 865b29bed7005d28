"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY read as urllib reads them: urllib is the oracle."""

from __future__ import annotations

import base64
import os
import urllib.request
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.settings import proxy
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.parse import ConfigError

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_NAME = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
_IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_HOST = st.one_of(_NAME, _IPV4, st.sampled_from(["localhost", "[::1]", "example.com",
                                                  "api.example.com", "EXAMPLE.com"]))
_PORT = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
_ENTRY = st.one_of(
    _HOST, _NAME.map(lambda n: "." + n), st.just("*"), st.just(""),
    st.tuples(_HOST, _PORT).map("".join), st.sampled_from(["com", ".com", " example.com ", "*.x"]),
)


@settings(max_examples=2000, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=4), host=_HOST, port=_PORT,
       star=st.booleans(), spaces=st.booleans())
def test_no_proxy_matches_as_urllib_does(
    entries: list[str], host: str, port: str, star: bool, spaces: bool
) -> None:
    no_proxy = "*" if star and not entries else (", " if spaces else ",").join(entries)
    authority = host + port
    expected = urllib.request.proxy_bypass_environment(authority, {"no": no_proxy})
    assert proxy.bypass(no_proxy, authority) is bool(expected)


@pytest.mark.parametrize(
    ("no_proxy", "authority", "bypassed"),
    [
        ("*", "anything.example", True),
        ("example.com", "api.example.com", True),  # a domain covers its subdomains
        (".example.com", "example.com", True),  # a leading dot is ignored
        ("example.com", "notexample.com", False),  # a suffix on a label boundary only
        ("example.com:8080", "example.com:8080", True),
        ("example.com:8080", "example.com:9090", False),
        ("10.0.0.1", "10.0.0.1:443", True),
        ("10.0.0.0/8", "10.1.2.3", False),  # no CIDR ranges, as urllib
        ("*,example.com", "other.test", False),  # "*" bypasses all only on its own
    ],
)
def test_no_proxy_cases(no_proxy: str, authority: str, bypassed: bool) -> None:
    assert proxy.bypass(no_proxy, authority) is bypassed
    assert bool(urllib.request.proxy_bypass_environment(authority, {"no": no_proxy})) is bypassed


_VALUE = st.sampled_from(["", "http://upper:3128", "http://lower:3128", "http://other:8080"])


@settings(max_examples=300, deadline=None)
@given(lower=st.one_of(st.none(), _VALUE), upper=st.one_of(st.none(), _VALUE),
       scheme=st.sampled_from(["http", "https"]))
def test_the_lower_case_variable_wins_as_in_urllib(
    lower: str | None, upper: str | None, scheme: str
) -> None:
    name = f"{scheme.upper()}_PROXY"
    env = {k: v for k, v in ((name.lower(), lower), (name, upper)) if v is not None}
    with mock.patch.dict(os.environ, env, clear=True):
        expected = urllib.request.getproxies_environment().get(scheme)
    chosen = proxy.proxy_for(env, scheme, "example.com")
    if expected is None:
        assert chosen is None
    else:
        assert chosen is not None and chosen.display == expected


def test_a_proxy_url_with_credentials() -> None:
    endpoint = load({"HTTP_ENDPOINT": "https://logs.example.com/in",
                     "HTTPS_PROXY": "http://us%40er:p%3Ass@proxy.internal:3128"}).endpoint
    assert endpoint.proxy is not None
    assert (endpoint.proxy.host, endpoint.proxy.port) == ("proxy.internal", 3128)
    assert endpoint.proxy.variable == "HTTPS_PROXY"
    assert endpoint.proxy.display == "http://proxy.internal:3128"
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()  # percent-decoded, as urllib
    assert endpoint.proxy.authorization == expected
    assert "p%3Ass" not in repr(endpoint) and "p:ss" not in repr(endpoint)


@pytest.mark.parametrize(
    ("env", "host", "port"),
    [
        ({"HTTP_PROXY": "proxy:8080"}, "proxy", 8080),  # no scheme: an authority
        ({"HTTP_PROXY": "http://proxy"}, "proxy", 80),
        ({"http_proxy": "http://[fd00::1]:3128/"}, "fd00::1", 3128),
    ],
)
def test_proxy_forms(env: dict[str, str], host: str, port: int) -> None:
    chosen = load({"HTTP_ENDPOINT": "http://logs.example.com/in", **env}).endpoint.proxy
    assert chosen is not None and (chosen.host, chosen.port) == (host, port)


def test_no_proxy_leaves_the_connection_direct_and_the_scheme_picks_the_variable() -> None:
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".internal"}
    assert load({**env, "HTTP_ENDPOINT": "https://logs.internal/in"}).endpoint.proxy is None
    assert load({**env, "HTTP_ENDPOINT": "http://logs.example/in"}).endpoint.proxy is None
    assert load({**env, "HTTP_ENDPOINT": "https://logs.example/in"}).endpoint.proxy is not None


@pytest.mark.parametrize(
    ("value", "words"),
    [("https://proxy:443", "only http:// proxies"), ("socks5://proxy:1080", "only http://"),
     ("http://proxy:99999", "invalid port"), ("http://:3128", "no usable host")],
)
def test_unusable_proxies_are_configuration_errors(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        load({"HTTP_ENDPOINT": "https://logs.example.com/in", "https_proxy": value})
    assert error.value.variable == "https_proxy" and words in str(error.value)
