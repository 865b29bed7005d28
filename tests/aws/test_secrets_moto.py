"""Each secret source resolved for real: the package's client, signer and credentials against
``moto_server`` (which verifies signatures and session tokens and enforces IAM), seeded by the AWS
CLI (``conftest.py``)."""

from __future__ import annotations

import pytest

from lambda_logs_http.aws import sources
from lambda_logs_http.aws.credentials import CredentialsProvider
from lambda_logs_http.aws.errors import AwsError
from lambda_logs_http.aws.services import AwsClient
from tests.aws.conftest import (
    FUNCTION_NAME,
    JSON_TOKEN,
    KMS_TOKEN,
    KMS_TOKEN_NO_CONTEXT,
    PLAIN_TOKEN,
    REGION,
    SECRET_VALUES,
    SSM_TOKEN,
    Moto,
)
from tests.unit.aws.http_support import Reply, http_request, scripted_server

VAR = "HTTP_AUTH_CREDENTIALS"


def resolve(environ: dict[str, str]) -> str:
    """What the extension does at init: find the source, build the client, fetch."""
    source = sources.find_source(environ, VAR)
    assert source is not None
    client = AwsClient(environ, http_request, CredentialsProvider(environ, http_request).get)
    return sources.resolve(source, client, function_name=environ["AWS_LAMBDA_FUNCTION_NAME"])


def failure(environ: dict[str, str]) -> AwsError:
    with pytest.raises(AwsError) as caught:
        resolve(environ)
    text = str(caught.value) + repr(caught.value)
    for value in SECRET_VALUES:
        assert value not in text
    return caught.value


def test_secret_string_by_name_and_by_arn(moto: Moto) -> None:
    assert resolve(moto.environ(**{f"{VAR}_SECRET_ARN": "plain-token"})) == PLAIN_TOKEN
    arn = moto.arns["plain-token"]
    assert resolve(moto.environ(**{f"{VAR}_SECRET_ARN": arn})) == PLAIN_TOKEN


def test_json_key_of_a_secret(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_SECRET_ARN": moto.arns["json-token"],
                          f"{VAR}_SECRET_KEY": "api_key"})
    assert resolve(env) == JSON_TOKEN


def test_missing_json_key(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_SECRET_ARN": moto.arns["json-token"],
                          f"{VAR}_SECRET_KEY": "API_KEY"})
    error = failure(env)
    assert error.code == "JsonKeyNotFound"
    assert error.variable == f"{VAR}_SECRET_KEY"
    assert "its keys: 'api_key', 'user'" in str(error)


def test_ssm_secure_string(moto: Moto) -> None:
    assert resolve(moto.environ(**{f"{VAR}_SSM_NAME": "/lambda-logs-http/token"})) == SSM_TOKEN


def test_kms_ciphertext_with_the_function_name_context(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_KMS_ENCRYPTED": moto.ciphertexts["context"]})
    assert resolve(env) == KMS_TOKEN


def test_kms_ciphertext_without_context(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_KMS_ENCRYPTED": moto.ciphertexts["none"]})
    assert resolve(env) == KMS_TOKEN_NO_CONTEXT


def test_kms_ciphertext_of_another_function(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_KMS_ENCRYPTED": moto.ciphertexts["context"]},
                       AWS_LAMBDA_FUNCTION_NAME="another-function")
    error = failure(env)
    assert error.code == "InvalidCiphertextException"
    assert error.variable == f"{VAR}_KMS_ENCRYPTED"
    assert "LambdaFunctionName" in str(error)


def test_secret_not_found(moto: Moto) -> None:
    error = failure(moto.environ(**{f"{VAR}_SECRET_ARN": "no-such-secret"}))
    assert error.code == "ResourceNotFoundException"
    # (moto answers HTTP 404 where AWS answers 400: the code is what counts.)
    assert str(error).startswith(f"{VAR}_SECRET_ARN: Secrets Manager GetSecretValue failed with "
                                 "ResourceNotFoundException (HTTP ")
    assert f"exists in {REGION}" in str(error)


def test_parameter_not_found(moto: Moto) -> None:
    error = failure(moto.environ(**{f"{VAR}_SSM_NAME": "/lambda-logs-http/nope"}))
    assert error.code == "ParameterNotFound"
    assert error.variable == f"{VAR}_SSM_NAME"


def test_access_denied_names_the_action_and_resource(moto: Moto) -> None:
    arn = moto.arns["plain-token"]
    error = failure(moto.environ(**{f"{VAR}_SECRET_ARN": arn}, **moto.locked))
    assert error.code in ("AccessDeniedException", "AccessDenied")  # moto says the latter
    assert error.status in (400, 403)
    assert f"allow secretsmanager:GetSecretValue on {arn} in the function's execution role" \
        in str(error)
    assert f"assumed-role/locked-role/{FUNCTION_NAME}" in str(error)  # moto's own words


def test_ssm_access_denied(moto: Moto) -> None:
    error = failure(moto.environ(**{f"{VAR}_SSM_NAME": "/lambda-logs-http/token"}, **moto.locked))
    assert error.code in ("AccessDeniedException", "AccessDenied")
    assert (f"allow ssm:GetParameter on arn:aws:ssm:{REGION}:<account-id>:parameter/"
            "lambda-logs-http/token") in str(error)


def test_kms_access_denied(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_KMS_ENCRYPTED": moto.ciphertexts["context"]}, **moto.locked)
    error = failure(env)
    assert error.code in ("AccessDeniedException", "AccessDenied")
    assert "allow kms:Decrypt on the key that encrypted the value" in str(error)
    assert f"kms:EncryptionContext:LambdaFunctionName = {FUNCTION_NAME}" in str(error)


def test_a_wrong_secret_key_is_caught_by_the_signature_check(moto: Moto) -> None:
    """moto verifies signatures: the calls above succeed because ours are right."""
    env = moto.environ(**{f"{VAR}_SECRET_ARN": "plain-token"},
                       AWS_SECRET_ACCESS_KEY="not-the-secret-key")
    error = failure(env)
    assert error.code == "SignatureDoesNotMatch"
    assert "do not override AWS_ACCESS_KEY_ID" in str(error)
    assert "not-the-secret-key" not in str(error)
    assert moto.function["AWS_SESSION_TOKEN"] not in str(error)


def test_a_wrong_session_token_is_refused(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_SECRET_ARN": "plain-token"}, AWS_SESSION_TOKEN="forged")
    assert failure(env).code == "InvalidClientTokenId"


def test_snapstart_credentials_from_the_container_endpoint(moto: Moto) -> None:
    """No keys in the environment: the role's credentials come from the credentials endpoint."""
    document = {"AccessKeyId": moto.function["AWS_ACCESS_KEY_ID"],
                "SecretAccessKey": moto.function["AWS_SECRET_ACCESS_KEY"],
                "Token": moto.function["AWS_SESSION_TOKEN"],
                "Expiration": "2099-01-01T00:00:00Z"}
    with scripted_server(Reply(200, document)) as endpoint:
        env = {"AWS_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
               "AWS_ENDPOINT_URL": moto.endpoint,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}2021-04-23/credentials",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "snapstart-token",
               f"{VAR}_SSM_NAME": "/lambda-logs-http/token"}
        assert resolve(env) == SSM_TOKEN
    assert endpoint.seen[0].headers["Authorization"] == "snapstart-token"


def test_per_service_endpoint_wins(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_SECRET_ARN": "plain-token"},
                       AWS_ENDPOINT_URL="http://127.0.0.1:9/",  # nothing listens there
                       AWS_ENDPOINT_URL_SECRETS_MANAGER=moto.endpoint)
    assert resolve(env) == PLAIN_TOKEN


def test_unreachable_endpoint(moto: Moto) -> None:
    env = moto.environ(**{f"{VAR}_SECRET_ARN": "plain-token"},
                       AWS_ENDPOINT_URL="http://127.0.0.1:9/")
    error = failure(env)
    assert error.code == "EndpointUnreachable"
    assert str(error).startswith(f"{VAR}_SECRET_ARN: Secrets Manager GetSecretValue: "
                                 "http://127.0.0.1:9 could not be reached")
