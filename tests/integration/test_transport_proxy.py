"""Delivery through real forward proxies (tinyproxy, mitmproxy): what a function in a VPC
without a NAT gateway does. ``http://`` endpoints go as absolute-form requests, ``https://``
ones through a ``CONNECT`` tunnel with TLS verified against the endpoint itself."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_logs_http import app, log
from lambda_logs_http.settings.load import load
from tests.support.faults import find_mitmdump
from tests.support.fixtures import BASIC_AUTH
from tests.support.nginx import Nginx
from tests.support.proxies import MitmForwardProxy, Tinyproxy, tinyproxy_available
from tests.support.tls import TlsMaterial
from tools.lambda_sandbox.receiver import Receiver

BODY = b'{"logs":[{"message":"via the proxy"}]}'
PROXY_USER, PROXY_PASSWORD = "relay", "pr0xy-s3cret"


def proxies(tmp_path: Path, credentials: tuple[str, str] | None = None) -> Iterator[object]:
    """Each real forward proxy that is installed, started for one test."""
    if tinyproxy_available():
        with Tinyproxy(tmp_path, credentials) as proxy:
            yield proxy
    if find_mitmdump() is not None:
        with MitmForwardProxy(tmp_path, credentials) as proxy:
            yield proxy


@pytest.fixture(params=["tinyproxy", "mitmproxy"])
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tinyproxy | MitmForwardProxy]:
    if request.param == "tinyproxy":
        if not tinyproxy_available():
            pytest.skip("tinyproxy is not installed (Debian: apt-get install tinyproxy)")
        with Tinyproxy(tmp_path, (PROXY_USER, PROXY_PASSWORD)) as running:
            yield running
    else:
        if find_mitmdump() is None:
            pytest.skip("mitmdump is not installed (pip install -r requirements-dev.txt)")
        with MitmForwardProxy(tmp_path, (PROXY_USER, PROXY_PASSWORD)) as running:
            yield running


def with_credentials(url: str, user: str = PROXY_USER, password: str = PROXY_PASSWORD) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


def saw(proxy: Tinyproxy | MitmForwardProxy, port: int) -> bool:
    """Whether the proxy's log shows a connection to 127.0.0.1:``port`` / localhost:``port``."""
    text = "\n".join(proxy.connections()) if isinstance(proxy, Tinyproxy) else proxy.output()
    return f":{port}" in text


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    log.set_stream(sys.stdout)


def test_an_http_endpoint_is_reached_through_the_proxy(
    proxy: Tinyproxy | MitmForwardProxy, receiver: Receiver
) -> None:
    settings = load({"HTTP_ENDPOINT": receiver.url, "HTTP_PROXY": with_credentials(proxy.url)})
    transport = app.transport(settings)
    for _ in range(3):  # a kept-alive connection to the proxy
        result = transport.send(BODY, {}, 10)
        assert result.ok, result.error
    transport.close()
    assert len(receiver.requests()) == 3 and saw(proxy, receiver.port)
    assert "Proxy-Authorization" not in receiver.requests()[0]["headers"]  # the proxy's own


def test_an_https_endpoint_is_reached_through_a_tunnel_verified_end_to_end(
    proxy: Tinyproxy | MitmForwardProxy, receiver: Receiver, tls_material: TlsMaterial,
    tmp_path: Path,
) -> None:
    with Nginx(receiver.port, tmp_path, tls=tls_material, basic_auth=BASIC_AUTH) as nginx:
        url = f"https://localhost:{nginx.port}/ingest"  # SNI and the certificate check: localhost
        env = {"HTTP_ENDPOINT": url, "HTTPS_PROXY": with_credentials(proxy.url),
               "HTTP_CA_BUNDLE": str(tls_material.ca_file), "HTTP_AUTH_TYPE": "basic",
               "HTTP_AUTH_USERNAME": BASIC_AUTH[0], "HTTP_AUTH_CREDENTIALS": BASIC_AUTH[1]}
        transport = app.transport(load(env))
        result = transport.send(BODY, {}, 10)
        assert result.ok, result.error
        transport.close()
        assert saw(proxy, nginx.port) and len(receiver.requests()) == 1
        # The certificate is checked against the endpoint, not accepted from the tunnel.
        wrong_ca = app.transport(load({**env, "HTTP_CA_BUNDLE": str(tls_material.other_ca_file)}))
        refused = wrong_ca.send(BODY, {}, 10)
        assert (refused.ok, refused.kind) == (False, "tls_verify")
        wrong_ca.close()
    assert len(receiver.requests()) == 1


def test_missing_proxy_credentials_are_one_clear_error(
    proxy: Tinyproxy | MitmForwardProxy, receiver: Receiver
) -> None:
    transport = app.transport(load({"HTTP_ENDPOINT": receiver.url, "http_proxy": proxy.url}))
    result = transport.send(BODY, {}, 10)
    assert (result.ok, result.status, result.kind) == (False, 407, "proxy")
    assert result.retryable and result.needs_fix  # kept, not dropped: a setting is wrong
    assert "http_proxy" in result.error and proxy.url in result.error
    assert receiver.requests() == []


def test_wrong_proxy_credentials_never_show_the_password(
    proxy: Tinyproxy | MitmForwardProxy, receiver: Receiver, captured_log: io.StringIO
) -> None:
    bad = with_credentials(proxy.url, password="not-the-pr0xy-pass")
    transport = app.transport(load({"HTTP_ENDPOINT": receiver.url, "http_proxy": bad}))
    result = transport.send(BODY, {}, 10)
    assert not result.ok and "http_proxy" in result.error
    # mitmproxy answers 407; tinyproxy answers 401 to a request with wrong credentials.
    assert (result.status, result.kind) in ((407, "proxy"), (401, "answered"))
    assert "not-the-pr0xy-pass" not in result.error + captured_log.getvalue() + repr(transport)
    assert receiver.requests() == []


def test_a_refused_tunnel_names_the_variable(
    proxy: Tinyproxy | MitmForwardProxy, tmp_path: Path
) -> None:
    bad = with_credentials(proxy.url, password="wrong")
    transport = app.transport(load({"HTTP_ENDPOINT": "https://localhost:9/ingest",
                                    "HTTPS_PROXY": bad}))
    result = transport.send(BODY, {}, 10)
    assert (result.ok, result.kind) == (False, "proxy")
    assert "HTTPS_PROXY" in result.error and "wrong" not in result.error


def test_no_proxy_and_the_lower_case_spelling_decide(
    proxy: Tinyproxy | MitmForwardProxy, receiver: Receiver
) -> None:
    direct = app.transport(load({"HTTP_ENDPOINT": receiver.url, "HTTP_PROXY": proxy.url,
                                 "NO_PROXY": "example.com,127.0.0.1"}))
    assert direct.send(BODY, {}, 10).ok
    direct.close()
    assert not saw(proxy, receiver.port)
    # Both spellings set: the lower-case one wins, here an empty one: no proxy at all.
    settings = load({"HTTP_ENDPOINT": receiver.url, "HTTP_PROXY": proxy.url, "http_proxy": ""})
    assert settings.endpoint.proxy is None
