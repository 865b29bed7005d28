"""``AwsClient`` against a real local server that answers as AWS does, errors included.

The happy paths against a real AWS implementation are in ``tests/aws`` (moto); here are the
answers moto cannot give: AWS's JSON errors, throttling, 5xx, timeouts, and what is sent.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
from collections.abc import Callable

import pytest

from lambda_logs_http.aws import services
from lambda_logs_http.aws.credentials import Credentials
from lambda_logs_http.aws.errors import AwsError
from lambda_logs_http.aws.services import AwsClient
from tests.unit.aws.http_support import (
    Reply,
    ScriptedServer,
    aws_error,
    http_request,
    scripted_server,
)

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "TOKEN/session+value==")
ARN = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:api-token-AbCdEf"
SECRET_VALUE = "s3cr3t-value-never-logged"


def client(server_url: str, *, sleeps: list[float] | None = None, timeout: float = 2.0,
           clock: Callable[[], float] = lambda: 1_767_225_600.0, **env: str) -> AwsClient:
    environ = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": server_url, **env}
    pauses = sleeps if sleeps is not None else []
    return AwsClient(environ, http_request, lambda: CREDENTIALS, timeout=timeout,
                     clock=clock, sleep=pauses.append)


def failure(
    call: Callable[[AwsClient], object], *replies: Reply
) -> tuple[AwsError, ScriptedServer]:
    """The ``AwsError`` that ``call`` raises against a server answering ``replies``."""
    with scripted_server(*replies) as server:
        try:
            call(client(server.url))
        except AwsError as error:
            return error, server
    raise AssertionError("no AwsError was raised")


def test_get_secret_value_request_as_aws_json_1_1() -> None:
    with scripted_server(Reply(200, {"ARN": ARN, "SecretString": SECRET_VALUE})) as server:
        assert client(server.url).get_secret_value(ARN) == SECRET_VALUE
    seen = server.seen[0]
    assert (seen.method, seen.path) == ("POST", "/")
    assert seen.headers["X-Amz-Target"] == "secretsmanager.GetSecretValue"
    assert seen.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert seen.headers["Host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["X-Amz-Security-Token"] == CREDENTIALS.session_token
    assert seen.headers["X-Amz-Date"] == "20260101T000000Z"
    # The ARN's region (eu-west-2) wins over AWS_REGION (us-east-1).
    assert ("Credential=AKIDEXAMPLE/20260101/eu-west-2/secretsmanager/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
            in seen.headers["Authorization"])
    assert seen.json() == {"SecretId": ARN}


def test_get_parameter_asks_for_decryption() -> None:
    answer = {"Parameter": {"Name": "/app/token", "Type": "SecureString", "Value": "v"}}
    with scripted_server(Reply(200, answer)) as server:
        assert client(server.url).get_parameter("/app/token") == "v"
    assert server.seen[0].headers["X-Amz-Target"] == "AmazonSSM.GetParameter"
    assert server.seen[0].json() == {"Name": "/app/token", "WithDecryption": True}
    assert "/us-east-1/ssm/aws4_request" in server.seen[0].headers["Authorization"]


def test_kms_decrypt_tries_the_function_context_then_none() -> None:
    blob = base64.b64encode(b"\x01\x02ciphertext").decode()
    plaintext = base64.b64encode(SECRET_VALUE.encode()).decode()
    with scripted_server(aws_error(400, "InvalidCiphertextException", ""),
                         Reply(200, {"Plaintext": plaintext})) as server:
        got = client(server.url).kms_decrypt(f" {blob}\n", function_name="my-function")
    assert got == SECRET_VALUE
    assert [seen.headers["X-Amz-Target"] for seen in server.seen] == ["TrentService.Decrypt"] * 2
    assert server.seen[0].json() == {"CiphertextBlob": blob,
                                     "EncryptionContext": {"LambdaFunctionName": "my-function"}}
    assert server.seen[1].json() == {"CiphertextBlob": blob}


def test_kms_decrypt_context_matches_at_once() -> None:
    plaintext = base64.b64encode(b"v").decode()
    with scripted_server(Reply(200, {"Plaintext": plaintext})) as server:
        assert client(server.url).kms_decrypt("AQID", function_name="fn") == "v"
    assert len(server.seen) == 1


def test_kms_ciphertext_that_matches_neither() -> None:
    error, server = failure(lambda c: c.kms_decrypt("AQID", function_name="fn"),
                            aws_error(400, "InvalidCiphertextException", ""))
    assert len(server.seen) == 2
    assert error.code == "InvalidCiphertextException"
    assert '{"LambdaFunctionName": "<function name>"}' in str(error)


@pytest.mark.parametrize("text", ["not base64!", "", "===="])
def test_kms_ciphertext_not_base64_is_refused_before_any_call(text: str) -> None:
    error, server = failure(lambda c: c.kms_decrypt(text, function_name="fn"), Reply(500))
    assert error.code == "InvalidCiphertextBase64"
    assert server.seen == []


@pytest.mark.parametrize(
    ("call", "code", "fix"),
    [
        (lambda c: c.get_secret_value(ARN), "AccessDeniedException",
         f"allow secretsmanager:GetSecretValue on {ARN} in the function's execution role"),
        (lambda c: c.get_secret_value("api-token"), "AccessDeniedException",
         "allow secretsmanager:GetSecretValue on "
         "arn:aws:secretsmanager:us-east-1:<account-id>:secret:api-token-*"),
        (lambda c: c.get_parameter("/app/token"), "AccessDeniedException",
         "allow ssm:GetParameter on arn:aws:ssm:us-east-1:<account-id>:parameter/app/token"),
        (lambda c: c.kms_decrypt("AQID", function_name="fn"), "AccessDeniedException",
         "allow kms:Decrypt on the key that encrypted the value"),
        (lambda c: c.get_secret_value(ARN), "ResourceNotFoundException",
         "check the secret's ARN or name, and that it exists in eu-west-2"),
        (lambda c: c.get_parameter("/nope"), "ParameterNotFound",
         "check the parameter's name"),
        (lambda c: c.get_secret_value(ARN), "UnrecognizedClientException",
         "do not override AWS_ACCESS_KEY_ID"),
        (lambda c: c.kms_decrypt("AQID"), "DisabledException", "enable it"),
    ],
)
def test_aws_errors_name_the_fix(call, code: str, fix: str) -> None:  # type: ignore[no-untyped-def]
    message = f"User: arn:aws:sts::123456789012:assumed-role/r/fn is not authorized ({code})"
    error, server = failure(call, aws_error(400, code, message))
    assert len(server.seen) == 1  # not retried
    assert error.code == code
    assert error.status == 400
    assert fix in str(error)
    assert "is not authorized" in str(error)  # AWS's own words are kept
    assert SECRET_VALUE not in str(error)


def test_throttled_once_then_answered() -> None:
    sleeps: list[float] = []
    ticks = itertools.count(1_767_225_600, 1)
    with scripted_server(aws_error(400, "ThrottlingException", "Rate exceeded"),
                         Reply(200, {"SecretString": "v"})) as server:
        aws = client(server.url, sleeps=sleeps, clock=lambda: float(next(ticks)))
        assert aws.get_secret_value("x") == "v"
    assert len(server.seen) == 2
    assert len(sleeps) == 1
    assert services.RETRY_PAUSE_SECONDS[0] <= sleeps[0] < services.RETRY_PAUSE_SECONDS[1]
    # The retry is signed afresh at its own time, not replayed.
    dates = [seen.headers["X-Amz-Date"] for seen in server.seen]
    assert dates == ["20260101T000000Z", "20260101T000001Z"]
    assert server.seen[0].headers["Authorization"] != server.seen[1].headers["Authorization"]


@pytest.mark.parametrize("first", [Reply(503, b"<html>Service Unavailable</html>"),
                                   Reply(429, b""), aws_error(500, "InternalFailure", "oops")])
def test_5xx_or_429_is_tried_once_more(first: Reply) -> None:
    with scripted_server(first, Reply(200, {"SecretString": "v"})) as server:
        assert client(server.url).get_secret_value("x") == "v"
    assert len(server.seen) == 2


def test_throttled_twice_gives_up_after_one_retry() -> None:
    error, server = failure(lambda c: c.get_parameter("/p"),
                            aws_error(400, "ThrottlingException", "Rate exceeded"))
    assert len(server.seen) == 2
    assert error.code == "ThrottlingException"
    assert "after one retry" in str(error)
    assert "raise its request quota in us-east-1" in str(error)


def test_error_text_never_carries_a_credential() -> None:
    # AWS appends the canonical request (session token included) to signature errors.
    message = ("The request signature we calculated does not match the signature you provided."
               f"\n\nThe Canonical String for this request should have been\n'POST\n/\n\n"
               f"x-amz-security-token:{CREDENTIALS.session_token}\n'")
    reply = aws_error(400, "InvalidSignatureException", message)
    error, _ = failure(lambda c: c.get_secret_value("x"), reply)
    text = str(error) + repr(error)
    assert "does not match the signature you provided" in text
    for secret in CREDENTIALS.secrets():
        if secret != CREDENTIALS.access_key_id:
            assert secret not in text
    assert "Canonical String" not in text


def test_credentials_echoed_on_the_first_line_are_replaced() -> None:
    message = f"The security token {CREDENTIALS.session_token} is invalid"
    reply = aws_error(400, "UnrecognizedClientException", message)
    error, _ = failure(lambda c: c.get_secret_value("x"), reply)
    assert CREDENTIALS.session_token not in str(error)
    assert "The security token *** is invalid" in str(error)


def test_xml_error_answer_is_understood() -> None:
    # What a query-protocol front end (and moto's IAM check) sends instead of JSON.
    body = (b'<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error>'
            b"<Code>AccessDenied</Code><Message>User: u is not authorized to perform: "
            b"secretsmanager:GetSecretValue</Message></Error></Errors></ErrorResponse>")
    reply = Reply(403, body, {"Content-Type": "text/xml"})
    error, _ = failure(lambda c: c.get_secret_value(ARN), reply)
    assert error.code == "AccessDenied"
    assert f"allow secretsmanager:GetSecretValue on {ARN}" in str(error)


def test_an_unknown_error_keeps_awss_code_and_words() -> None:
    reply = aws_error(400, "ValidationException", "1 validation error")
    error, _ = failure(lambda c: c.get_secret_value("x"), reply)
    assert str(error) == ("Secrets Manager GetSecretValue failed with ValidationException "
                          "(HTTP 400): 1 validation error")


def test_an_error_without_any_code() -> None:
    error, _ = failure(lambda c: c.get_secret_value("x"), Reply(404, b"not found"))
    assert error.code == "HTTP404"


@pytest.mark.parametrize(("body", "words"), [(b"<html>", "not JSON"), (b"[1]", "not an object")])
def test_an_answer_that_is_not_awss(body: bytes, words: str) -> None:
    error, _ = failure(lambda c: c.get_secret_value("x"), Reply(200, body))
    assert error.code == "InvalidResponse"
    assert words in str(error)


def test_binary_secret_is_refused_without_its_value() -> None:
    binary = base64.b64encode(SECRET_VALUE.encode()).decode()
    reply = Reply(200, {"SecretBinary": binary})
    error, _ = failure(lambda c: c.get_secret_value("x"), reply)
    assert error.code == "SecretNotText"
    assert binary not in str(error) and SECRET_VALUE not in str(error)


def test_unreachable_endpoint_names_the_variable() -> None:
    with scripted_server(Reply(200)) as server:
        url = server.url  # closed once the block ends
    with pytest.raises(AwsError) as caught:
        client(url).get_secret_value("x")
    error = caught.value
    assert error.code == "EndpointUnreachable"
    assert error.status == 0
    assert f"http://127.0.0.1:{url.rsplit(':', 1)[1].rstrip('/')}" in str(error)
    assert "AWS_ENDPOINT_URL_SECRETS_MANAGER" in str(error)
    assert "VPC endpoint" in str(error)


def test_an_endpoint_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts connections in the kernel, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(AwsError) as caught:
            client(url, timeout=0.3).get_parameter("/p")
    assert caught.value.code == "Timeout"
    assert "did not answer in time" in str(caught.value)


def test_no_region() -> None:
    aws = AwsClient({}, http_request, lambda: CREDENTIALS)
    with pytest.raises(AwsError) as caught:
        aws.get_parameter("/p")
    assert caught.value.code == "NoRegion"
    assert "AWS_REGION" in str(caught.value)


def test_a_secret_arn_needs_no_region() -> None:
    with scripted_server(Reply(200, {"SecretString": "v"})) as server:
        aws = AwsClient({"AWS_ENDPOINT_URL": server.url}, http_request, lambda: CREDENTIALS)
        assert aws.get_secret_value(ARN) == "v"


@pytest.mark.parametrize(
    ("env", "service", "region", "expected"),
    [
        ({}, services.SECRETS_MANAGER, "eu-west-1", "https://secretsmanager.eu-west-1.amazonaws.com/"),
        ({}, services.SSM, "cn-north-1", "https://ssm.cn-north-1.amazonaws.com.cn/"),
        ({"AWS_ENDPOINT_URL": "http://all:1"}, services.KMS, "us-east-1", "http://all:1"),
        ({"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_KMS": "https://kms-fips.x/"},
         services.KMS, "us-east-1", "https://kms-fips.x/"),
        ({"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_KMS": "https://kms-fips.x/"},
         services.SSM, "us-east-1", "http://all:1"),
        ({"AWS_ENDPOINT_URL_SECRETS_MANAGER": "https://vpce-1.secretsmanager.x/",
          "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
         services.SECRETS_MANAGER, "us-east-1", "https://secretsmanager.us-east-1.amazonaws.com/"),
    ],
)
def test_endpoints_follow_the_sdk_convention(env: dict[str, str], service: services.Service,
                                             region: str, expected: str) -> None:
    assert AwsClient(env, http_request, lambda: CREDENTIALS).endpoint(service, region) == expected


def test_repr_shows_no_credential() -> None:
    aws = client("http://127.0.0.1:1/")
    assert repr(aws) == "AwsClient(region='us-east-1')"


def test_json_bodies_are_json() -> None:
    server = ScriptedServer()
    server.replies.append(Reply(200, {"SecretString": "v"}))
    server.start()
    try:
        client(server.url).get_secret_value('quote"and\\backslash')
    finally:
        server.stop()
    assert json.loads(server.seen[0].body) == {"SecretId": 'quote"and\\backslash'}
