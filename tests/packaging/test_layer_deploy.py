"""Makefile deploy targets, with the real AWS CLI against a local moto server."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import FIXTURE_VERSION, REPO, clean_env

BIN = Path(sys.executable).parent
MOTO_SERVER = BIN / "moto_server"
AWS_CLI = BIN / "aws"
RUNTIMES = ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14"]
REGION = "us-east-1"

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (MOTO_SERVER.exists() and AWS_CLI.exists()):
        pytest.skip("moto[server] and awscli are not installed in this environment "
                    "(pip install -r requirements-dev.txt)")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:  # answering at all is enough
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start (rc={proc.poll()})")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def aws_env(moto: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Dummy credentials and empty config: nothing can reach a real account."""
    nowhere = tmp_path_factory.mktemp("aws")
    return clean_env(
        AWS_ENDPOINT_URL=moto,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=str(nowhere / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(nowhere / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )


def make(target: str, env: dict[str, str], **variables: str) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), target, *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def aws(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [str(AWS_CLI), "lambda", *args, "--region", REGION, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(proc.stdout or "{}")


def _policy(env: dict[str, str], layer: str, version: int) -> list[dict]:
    r = aws(env, "get-layer-version-policy", "--layer-name", layer,
            "--version-number", str(version))
    return json.loads(r["Policy"])["Statement"]


@pytest.fixture(scope="module")
def deploy_vars(out_dir: Path, fixture_src: Path) -> dict[str, str]:
    """Build the stand-in package, with one interpreter to keep it quick."""
    return {
        "REGION": REGION, "OUT_DIR": str(out_dir), "SRC_DIR": str(fixture_src),
        "AWS": str(AWS_CLI), "PYTHONS": sys.executable, "PYTHON": sys.executable,
    }


@pytest.fixture(scope="module")
def published_x86(aws_env: dict[str, str], deploy_vars: dict[str, str], out_dir: Path) -> dict:
    proc = make("deploy_x86", aws_env, **deploy_vars)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out_dir / "publish-x86_64.json").read_text())


def test_deploy_x86_publishes_for_x86_64_and_every_python(published_x86: dict, out_dir: Path):
    assert published_x86["CompatibleArchitectures"] == ["x86_64"]
    assert published_x86["CompatibleRuntimes"] == RUNTIMES
    assert published_x86["LayerVersionArn"].endswith(":layer:lambda-logs-http-x86:1")
    assert FIXTURE_VERSION in published_x86["Description"]
    uploaded = base64.b64encode(
        hashlib.sha256((out_dir / "lambda-logs-http-x86_64.zip").read_bytes()).digest()
    ).decode()
    assert published_x86["Content"]["CodeSha256"] == uploaded


def test_published_version_is_listed(published_x86: dict, aws_env: dict[str, str]):
    listed = aws(aws_env, "list-layer-versions", "--layer-name", "lambda-logs-http-x86")
    [version] = [v for v in listed["LayerVersions"] if v["Version"] == published_x86["Version"]]
    assert version["CompatibleArchitectures"] == ["x86_64"]
    assert version["CompatibleRuntimes"] == RUNTIMES


def test_deploy_cli_arm_alias_publishes_arm64_layer(
    aws_env: dict[str, str], deploy_vars: dict[str, str], out_dir: Path
):
    proc = make("deploy_cli_arm", aws_env, **deploy_vars, LAYER_NAME="alias-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published = json.loads((out_dir / "publish-arm64.json").read_text())
    assert published["CompatibleArchitectures"] == ["arm64"]
    assert published["LayerVersionArn"].endswith(":layer:alias-test-arm:1")
    # One zip serves both architectures.
    assert (out_dir / "lambda-logs-http-arm64.zip").read_bytes() == (
        out_dir / "lambda-logs-http.zip"
    ).read_bytes()


def test_add_permissions_by_account_twice_is_idempotent(
    published_x86: dict, aws_env: dict[str, str], deploy_vars: dict[str, str]
):
    version = published_x86["Version"]  # from the saved publish JSON: VERSION not given
    for attempt in range(2):
        proc = make("add_permissions_by_account_x86", aws_env, **deploy_vars,
                    ACCOUNT_ID="111122223333")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ("already granted" in proc.stdout) == (attempt == 1)
    statements = _policy(aws_env, "lambda-logs-http-x86", version)
    mine = [s for s in statements if s["Sid"] == "account-111122223333"]
    assert len(mine) == 1
    assert mine[0]["Principal"] == "111122223333"
    assert mine[0]["Action"] == "lambda:GetLayerVersion"


def test_add_permissions_for_an_organization(
    published_x86: dict, aws_env: dict[str, str], deploy_vars: dict[str, str]
):
    proc = make("add_permissions_x86", aws_env, **deploy_vars, ORG_ID="o-abc123",
                VERSION=str(published_x86["Version"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statements = _policy(aws_env, "lambda-logs-http-x86", published_x86["Version"])
    [org] = [s for s in statements if s["Sid"] == "org-o-abc123"]
    assert org["Principal"] == "*"
    assert "o-abc123" in json.dumps(org)  # moto keeps OrganizationId; AWS writes a Condition


def test_remove_version_deletes_it(
    published_x86: dict, aws_env: dict[str, str], deploy_vars: dict[str, str]
):
    # After the permission tests (file order): publish a second version, remove the first.
    assert make("deploy_x86", aws_env, **deploy_vars).returncode == 0
    proc = make("remove_x86_version", aws_env, **deploy_vars, VERSION="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = aws(aws_env, "list-layer-versions", "--layer-name", "lambda-logs-http-x86")
    assert [v["Version"] for v in listed["LayerVersions"]] == [2]


@pytest.mark.parametrize(
    ("target", "variables", "missing"),
    [
        ("deploy_x86", {}, "REGION"),
        ("deploy_cli_arm", {}, "REGION"),
        ("add_permissions_arm", {"REGION": REGION}, "ORG_ID"),
        ("add_permissions_by_account_x86", {"REGION": REGION}, "ACCOUNT_ID"),
        ("remove_arm_version", {"REGION": REGION}, "VERSION"),
    ],
)
def test_missing_variable_fails_before_doing_anything(
    tmp_path: Path, fixture_src: Path, target: str, variables: dict, missing: str
):
    out = tmp_path / "out"
    env = clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens there
    proc = make(target, env, OUT_DIR=str(out), SRC_DIR=str(fixture_src), AWS="false", **variables)
    assert proc.returncode != 0
    assert f"error: {missing} is required" in proc.stderr
    assert re.search(rf"make {target} {missing}=\S+", proc.stderr)
    assert not out.exists()  # nothing was built


def test_permissions_without_version_or_publish_record_fail_clearly(tmp_path: Path):
    proc = make("add_permissions_by_account_arm", clean_env(), OUT_DIR=str(tmp_path),
                REGION=REGION, ACCOUNT_ID="111122223333", AWS="false")
    assert proc.returncode != 0
    assert "error: VERSION is required" in proc.stderr


def _fake_aws(tmp_path: Path, add_error: str) -> Path:
    """An `aws` that has no policy yet and fails add-layer-version-permission with add_error."""
    fake = tmp_path / "aws"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *get-layer-version-policy*) echo 'An error occurred (ResourceNotFoundException)' >&2;"
        " exit 254 ;;\n"
        f"  *add-layer-version-permission*) echo '{add_error}' >&2; exit 254 ;;\n"
        "esac\n"
        "exit 99\n"
    )
    fake.chmod(0o755)
    return fake


def test_existing_statement_reported_by_aws_counts_as_success(tmp_path: Path):
    fake = _fake_aws(
        tmp_path,
        "An error occurred (ResourceConflictException) when calling the "
        "AddLayerVersionPermission operation: The statement id (account-111122223333) "
        "provided already exists.",
    )
    proc = make("add_permissions_by_account_arm", clean_env(), AWS=str(fake), REGION=REGION,
                ACCOUNT_ID="111122223333", VERSION="4", OUT_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "already granted" in proc.stdout


def test_other_aws_errors_fail_with_the_message(tmp_path: Path):
    fake = _fake_aws(tmp_path, "An error occurred (AccessDeniedException): not allowed")
    proc = make("add_permissions_arm", clean_env(), AWS=str(fake), REGION=REGION,
                ORG_ID="o-abc123", VERSION="4", OUT_DIR=str(tmp_path))
    assert proc.returncode != 0
    assert "AccessDeniedException" in proc.stderr


def test_help_lists_every_public_target():
    proc = make("help", clean_env())
    assert proc.returncode == 0
    for name in ("build_local", "build_lambda_x86", "build_docker", "deploy_x86", "deploy_cli_x86",
                 "add_permissions_x86", "add_permissions_by_account_x86", "remove_x86_version",
                 "test", "lint", "clean"):
        assert name.split("_x86")[0] in proc.stdout, name


def test_every_target_is_phony():
    text = (REPO / "Makefile").read_text()
    phony = set(" ".join(re.findall(r"^\.PHONY:((?:[^\n\\]|\\\n)*)", text, re.M)).replace("\\", " ")
                .split())
    targets = {t for line in re.findall(r"^([a-z][a-z0-9_ -]*?):(?!=)", text, re.M)
               for t in line.split()}
    assert targets - phony == set()
    expected = {
        "build_local", "build_lambda_x86", "build_lambda_arm", "build_docker", "deploy_x86",
        "deploy_arm", "deploy_cli_x86", "deploy_cli_arm", "add_permissions_x86",
        "add_permissions_arm", "add_permissions_by_account_x86", "add_permissions_by_account_arm",
        "remove_x86_version", "remove_arm_version", "clean", "test", "lint", "help", "venv",
    }
    assert expected <= phony
