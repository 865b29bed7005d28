"""The built layer in the sandbox, reading its settings from AWS and signing with IAM.

Against ``moto_server`` (which checks signatures, session tokens and IAM), seeded by the real
AWS CLI (``tests/aws/conftest.py``), and receivers in their own processes that accept only the
right bearer token or only requests whose SigV4 signature botocore verifies
(``tests/support/checking_receiver.py``): every line must arrive, accepted; each failure must
give the documented line and leave the function working.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.aws.conftest import (  # noqa: F401  (moto is the fixture)
    FUNCTION_NAME,
    JSON_TOKEN,
    KMS_TOKEN,
    PLAIN_TOKEN,
    REGION,
    SECRET_VALUES,
    SSM_TOKEN,
    Moto,
    moto,
)
from tests.support.checking_receiver import CheckingReceiver
from tests.unit.aws.http_support import Reply, scripted_server
from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.config import FAKE_CREDENTIALS

# As in test_extension.py: E2E_EXTENSION_PYTHON runs the extension on another interpreter.
EXTENSION_PYTHON = os.environ.get("E2E_EXTENSION_PYTHON", "")
APP = '''
def handler(event, context):
    n = event.get("n", 0)
    for i in range(3):
        print(f"line-{n}-{i}")
    return {"n": n}
'''


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def run(real_layer: Path, code_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def start(env: dict[str, str], *, expect_init: bool = True, **options: Any) -> Sandbox:
        settings = {"HTTP_LISTENER_PORT": "0", "HTTP_SPILL_DIR": str(tmp_path / "spill"),
                    **({"LAMBDA_LOGS_HTTP_PYTHON": EXTENSION_PYTHON} if EXTENSION_PYTHON else {}),
                    **env}
        sandbox = Sandbox(real_layer, FunctionSpec(handler="app.handler", code_dir=code_dir),
                          settings, function_name=FUNCTION_NAME, region=REGION, **options)
        made.append(sandbox)
        init = sandbox.start()
        assert init.ok is expect_init, (init, sandbox.extension_output)
        return sandbox

    yield start
    for sandbox in made:
        sandbox.shutdown()


def invoke_twice(sandbox: Sandbox) -> list[str]:
    """Two invocations; the request ids. Each must succeed with the function's own answer."""
    results = [sandbox.invoke({"n": n}) for n in range(2)]
    assert [r.response for r in results] == [{"n": 0}, {"n": 1}]
    return [r.request_id for r in results]


def assert_delivered(receiver: CheckingReceiver, request_ids: list[str]) -> None:
    """Every line of both invocations arrived in an accepted request, and none was refused."""
    assert receiver.rejected() == []
    got = receiver.messages()
    for n, request_id in enumerate(request_ids):
        assert {f"line-{n}-{i}" for i in range(3)} <= set(got)
        assert f"END RequestId: {request_id}" in got


def output(sandbox: Sandbox) -> str:
    return "\n".join(sandbox.extension_output + sandbox.function_output)


def bearer_env(moto: Moto, receiver: CheckingReceiver, **more: str) -> dict[str, str]:  # noqa: F811
    return {"HTTP_ENDPOINT": receiver.url, "HTTP_AUTH_TYPE": "bearer",
            "AWS_ENDPOINT_URL": moto.endpoint, **moto.function, **more}


@pytest.mark.parametrize("source", ["secret", "json-key", "ssm", "kms", "kms-no-context"])
def test_the_token_from_each_source_reaches_a_receiver_that_accepts_only_it(
    run: Callable[..., Sandbox], moto: Moto, tmp_path: Path, source: str  # noqa: F811
) -> None:
    token, variables = {
        "secret": (PLAIN_TOKEN, {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": moto.arns["plain-token"]}),
        "json-key": (JSON_TOKEN, {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": moto.arns["json-token"],
                                  "HTTP_AUTH_CREDENTIALS_SECRET_KEY": "api_key"}),
        "ssm": (SSM_TOKEN, {"HTTP_AUTH_CREDENTIALS_SSM_NAME": "/lambda-logs-http/token"}),
        "kms": (KMS_TOKEN, {"HTTP_AUTH_CREDENTIALS_KMS_ENCRYPTED": moto.ciphertexts["context"]}),
        "kms-no-context": ("tok-kms-no-context-5ecret",
                           {"HTTP_AUTH_CREDENTIALS_KMS_ENCRYPTED": moto.ciphertexts["none"]}),
    }[source]
    with CheckingReceiver(tmp_path, bearer=token) as receiver:
        sandbox = run(bearer_env(moto, receiver, **variables))
        request_ids = invoke_twice(sandbox)
        shutdown = sandbox.shutdown()
        assert shutdown.exit_codes["lambda-logs-http"] == 0
        assert_delivered(receiver, request_ids)
    assert "[EXTENSION] ERROR" not in output(sandbox)
    for value in SECRET_VALUES:
        assert value not in output(sandbox)


def test_endpoint_and_headers_from_aws_too(
    run: Callable[..., Sandbox], moto: Moto, tmp_path: Path  # noqa: F811
) -> None:
    with CheckingReceiver(tmp_path, bearer=PLAIN_TOKEN,
                          headers={"X-Scope-OrgID": "team-a"}) as receiver:
        name = f"/lambda-logs-http/endpoint-{receiver.port}"
        url_file = tmp_path / "url.txt"  # (the AWS CLI would fetch an http:// value itself)
        url_file.write_text(receiver.url)
        moto.cli("ssm", "put-parameter", "--name", name, "--type", "SecureString",
                 "--value", f"file://{url_file}")
        moto.cli("secretsmanager", "create-secret", "--name", f"headers-{receiver.port}",
                 "--secret-string", json.dumps({"headers": json.dumps({"X-Scope-OrgID": "team-a"})}))
        env = bearer_env(moto, receiver, HTTP_ENDPOINT_SSM_NAME=name,
                         HTTP_AUTH_CREDENTIALS_SECRET_ARN="plain-token",
                         HTTP_HEADERS_SECRET_ARN=f"headers-{receiver.port}",
                         HTTP_HEADERS_SECRET_KEY="headers")
        del env["HTTP_ENDPOINT"]
        sandbox = run(env)
        request_ids = invoke_twice(sandbox)
        sandbox.shutdown()
        assert_delivered(receiver, request_ids)
    ready = [line for line in sandbox.extension_output if "ready: forwarding" in line]
    assert ready == ["[EXTENSION] INFO ready: forwarding to http://127.0.0.1:"
                     f"{receiver.port}/***"]  # a URL from AWS is shown by its host only


@pytest.mark.parametrize(
    ("case", "variable", "code"),
    [
        ("wrong ARN", "HTTP_AUTH_CREDENTIALS_SECRET_ARN", "ResourceNotFoundException"),
        ("missing key", "HTTP_AUTH_CREDENTIALS_SECRET_KEY", "JsonKeyNotFound"),
        ("unreachable endpoint", "HTTP_AUTH_CREDENTIALS_SECRET_ARN", "EndpointUnreachable"),
        ("access denied", "HTTP_AUTH_CREDENTIALS_SECRET_ARN", "AccessDenied"),
    ],
)
def test_a_failure_is_one_line_and_the_function_keeps_working(
    run: Callable[..., Sandbox], moto: Moto, tmp_path: Path,  # noqa: F811
    case: str, variable: str, code: str,
) -> None:
    arn = moto.arns["plain-token"]
    variables = {
        "wrong ARN": {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": arn + "-nope"},
        "missing key": {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": moto.arns["json-token"],
                        "HTTP_AUTH_CREDENTIALS_SECRET_KEY": "token"},
        "unreachable endpoint": {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": arn,
                                 "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "access denied": {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": arn, **moto.locked},
    }[case]
    with CheckingReceiver(tmp_path, bearer=PLAIN_TOKEN) as receiver:
        sandbox = run({**bearer_env(moto, receiver), **variables})
        invoke_twice(sandbox)
        shutdown = sandbox.shutdown()
        assert receiver.requests() == []
    assert shutdown.exit_codes["lambda-logs-http"] == 0
    errors = [line for line in sandbox.extension_output if line.startswith("[EXTENSION] ERROR")]
    assert errors[0].startswith("[EXTENSION] ERROR could not read HTTP_AUTH_CREDENTIALS from "
                                f"AWS ({code}): {variable}: ")
    if case == "access denied":
        assert f"Fix: allow secretsmanager:GetSecretValue on {arn}" in errors[0]
    if case == "wrong ARN":
        assert "Fix: check the secret's ARN or name" in errors[0]
    assert errors[1:] == ["[EXTENSION] ERROR logs will NOT be forwarded; the function keeps "
                          "running normally"]
    assert "Traceback" not in output(sandbox)
    for value in SECRET_VALUES:
        assert value not in output(sandbox)


def test_a_failure_fails_init_under_strict_config(
    run: Callable[..., Sandbox], moto: Moto, tmp_path: Path  # noqa: F811
) -> None:
    with CheckingReceiver(tmp_path, bearer=PLAIN_TOKEN) as receiver:
        env = bearer_env(moto, receiver, HTTP_AUTH_CREDENTIALS_SECRET_ARN="no-such-secret",
                         HTTP_STRICT_CONFIG="true")
        sandbox = run(env, expect_init=False)
    assert any(e.error_type == "Extension.ConfigInvalid" for e in sandbox.errors)
    assert "Traceback" not in output(sandbox)


SIGV4_SCOPE = {"region": REGION, "service": "execute-api"}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_aws_sigv4_every_request_verifies_with_botocore(
    run: Callable[..., Sandbox], tmp_path: Path, compression: str
) -> None:
    pytest.importorskip("botocore", reason="botocore (pip install -r requirements-dev.txt)")
    expected = {"access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"], **SIGV4_SCOPE}
    with CheckingReceiver(tmp_path, sigv4=expected, headers={"X-Scope-OrgID": "t"}) as receiver:
        sandbox = run({"HTTP_ENDPOINT": receiver.url, "HTTP_AUTH_TYPE": "aws_sigv4",
                       "HTTP_AWS_SIGV4_SERVICE": "execute-api", "HTTP_COMPRESSION": compression,
                       "HTTP_HEADERS": '{"X-Scope-OrgID": "t"}'})
        request_ids = invoke_twice(sandbox)
        sandbox.shutdown()
        assert_delivered(receiver, request_ids)
        requests = receiver.requests()
    assert all(("Content-Encoding" in r["headers"]) == (compression == "gzip") for r in requests)
    assert FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in output(sandbox)


def test_aws_sigv4_with_snapstart_credentials_from_the_container_endpoint(
    run: Callable[..., Sandbox], tmp_path: Path
) -> None:
    pytest.importorskip("botocore", reason="botocore (pip install -r requirements-dev.txt)")
    document = {"AccessKeyId": "ASIACONTAINEREXAMPLE", "SecretAccessKey": "container/secret+key",
                "Token": "container-session-token", "Expiration": "2099-01-01T00:00:00Z"}
    expected = {"access_key_id": document["AccessKeyId"],
                "secret_access_key": document["SecretAccessKey"],
                "session_token": document["Token"], **SIGV4_SCOPE}
    with scripted_server(Reply(200, document)) as endpoint, \
            CheckingReceiver(tmp_path, sigv4=expected) as receiver:
        sandbox = run({"HTTP_ENDPOINT": receiver.url, "HTTP_AUTH_TYPE": "aws_sigv4",
                       "HTTP_AWS_SIGV4_SERVICE": "execute-api", "HTTP_COMPRESSION": "gzip",
                       "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                       "AWS_SESSION_TOKEN": "",
                       "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}credentials",
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN": "snapstart-token"})
        request_ids = invoke_twice(sandbox)
        sandbox.shutdown()
        assert_delivered(receiver, request_ids)
    # Fetched once (the provider caches until shortly before Expiration), with the token.
    assert [seen.headers.get("Authorization") for seen in endpoint.seen] == ["snapstart-token"]


def test_aws_sigv4_service_that_cannot_be_inferred_is_a_configuration_error(
    run: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = run({"HTTP_ENDPOINT": "http://127.0.0.1:9/ingest", "HTTP_AUTH_TYPE": "aws_sigv4"})
    invoke_twice(sandbox)
    errors = [line for line in sandbox.extension_output if line.startswith("[EXTENSION] ERROR")]
    assert errors[0].startswith("[EXTENSION] ERROR configuration error: HTTP_AWS_SIGV4_SERVICE: "
                                "cannot be inferred from the host 127.0.0.1")
