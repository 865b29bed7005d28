"""Which source a setting comes from, and resolving it (against a recording stand-in for the
client: the real client against real AWS implementations is in ``test_services`` and ``tests/aws``)."""

from __future__ import annotations

import json

import pytest

from lambda_logs_http.aws import sources
from lambda_logs_http.aws.errors import AwsError
from lambda_logs_http.aws.sources import SecretSource, SourceConfigError, find_source

VAR = "HTTP_AUTH_CREDENTIALS"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:token-AbCdEf"
SECRET_VALUE = "tok-3n-never-shown"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({VAR: "plain"}, None),
        ({VAR: "", f"{VAR}_SECRET_ARN": ""}, None),
        ({f"{VAR}_SECRET_ARN": f" {ARN} "},
         SecretSource(VAR, f"{VAR}_SECRET_ARN", "secretsmanager", ARN)),
        ({f"{VAR}_SECRET_ARN": "token", f"{VAR}_SECRET_KEY": "api_key"},
         SecretSource(VAR, f"{VAR}_SECRET_ARN", "secretsmanager", "token", "api_key")),
        ({f"{VAR}_SSM_NAME": "/app/token"}, SecretSource(VAR, f"{VAR}_SSM_NAME", "ssm", "/app/token")),
        ({f"{VAR}_KMS_ENCRYPTED": "AQID\n"}, SecretSource(VAR, f"{VAR}_KMS_ENCRYPTED", "kms", "AQID")),
        # A blank plain value does not conflict with a source (templates often set VAR="").
        ({VAR: "  ", f"{VAR}_SSM_NAME": "/p"}, SecretSource(VAR, f"{VAR}_SSM_NAME", "ssm", "/p")),
        # Another setting's sources are not this one's.
        ({"HTTP_AUTH_USERNAME_SSM_NAME": "/u", f"{VAR}X_SSM_NAME": "/x"}, None),
    ],
)
def test_find_source(env: dict[str, str], expected: SecretSource | None) -> None:
    assert find_source(env, VAR) == expected


@pytest.mark.parametrize(
    ("env", "variable", "named"),
    [
        ({VAR: "plain", f"{VAR}_SECRET_ARN": ARN}, f"{VAR}_SECRET_ARN",
         [VAR, f"{VAR}_SECRET_ARN"]),
        ({f"{VAR}_SECRET_ARN": ARN, f"{VAR}_SSM_NAME": "/p"}, f"{VAR}_SSM_NAME",
         [f"{VAR}_SECRET_ARN", f"{VAR}_SSM_NAME"]),
        ({f"{VAR}_SSM_NAME": "/p", f"{VAR}_KMS_ENCRYPTED": "AQID", VAR: "x"}, f"{VAR}_SSM_NAME",
         [VAR, f"{VAR}_SSM_NAME", f"{VAR}_KMS_ENCRYPTED"]),
    ],
)
def test_more_than_one_value_is_a_configuration_error(
    env: dict[str, str], variable: str, named: list[str]
) -> None:
    with pytest.raises(SourceConfigError) as caught:
        find_source(env, VAR)
    assert caught.value.variable == variable
    for name in named:
        assert name in str(caught.value)
    assert "takes one value" in str(caught.value)
    for value in env.values():
        assert value not in str(caught.value)


@pytest.mark.parametrize("env", [{f"{VAR}_SECRET_KEY": "k"},
                                 {f"{VAR}_SECRET_KEY": "k", f"{VAR}_SSM_NAME": "/p"},
                                 {f"{VAR}_SECRET_KEY": "k", VAR: "plain"}])
def test_a_json_key_without_a_secret_arn_is_an_error(env: dict[str, str]) -> None:
    with pytest.raises(SourceConfigError) as caught:
        find_source(env, VAR)
    assert caught.value.variable == f"{VAR}_SECRET_KEY"
    assert f"{VAR}_SECRET_ARN is not set" in str(caught.value)


def test_find_sources_keeps_only_aws_ones() -> None:
    env = {"HTTP_ENDPOINT": "https://x/", "HTTP_AUTH_CREDENTIALS_SSM_NAME": "/t"}
    found = sources.find_sources(env, ["HTTP_ENDPOINT", "HTTP_AUTH_CREDENTIALS",
                                       "HTTP_AUTH_USERNAME"])
    assert list(found) == ["HTTP_AUTH_CREDENTIALS"]


def test_repr_shows_where_not_what() -> None:
    source = SecretSource(VAR, f"{VAR}_KMS_ENCRYPTED", "kms", "AQIDBAUGBwgJ")
    assert repr(source) == f"SecretSource({VAR}_KMS_ENCRYPTED)"


class Recorder:
    """Stands in for ``AwsClient``: answers from a table, records the calls."""

    def __init__(self, answers: dict[str, str], error: AwsError | None = None) -> None:
        self.answers = answers
        self.error = error
        self.calls: list[tuple[str, str, str]] = []

    def _answer(self, kind: str, reference: str, extra: str = "") -> str:
        self.calls.append((kind, reference, extra))
        if self.error is not None:
            raise self.error
        return self.answers[reference]

    def get_secret_value(self, secret_id: str) -> str:
        return self._answer("secretsmanager", secret_id)

    def get_parameter(self, name: str) -> str:
        return self._answer("ssm", name)

    def kms_decrypt(self, ciphertext_b64: str, *, function_name: str = "") -> str:
        return self._answer("kms", ciphertext_b64, function_name)


@pytest.mark.parametrize(
    ("env", "call"),
    [
        ({f"{VAR}_SECRET_ARN": ARN}, ("secretsmanager", ARN, "")),
        ({f"{VAR}_SSM_NAME": "/app/token"}, ("ssm", "/app/token", "")),
        ({f"{VAR}_KMS_ENCRYPTED": "AQID"}, ("kms", "AQID", "my-fn")),
    ],
)
def test_resolve_calls_the_right_service(env: dict[str, str], call: tuple[str, str, str]) -> None:
    source = find_source(env, VAR)
    assert source is not None
    client = Recorder({call[1]: SECRET_VALUE + "\n"})
    assert sources.resolve(source, client, function_name="my-fn") == SECRET_VALUE  # type: ignore[arg-type]
    assert client.calls == [call]


@pytest.mark.parametrize(("stored", "resolved"), [("a\r\n", "a"), ("a\n\n", "a\n"), (" a ", " a ")])
def test_only_one_trailing_line_break_is_dropped(stored: str, resolved: str) -> None:
    source = SecretSource(VAR, f"{VAR}_SSM_NAME", "ssm", "/p")
    assert sources.resolve(source, Recorder({"/p": stored})) == resolved  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("tok", "tok"), (42, "42"), (True, "true"), (1.5, "1.5")],
)
def test_json_key_values(value: object, expected: str) -> None:
    source = SecretSource(VAR, f"{VAR}_SECRET_ARN", "secretsmanager", ARN, "api_key")
    client = Recorder({ARN: json.dumps({"api_key": value, "other": "x"})})
    assert sources.resolve(source, client) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("secret", "code", "words"),
    [
        (json.dumps({"API_KEY": SECRET_VALUE}), "JsonKeyNotFound", "has no key 'api_key' (its keys: 'API_KEY')"),
        (SECRET_VALUE, "SecretNotJson", "is not a JSON object"),
        (json.dumps([SECRET_VALUE]), "SecretNotJson", "is not a JSON object"),
        (json.dumps({"api_key": {"nested": SECRET_VALUE}}), "SecretNotText", "holds a JSON object"),
        (json.dumps({"api_key": None}), "SecretNotText", "holds a JSON null"),
    ],
)
def test_json_key_errors_name_the_key_variable_never_the_secret(
    secret: str, code: str, words: str
) -> None:
    source = SecretSource(VAR, f"{VAR}_SECRET_ARN", "secretsmanager", ARN, "api_key")
    with pytest.raises(AwsError) as caught:
        sources.resolve(source, Recorder({ARN: secret}))  # type: ignore[arg-type]
    error = caught.value
    assert error.code == code
    assert error.variable == f"{VAR}_SECRET_KEY"
    assert str(error).startswith(f"{VAR}_SECRET_KEY: ")
    assert words in str(error)
    assert SECRET_VALUE not in str(error) + repr(error)


def test_aws_errors_are_named_after_the_source_variable() -> None:
    failure = AwsError("ParameterNotFound", "SSM Parameter Store GetParameter failed ...",
                       status=400, service="ssm", action="GetParameter")
    source = SecretSource(VAR, f"{VAR}_SSM_NAME", "ssm", "/p")
    with pytest.raises(AwsError) as caught:
        sources.resolve(source, Recorder({}, failure))  # type: ignore[arg-type]
    error = caught.value
    assert (error.code, error.status, error.service, error.action) == (
        "ParameterNotFound", 400, "ssm", "GetParameter")
    assert error.variable == f"{VAR}_SSM_NAME"
    assert str(error) == f"{VAR}_SSM_NAME: SSM Parameter Store GetParameter failed ..."
    assert error.__cause__ is None and error.__suppress_context__


def test_resolve_all_by_setting() -> None:
    env = {"HTTP_AUTH_CREDENTIALS_SSM_NAME": "/t", "HTTP_ENDPOINT_SECRET_ARN": ARN}
    found = sources.find_sources(env, ["HTTP_ENDPOINT", "HTTP_AUTH_CREDENTIALS"])
    client = Recorder({"/t": "token", ARN: "https://logs.example/"})
    assert sources.resolve_all(found, client) == {  # type: ignore[arg-type]
        "HTTP_ENDPOINT": "https://logs.example/", "HTTP_AUTH_CREDENTIALS": "token"}
