"""A real ``moto_server`` with IAM enforced, seeded with the real AWS CLI (tests/aws, the e2e
tests and ``tools.bench.secret_sources`` share it).

moto checks every request's signature and session token, and evaluates IAM policies, once its
first ``INITIAL_NO_AUTH_ACTION_COUNT`` actions are done: those three create an admin user and its
key, which seeds the rest. The function's credentials are then what Lambda gives a function: the
temporary credentials (with a session token) of an assumed role allowed the three reads; another
role allowed none of them gets moto's own IAM answer, access denied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.process import accepts, free_port, stop_group, tail, wait_until

BIN = Path(sys.executable).parent
MOTO_SERVER = BIN / "moto_server"
AWS_CLI = BIN / "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_NAME = "my-function"

PLAIN_TOKEN = "tok-plain-5ecret"
JSON_TOKEN = "tok-json-5ecret"
SSM_TOKEN = "tok-ssm-5ecret"
KMS_TOKEN = "tok-kms-5ecret"
KMS_TOKEN_NO_CONTEXT = "tok-kms-no-context-5ecret"
SECRET_VALUES = (PLAIN_TOKEN, JSON_TOKEN, SSM_TOKEN, KMS_TOKEN, KMS_TOKEN_NO_CONTEXT)


class Moto:
    """The running server, its endpoint, and what was seeded."""

    def __init__(self, endpoint: str, home: Path) -> None:
        self.endpoint = endpoint
        self.home = home
        self.admin: dict[str, str] = {}
        self.function: dict[str, str] = {}  # AWS_ACCESS_KEY_ID, ..._SECRET_..., AWS_SESSION_TOKEN
        self.locked: dict[str, str] = {}  # the same, of a role allowed none of the reads
        self.arns: dict[str, str] = {}
        self.ciphertexts: dict[str, str] = {}
        self.key_arn = ""

    def cli(self, *args: str, credentials: dict[str, str] | None = None) -> dict:
        """The AWS CLI against this server, its JSON answer."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "bootstrap",
            "AWS_SECRET_ACCESS_KEY": "bootstrap",
            **(credentials if credentials is not None else self.admin),
        }
        done = subprocess.run([str(AWS_CLI), *args, "--output", "json"], env=env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"aws {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout or "{}")

    def enforce_iam(self, enforced: bool) -> None:
        """Turn moto's signature and IAM checks on or off (``/moto-api/reset-auth``). Off for
        deployments: under them moto refuses every Lambda REST GET (``get-function``, waiters)
        with SignatureDoesNotMatch, which AWS itself accepts."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", method="POST",
                                         data=b"0" if enforced else b"inf",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def environ(self, **extra: str) -> dict[str, str]:
        """A function's environment as Lambda sets it, pointed at this server."""
        return {"AWS_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
                "AWS_ENDPOINT_URL": self.endpoint, **self.function, **extra}


def _seed(moto: Moto) -> None:
    # The three unauthenticated actions: an admin user, its policy, its key.
    moto.cli("iam", "create-user", "--user-name", "admin", credentials={})
    moto.cli("iam", "put-user-policy", "--user-name", "admin", "--policy-name", "all",
             "--policy-document", json.dumps(_allow(["*"], ["*"])), credentials={})
    key = moto.cli("iam", "create-access-key", "--user-name", "admin", credentials={})["AccessKey"]
    moto.admin = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                  "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    for name, value in (("plain-token", PLAIN_TOKEN),
                        ("json-token", json.dumps({"api_key": JSON_TOKEN, "user": "u"}))):
        moto.arns[name] = moto.cli("secretsmanager", "create-secret", "--name", name,
                                   "--secret-string", value)["ARN"]
    moto.cli("ssm", "put-parameter", "--name", "/lambda-logs-http/token", "--type",
             "SecureString", "--value", SSM_TOKEN)
    moto.key_arn = moto.cli("kms", "create-key")["KeyMetadata"]["Arn"]
    for label, plaintext, context in (("context", KMS_TOKEN, [
            "--encryption-context", f"LambdaFunctionName={FUNCTION_NAME}"]),
            ("none", KMS_TOKEN_NO_CONTEXT, [])):
        source = moto.home / f"plaintext-{label}"
        source.write_text(plaintext)
        moto.ciphertexts[label] = moto.cli(
            "kms", "encrypt", "--key-id", moto.key_arn, "--plaintext", f"fileb://{source}",
            *context)["CiphertextBlob"]

    # The function's execution role allows these three reads. moto evaluates a policy's actions
    # but not its resources (it checks every action against "*"), so access denied comes from a
    # second role, which allows none of them.
    reads = {"Version": "2012-10-17", "Statement": [_statement(
        ["secretsmanager:GetSecretValue", "ssm:GetParameter", "kms:Decrypt"], ["*"])]}
    moto.function = _assumed_role(moto, "function-role", reads)
    moto.locked = _assumed_role(moto, "locked-role", _allow(["sts:GetCallerIdentity"], ["*"]))


def _assumed_role(moto: Moto, name: str, policy: dict[str, object]) -> dict[str, str]:
    """Temporary credentials of a new role with ``policy``, as Lambda gives a function."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    moto.cli("iam", "create-role", "--role-name", name,
             "--assume-role-policy-document", json.dumps(trust))
    moto.cli("iam", "put-role-policy", "--role-name", name, "--policy-name", "reads",
             "--policy-document", json.dumps(policy))
    assumed = moto.cli("sts", "assume-role", "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/{name}",
                       "--role-session-name", FUNCTION_NAME)["Credentials"]
    return {"AWS_ACCESS_KEY_ID": assumed["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": assumed["SecretAccessKey"],
            "AWS_SESSION_TOKEN": assumed["SessionToken"]}


def _statement(actions: list[str], resources: list[str]) -> dict[str, object]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def _allow(actions: list[str], resources: list[str]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": [_statement(actions, resources)]}


def moto_available() -> bool:
    return MOTO_SERVER.exists() and AWS_CLI.exists()


SKIP_REASON = ("needs moto_server and the aws CLI next to this Python: "
               "pip install -r requirements-dev.txt (moto[server], awscli)")


@contextmanager
def running_moto(home: Path, *, managed_policies: bool = False) -> Iterator[Moto]:
    """``moto_server`` on a free port, seeded; stopped (its process group) on exit.
    ``managed_policies``: load AWS's managed IAM policies (``AWSLambdaBasicExecutionRole``...),
    which a deployment attaches; slower to start. Raises ``RuntimeError`` when it does not start."""
    log_path = home / "moto.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "INITIAL_NO_AUTH_ACTION_COUNT": "3",
                 "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed_policies else "false"},
            start_new_session=True,
        )
    try:
        if not wait_until(lambda: accepts(port) or process.poll() is not None, timeout=30):
            raise RuntimeError(f"moto_server did not listen in 30 s:\n{tail(log_path)}")
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited ({process.returncode}):\n{tail(log_path)}")
        running = Moto(f"http://127.0.0.1:{port}", home)
        _seed(running)
        yield running
    finally:
        stop_group(process)
