"""The deployment examples, as written: ``examples/cli/deploy.sh`` run twice against
``moto_server`` with the real AWS CLI, then the function it configured run in the sandbox with
its execution role's credentials; the SAM template checked by ``cfn-lint`` and the Terraform
file parsed by ``python-hcl2``, their resources and arguments checked against what they use."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.packaging.layer_helpers import build
from tests.support.checking_receiver import CheckingReceiver
from tests.support.moto import (
    ACCOUNT,
    AWS_CLI,
    REGION,
    SKIP_REASON,
    Moto,
    moto_available,
    running_moto,
)
from tools.lambda_sandbox import FunctionSpec, Sandbox

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TOKEN = "examples-t0ken-value"
FUNCTION = "lambda-logs-http-example"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Moto, Any, Path]]:
    if not moto_available():
        pytest.skip(SKIP_REASON)
    built = build(tmp_path_factory.mktemp("examples-build"))
    with running_moto(tmp_path_factory.mktemp("examples-moto"), managed_policies=True) as moto:
        yield moto, built, tmp_path_factory.mktemp("examples")


def deploy(moto: Moto, layer_zip: Path, ingest_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{AWS_CLI.parent}:/usr/bin:/bin", "HOME": str(moto.home),
        "AWS_ENDPOINT_URL": moto.endpoint, "AWS_CONFIG_FILE": str(moto.home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(moto.home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true", **moto.admin,
        "REGION": REGION, "INGEST_URL": ingest_url, "INGEST_TOKEN": TOKEN,
        "LAYER_ZIP": str(layer_zip),
    }
    return subprocess.run(["bash", str(EXAMPLES / "cli" / "deploy.sh")], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_example_deploys_and_the_function_delivers_with_the_secret(
    deployed: tuple[Moto, Any, Path],
) -> None:
    moto, built, tmp = deployed
    with CheckingReceiver(tmp, bearer=TOKEN) as receiver:
        moto.enforce_iam(False)  # (moto's own limit: see enforce_iam)
        for run in (1, 2):  # a second run updates what the first created
            done = deploy(moto, built.zip_path, receiver.url)
            assert done.returncode == 0, (run, done.stdout, done.stderr)
            assert TOKEN not in done.stdout + done.stderr
        config = moto.cli("lambda", "get-function-configuration", "--function-name", FUNCTION)
        layers = [layer["Arn"] for layer in config["Layers"]]
        assert layers == [f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:lambda-logs-http:2"]
        variables = config["Environment"]["Variables"]
        secret = moto.cli("secretsmanager", "get-secret-value", "--secret-id",
                          variables["HTTP_AUTH_CREDENTIALS_SECRET_ARN"])
        assert secret["SecretString"] == TOKEN and TOKEN not in json.dumps(config)
        assert config["Runtime"] == "python3.12" and config["Handler"] == "app.handler"
        # Lambda's view: the function runs with its role's credentials and these variables;
        # moto checks the role's policy for GetSecretValue again from here on.
        role = moto.cli("sts", "assume-role", "--role-arn", config["Role"],
                        "--role-session-name", FUNCTION)["Credentials"]
        # moto matches a policy's actions but every resource as "*" (so the script's grant on
        # the secret's ARN alone would be refused; its content is checked below): the script's
        # own statement, on "*", stands in for it.
        granted = moto.cli("iam", "get-role-policy", "--role-name", f"{FUNCTION}-role",
                           "--policy-name", "read-ingest-token")["PolicyDocument"]
        stand_in = {**granted, "Statement": [{**granted["Statement"][0], "Resource": "*"}]}
        moto.cli("iam", "put-role-policy", "--role-name", f"{FUNCTION}-role", "--policy-name",
                 "moto-stand-in", "--policy-document", json.dumps(stand_in))
        moto.enforce_iam(True)
        credentials = {"AWS_ACCESS_KEY_ID": role["AccessKeyId"],
                       "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
                       "AWS_SESSION_TOKEN": role["SessionToken"]}
        with Sandbox(built.layer, FunctionSpec(handler=config["Handler"],
                                               code_dir=EXAMPLES / "function"),
                     {**variables, **credentials, "AWS_ENDPOINT_URL": moto.endpoint,
                      "HTTP_LISTENER_PORT": "0", "HTTP_SPILL_DIR": str(tmp / "spill")},
                     function_name=FUNCTION, region=REGION) as sandbox:
            assert sandbox.start().ok, sandbox.extension_output
            result = sandbox.invoke({"k": 1})
            assert result.response == {"ok": True}
            sandbox.shutdown()
        assert receiver.rejected() == []
        assert f"hello from {FUNCTION}" in receiver.messages(), sandbox.extension_output
    assert "[EXTENSION] ERROR" not in "\n".join(sandbox.extension_output)
    # The role may read this one secret: the grant names its ARN.
    policy = moto.cli("iam", "get-role-policy", "--role-name", f"{FUNCTION}-role",
                      "--policy-name", "read-ingest-token")["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == variables["HTTP_AUTH_CREDENTIALS_SECRET_ARN"]


def test_the_sam_template_passes_cfn_lint() -> None:
    cfn_lint = AWS_CLI.parent / "cfn-lint"
    if not cfn_lint.exists():
        pytest.skip("cfn-lint is not installed (pip install -r requirements-dev.txt)")
    template = EXAMPLES / "sam" / "template.yaml"
    done = subprocess.run([str(cfn_lint), "--regions", REGION, "--", str(template)],
                          capture_output=True, text=True, timeout=120, cwd=template.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sam_template_wires_the_secret_the_layer_and_the_grant() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (pip install -r requirements-dev.txt)")

    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Ref", "!GetAtt", "!Sub"):  # CloudFormation's short forms, kept as values
        Loader.add_constructor(tag, lambda loader, node, tag=tag: {tag: loader.construct_scalar(node)})
    text = (EXAMPLES / "sam" / "template.yaml").read_text()
    template = yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    resources = template["Resources"]
    function = resources["Function"]["Properties"]
    assert function["Layers"] == [{"!Ref": "LogsLayer"}]
    assert function["Environment"]["Variables"]["HTTP_AUTH_CREDENTIALS_SECRET_ARN"] == {
        "!Ref": "IngestToken"}
    assert "HTTP_AUTH_CREDENTIALS" not in function["Environment"]["Variables"]
    (policy,) = function["Policies"]
    assert policy == {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"!Ref": "IngestToken"}}}
    assert resources["IngestToken"]["Type"] == "AWS::SecretsManager::Secret"
    assert resources["LogsLayer"]["Properties"]["ContentUri"] == "../../dist/lambda-logs-http.zip"
    assert function["Runtime"].startswith("python3.")


# What each Terraform resource type used may take (the AWS provider's documented arguments,
# those the example could plausibly use): a typo or a removed argument fails here.
TERRAFORM_ARGUMENTS = {
    "aws_lambda_layer_version": {"layer_name", "filename", "source_code_hash", "description",
                                 "compatible_runtimes", "compatible_architectures",
                                 "license_info"},
    "aws_secretsmanager_secret": {"name", "name_prefix", "description", "kms_key_id",
                                  "recovery_window_in_days"},
    "aws_secretsmanager_secret_version": {"secret_id", "secret_string"},
    "aws_iam_role": {"name", "assume_role_policy"},
    "aws_iam_role_policy_attachment": {"role", "policy_arn"},
    "aws_iam_role_policy": {"name", "role", "policy"},
    "aws_lambda_function": {"function_name", "role", "runtime", "handler", "filename",
                            "source_code_hash", "architectures", "layers", "timeout",
                            "memory_size", "environment", "depends_on"},
}
TERRAFORM_DATA = {"archive_file": {"type", "source_file", "output_path"},
                  "aws_iam_policy_document": {"statement"}}


def unquoted(value: Any) -> Any:
    """python-hcl2 keeps block labels in their quotes: drop them from every key."""
    if isinstance(value, dict):
        return {key.strip('"'): unquoted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unquoted(item) for item in value]
    return value


def test_the_terraform_file_parses_and_uses_known_resources_and_arguments() -> None:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 (pip install -r requirements-dev.txt)")
    text = (EXAMPLES / "terraform" / "main.tf").read_text()
    with (EXAMPLES / "terraform" / "main.tf").open() as handle:
        document = unquoted(hcl2.load(handle))
    declared: set[str] = set()
    for block in document.get("resource", []):
        for kind, named in block.items():
            assert kind in TERRAFORM_ARGUMENTS, f"unexpected resource type {kind}"
            for name, body in named.items():
                unknown = {k for k in body if not k.startswith("__")} - TERRAFORM_ARGUMENTS[kind]
                assert not unknown, f"{kind}.{name}: unknown arguments {unknown}"
                declared.add(f"{kind}.{name}")
    for block in document.get("data", []):
        for kind, named in block.items():
            assert kind in TERRAFORM_DATA, f"unexpected data source {kind}"
            for name, body in named.items():
                assert not {k for k in body if not k.startswith("__")} - TERRAFORM_DATA[kind]
                declared.add(f"data.{kind}.{name}")
    variables = {name for block in document.get("variable", []) for name in block}
    # Every reference resolves to something declared in the file.
    for kind, name in re.findall(r"(?<![.\w])(aws_[a-z0-9_]+)\.([a-z0-9_]+)\.[a-z_]+", text):
        assert f"{kind}.{name}" in declared, f"{kind}.{name} is not declared"
    for kind, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert f"data.{kind}.{name}" in declared, f"data.{kind}.{name} is not declared"
    for name in re.findall(r"\bvar\.([a-z0-9_]+)", text):
        assert name in variables, f"var.{name} is not declared"
    assert {"aws_lambda_function.function", "aws_secretsmanager_secret.ingest_token",
            "aws_lambda_layer_version.logs"} <= declared
    assert "HTTP_AUTH_CREDENTIALS_SECRET_ARN" in text and "secretsmanager:GetSecretValue" in text
    assert "/../../dist/lambda-logs-http.zip" in text
