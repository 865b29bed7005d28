"""Settings whose values come from AWS, as the extension reads them after registering
(``settings.secrets.complete``): through its own HTTP stack (``http.request``), against
``moto_server`` (signatures, session tokens and IAM checked), through a real TLS front and real
forward proxies; and what each failure says, never with a secret in it."""

from __future__ import annotations

import json

import pytest

from lambda_logs_http.settings.load import secret_sources
from lambda_logs_http.settings.parse import ConfigError
from lambda_logs_http.settings.secrets import SecretUnavailable, complete
from tests.aws.conftest import (
    FUNCTION_NAME,
    JSON_TOKEN,
    KMS_TOKEN,
    PLAIN_TOKEN,
    REGION,
    SECRET_VALUES,
    SSM_TOKEN,
    Moto,
)
from tests.support.fixtures import tls_material  # noqa: F401
from tests.support.nginx import Nginx, require_nginx
from tests.support.proxies import Tinyproxy, tinyproxy_available
from tests.support.tls import TlsMaterial

RECEIVER = "https://logs.example.com/ingest"


def settings_from(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """What app.run does: find the sources before register, complete after it."""
    return complete(env, function_name=FUNCTION_NAME)[0]


def failure(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings_from(env)
    text = str(caught.value) + repr(caught.value)
    for value in SECRET_VALUES:
        assert value not in text
    return caught.value


def bearer(moto: Moto, **source: str) -> dict[str, str]:
    return moto.environ(HTTP_ENDPOINT=RECEIVER, HTTP_AUTH_TYPE="bearer", **source)


@pytest.mark.parametrize(
    ("source", "token"),
    [
        ({"HTTP_AUTH_CREDENTIALS_SECRET_ARN": "plain-token"}, PLAIN_TOKEN),
        ({"HTTP_AUTH_CREDENTIALS_SECRET_ARN": "json-token",
          "HTTP_AUTH_CREDENTIALS_SECRET_KEY": "api_key"}, JSON_TOKEN),
        ({"HTTP_AUTH_CREDENTIALS_SSM_NAME": "/lambda-logs-http/token"}, SSM_TOKEN),
        ({"HTTP_AUTH_CREDENTIALS_KMS_ENCRYPTED": "context"}, KMS_TOKEN),
    ],
    ids=["secret", "json-key", "ssm", "kms"],
)
def test_each_source_gives_the_setting_its_value(
    moto: Moto, source: dict[str, str], token: str
) -> None:
    if "HTTP_AUTH_CREDENTIALS_KMS_ENCRYPTED" in source:
        source = {"HTTP_AUTH_CREDENTIALS_KMS_ENCRYPTED": moto.ciphertexts["context"]}
    settings = settings_from(bearer(moto, **source))
    assert settings.auth.credentials == token
    assert token not in repr(settings)


def test_every_setting_can_come_from_aws(moto: Moto) -> None:
    moto.cli("secretsmanager", "create-secret", "--name", "all-settings", "--secret-string",
             json.dumps({"url": "https://logs.example.com/t0k3n/ingest?key=k", "user": "ingest",
                         "password": "pa55", "headers": '{"X-Scope-OrgID": "team-a"}'}))
    env = moto.environ(HTTP_AUTH_TYPE="basic")
    for setting, key in (("HTTP_ENDPOINT", "url"), ("HTTP_AUTH_USERNAME", "user"),
                         ("HTTP_AUTH_CREDENTIALS", "password"), ("HTTP_HEADERS", "headers")):
        env[f"{setting}_SECRET_ARN"] = "all-settings"
        env[f"{setting}_SECRET_KEY"] = key
    settings = settings_from(env)
    assert settings.endpoint.url == "https://logs.example.com/t0k3n/ingest?key=k"
    assert (settings.auth.username, settings.auth.credentials) == ("ingest", "pa55")
    assert settings.auth.headers == (("X-Scope-OrgID", "team-a"),)
    # A secret URL is shown by its host only: its path and query may be the secret.
    assert settings.endpoint.display == "https://logs.example.com/***"


def test_the_first_failure_names_the_variable_the_code_and_the_fix(moto: Moto) -> None:
    error = failure(bearer(moto, HTTP_AUTH_CREDENTIALS_SECRET_ARN="no-such-secret"))
    assert isinstance(error, SecretUnavailable)
    assert (error.setting, error.variable, error.code) == (
        "HTTP_AUTH_CREDENTIALS", "HTTP_AUTH_CREDENTIALS_SECRET_ARN", "ResourceNotFoundException")
    assert f"Fix: check the secret's ARN or name, and that it exists in {REGION}" in str(error)


def test_access_denied_names_the_iam_action_and_resource(moto: Moto) -> None:
    arn = moto.arns["plain-token"]
    env = bearer(moto, HTTP_AUTH_CREDENTIALS_SECRET_ARN=arn)
    error = failure({**env, **moto.locked})
    assert isinstance(error, SecretUnavailable) and error.code in ("AccessDenied",
                                                                   "AccessDeniedException")
    assert f"allow secretsmanager:GetSecretValue on {arn}" in str(error)


def test_a_missing_json_key_names_the_key_variable(moto: Moto) -> None:
    error = failure(bearer(moto, HTTP_AUTH_CREDENTIALS_SECRET_ARN="json-token",
                           HTTP_AUTH_CREDENTIALS_SECRET_KEY="token"))
    assert (error.variable, getattr(error, "code", "")) == ("HTTP_AUTH_CREDENTIALS_SECRET_KEY",
                                                            "JsonKeyNotFound")


def test_an_unreachable_endpoint_is_bounded_and_named(moto: Moto) -> None:
    env = bearer(moto, HTTP_AUTH_CREDENTIALS_SSM_NAME="/lambda-logs-http/token",
                 AWS_ENDPOINT_URL="http://127.0.0.1:9/")
    error = failure(env)
    assert getattr(error, "code", "") == "EndpointUnreachable"
    assert "AWS_ENDPOINT_URL_SSM sets another endpoint" in str(error)


def test_a_fetched_value_is_validated_as_a_plain_one_and_never_quoted(moto: Moto) -> None:
    moto.cli("secretsmanager", "create-secret", "--name", "bad-url",
             "--secret-string", "ftp://s3cret-host.example.com/t0ken")
    error = failure(moto.environ(HTTP_ENDPOINT_SECRET_ARN="bad-url"))
    assert error.variable == "HTTP_ENDPOINT"
    assert "must be an http:// or https:// URL" in str(error)
    assert "(the value read from HTTP_ENDPOINT_SECRET_ARN)" in str(error)
    assert "s3cret-host" not in str(error) and "ftp" not in str(error)
    moto.cli("secretsmanager", "create-secret", "--name", "bad-headers",
             "--secret-string", '{"X-Token": "t0k\\r\\nen"}')
    error = failure(moto.environ(HTTP_ENDPOINT=RECEIVER, HTTP_HEADERS_SECRET_ARN="bad-headers"))
    assert error.variable == "HTTP_HEADERS" and "holds a line break" in str(error)
    assert "t0k" not in str(error)


def test_a_setting_given_twice_is_a_configuration_error_before_any_call(moto: Moto) -> None:
    env = bearer(moto, HTTP_AUTH_CREDENTIALS="plain", HTTP_AUTH_CREDENTIALS_SSM_NAME="/x")
    with pytest.raises(ConfigError) as caught:
        secret_sources(env)
    assert caught.value.variable == "HTTP_AUTH_CREDENTIALS_SSM_NAME"
    assert "takes one value" in str(caught.value)


def test_over_verified_tls(moto: Moto, tls_material: TlsMaterial, tmp_path) -> None:  # noqa: F811
    """An https:// AWS endpoint (nginx in front of moto): verified against AWS_CA_BUNDLE, and
    refused when the CA is not trusted."""
    require_nginx()
    port = int(moto.endpoint.rsplit(":", 1)[1])
    with Nginx(port, tmp_path, tls=tls_material, basic_auth=None) as nginx:
        endpoint = f"https://localhost:{nginx.port}"
        env = bearer(moto, HTTP_AUTH_CREDENTIALS_SSM_NAME="/lambda-logs-http/token",
                     AWS_ENDPOINT_URL=endpoint)
        trusted = {**env, "AWS_CA_BUNDLE": str(tls_material.ca_file)}
        assert settings_from(trusted).auth.credentials == SSM_TOKEN
        error = failure({**env, "AWS_CA_BUNDLE": str(tls_material.other_ca_file)})
        assert getattr(error, "code", "") == "EndpointUnreachable"
        assert "SSLCertVerificationError" in str(error)


def test_through_the_receivers_proxy_and_exempted_by_no_proxy(moto: Moto, tmp_path) -> None:
    if not tinyproxy_available():
        pytest.skip("tinyproxy is not installed (Debian: apt-get install tinyproxy)")
    port = moto.endpoint.rsplit(":", 1)[1]
    env = bearer(moto, HTTP_AUTH_CREDENTIALS_SECRET_ARN="plain-token",
                 AWS_ENDPOINT_URL=f"http://localhost:{port}")
    with Tinyproxy(tmp_path, ("relay", "pr0xy")) as proxy:
        proxied = {**env, "HTTP_PROXY": f"http://relay:pr0xy@127.0.0.1:{proxy.port}"}
        assert settings_from(proxied).auth.credentials == PLAIN_TOKEN
        assert any(f"localhost:{port}" in line for line in proxy.connections())
        seen = len(proxy.connections())
        exempt = {**proxied, "NO_PROXY": "localhost"}
        assert settings_from(exempt).auth.credentials == PLAIN_TOKEN
        assert len(proxy.connections()) == seen
        refused = {**env, "HTTP_PROXY": f"http://127.0.0.1:{proxy.port}"}  # no credentials
        error = failure(refused)  # the proxy's 407 (it closes at once): no answer from AWS
        assert getattr(error, "code", "") == "EndpointUnreachable"


def test_an_endpoint_that_never_answers_costs_the_two_second_timeout(moto: Moto) -> None:
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel accepts; nothing ever answers
    env = bearer(moto, HTTP_AUTH_CREDENTIALS_SECRET_ARN="plain-token",
                 AWS_ENDPOINT_URL=f"http://127.0.0.1:{silent.getsockname()[1]}")
    started = time.monotonic()
    try:
        error = failure(env)
    finally:
        silent.close()
    assert getattr(error, "code", "") == "Timeout" and "did not answer in time" in str(error)
    assert 1.9 < time.monotonic() - started < 3.0
