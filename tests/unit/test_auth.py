"""Auth strategies: plain values in, one header out; built from the settings the same way."""

from __future__ import annotations

import base64
import gzip
import hashlib
from typing import Any

import pytest

from lambda_logs_http.aws.credentials import Credentials
from lambda_logs_http.http import auth
from lambda_logs_http.settings.load import AUTH_FIELD_VARIABLES, infer_sigv4_service, load
from lambda_logs_http.settings.parse import ConfigError

BASE = {"HTTP_ENDPOINT": "https://x/"}


@pytest.mark.parametrize(
    ("strategy", "header", "value"),
    [
        (auth.BasicAuth("u", "p:w"), "Authorization", "Basic " + base64.b64encode(b"u:p:w").decode()),
        (auth.BearerAuth("tok"), "Authorization", "Bearer tok"),
        (auth.ApiKeyAuth("k"), "X-API-Key", "k"),
        (auth.ApiKeyAuth("k", header_name="DD-API-KEY"), "DD-API-KEY", "k"),
        (auth.SplunkAuth("hec-tok"), "Authorization", "Splunk hec-tok"),
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
        ({"HTTP_AUTH_TYPE": "splunk", "HTTP_AUTH_CREDENTIALS": "12345678-hec-token"},
         "Authorization", "12345678-hec-token"),
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
    assert shown[header] in ("***", "Basic ***", "Bearer ***", "Splunk ***")


def test_none_adds_nothing() -> None:
    headers: dict[str, str] = {}
    auth.build("none", username="", credentials="", header_name="").apply(headers)
    assert headers == {}


@pytest.mark.parametrize("kind", list(auth.STRATEGIES))
def test_every_registered_strategy_is_checked_by_the_settings(kind: str) -> None:
    """A strategy's required values are required by the settings, named by their variable."""
    strategy = auth.STRATEGIES[kind]
    for field in (*strategy.required, *strategy.optional):
        assert field in AUTH_FIELD_VARIABLES  # each value names a field of the settings' Auth
    if strategy.required:
        with pytest.raises(ConfigError) as error:
            load({**BASE, "HTTP_AUTH_TYPE": kind})
        assert error.value.variable in {AUTH_FIELD_VARIABLES[f] for f in strategy.required}
    full = {"HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_CREDENTIALS": "c", "HTTP_AUTH_HEADER_NAME": "X-K",
            "HTTP_AWS_SIGV4_SERVICE": "execute-api", "HTTP_AWS_SIGV4_REGION": "eu-west-1"}
    settings = load({**BASE, "HTTP_AUTH_TYPE": kind, **full}).auth
    built = auth.build(kind, **{f: getattr(settings, f) for f in AUTH_FIELD_VARIABLES},
                       aws_credentials=lambda: Credentials("AKID", "secret"))
    assert isinstance(built, strategy)


def test_unknown_type_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigError, match="HTTP_AUTH_TYPE: unknown auth type 'oauth'; use one of none, basic, bearer, apikey"):
        load({**BASE, "HTTP_AUTH_TYPE": "oauth"})


SIGNED_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/logs?x=1"
SIGNED_HEADERS = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com",
                  "Content-Type": "application/json", "User-Agent": "lambda-logs-http/test",
                  "Idempotency-Key": "b-1", "Content-Encoding": "gzip"}


def sigv4_strategy(token: str | None = "session-token") -> auth.AwsSigV4Auth:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    return auth.AwsSigV4Auth("execute-api", "eu-west-1", lambda: credentials)


def expected(token: str | None = "session-token") -> Any:
    from tests.support.sigv4_check import Expected

    return Expected("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token,
                    "eu-west-1", "execute-api")


@pytest.mark.parametrize("token", ["session-token", None])
def test_aws_sigv4_signs_the_request_as_sent_and_botocore_verifies_it(token: str | None) -> None:
    pytest.importorskip("botocore", reason="botocore (pip install -r requirements-dev.txt)")
    from tests.support.sigv4_check import problems

    body = gzip.compress(b'{"logs": [{"message": "x"}]}')
    headers = dict(SIGNED_HEADERS)
    sigv4_strategy(token).apply(headers, auth.Request("POST", SIGNED_URL, body))
    assert headers["X-Amz-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert ("X-Amz-Security-Token" in headers) == (token is not None)
    must = ("content-type", "content-encoding", "idempotency-key")
    assert problems("POST", SIGNED_URL, headers, body, expected(token), must_sign=must) == []
    # The same signature over another body, or with a header changed, does not verify.
    assert problems("POST", SIGNED_URL, headers, body + b"x", expected(token)) != []
    changed = {**headers, "Idempotency-Key": "b-2"}
    assert problems("POST", SIGNED_URL, changed, body, expected(token)) != []


def test_aws_sigv4_signs_the_extra_headers_and_redacts_them() -> None:
    pytest.importorskip("botocore", reason="botocore (pip install -r requirements-dev.txt)")
    from tests.support.sigv4_check import problems

    strategy = auth.WithHeaders(sigv4_strategy(), (("X-Scope-OrgID", "team-a"),))
    headers = dict(SIGNED_HEADERS)
    strategy.apply(headers, auth.Request("POST", SIGNED_URL, b"{}"))
    assert headers["X-Scope-OrgID"] == "team-a"
    assert problems("POST", SIGNED_URL, headers, b"{}", expected(),
                    must_sign=("x-scope-orgid",)) == []
    shown = auth.redact_headers(headers, strategy)
    assert shown["X-Scope-OrgID"] == "***" and shown["X-Amz-Security-Token"] == "***"
    assert shown["Authorization"] == "AWS4-HMAC-SHA256 ***"


def test_aws_sigv4_without_credentials_fails_the_send_not_the_worker() -> None:
    from lambda_logs_http.aws.errors import AwsError

    def unavailable() -> Credentials:
        raise AwsError("CredentialsEndpointError", "the credentials endpoint answered HTTP 500")

    strategy = auth.AwsSigV4Auth("execute-api", "eu-west-1", unavailable)
    with pytest.raises(auth.SigningFailed, match="HTTP 500") as raised:
        strategy.apply({}, auth.Request("POST", SIGNED_URL, b""))
    assert isinstance(raised.value, OSError)  # the transport keeps the batch and retries


def test_aws_sigv4_settings_infer_the_service_and_default_the_region() -> None:
    env = {"HTTP_AUTH_TYPE": "aws_sigv4", "AWS_REGION": "eu-west-1"}
    loaded = load({**env, "HTTP_ENDPOINT": "https://abc.lambda-url.eu-west-1.on.aws/"})
    assert (loaded.auth.aws_service, loaded.auth.aws_region) == ("", "eu-west-1")
    settings = infer_sigv4_service(loaded).auth  # after register (no aws.sigv4 import before)
    assert (settings.aws_service, settings.aws_region) == ("lambda", "eu-west-1")
    given = load({**env, "HTTP_ENDPOINT": "https://logs.example.com/",
                  "HTTP_AWS_SIGV4_SERVICE": "execute-api", "HTTP_AWS_SIGV4_REGION": "us-west-2"})
    assert (given.auth.aws_service, given.auth.aws_region) == ("execute-api", "us-west-2")


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"HTTP_ENDPOINT": "https://logs.example.com/"}, "HTTP_AWS_SIGV4_SERVICE",
         "cannot be inferred from the host logs.example.com"),
        ({"HTTP_ENDPOINT": "https://a.execute-api.eu-west-1.amazonaws.com/", "AWS_REGION": ""},
         "HTTP_AWS_SIGV4_REGION", "is not set, nor is AWS_REGION"),
        ({"HTTP_ENDPOINT": "https://logs.example.com/", "HTTP_AWS_SIGV4_SERVICE": "exec api"},
         "HTTP_AWS_SIGV4_SERVICE", "is not an AWS name"),
    ],
)
def test_aws_sigv4_settings_errors_name_the_variable(
    env: dict[str, str], variable: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        infer_sigv4_service(load({"HTTP_AUTH_TYPE": "aws_sigv4", "AWS_REGION": "eu-west-1", **env}))
    assert error.value.variable == variable and words in str(error.value)


def test_the_splunk_token_is_shown_nowhere_test_mode_prints_headers() -> None:
    """Test mode prints the request's headers: the HEC token is redacted, its scheme kept."""
    import io

    from lambda_logs_http import log
    from lambda_logs_http.http.transport import TestModeTransport

    token = "0f1e2d3c-hec-secret"
    settings = load({**BASE, "HTTP_AUTH_TYPE": "splunk", "HTTP_AUTH_CREDENTIALS": token})
    strategy = auth.build(settings.auth.kind, credentials=settings.auth.credentials)
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        TestModeTransport(settings.endpoint, strategy).send(b"{}", {}, 1.0)
    finally:
        import sys

        log.set_stream(sys.stdout)
    assert "'Authorization': 'Splunk ***'" in stream.getvalue()
    assert token not in stream.getvalue() and token not in repr(settings)


def test_splunk_needs_its_token() -> None:
    with pytest.raises(ConfigError, match="HTTP_AUTH_CREDENTIALS: is required when HTTP_AUTH_TYPE=splunk"):
        load({**BASE, "HTTP_AUTH_TYPE": "splunk"})
