"""make deploy_standalone_x86 / _arm with the real AWS CLI against a local moto server: the
standalone zip is published for its one architecture and the runtimes without Python."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import REPO, clean_env
from tests.packaging.standalone_helpers import CACHE, MAKE_SUFFIX
from tests.packaging.test_layer_deploy import AWS_CLI, REGION, aws, aws_env, make, moto  # noqa: F401

MAX_RUNTIMES = 15  # publish-layer-version's limit


def make_variable(name: str) -> list[str]:
    text = (REPO / "Makefile").read_text()
    m = re.search(rf"^{name} \?=((?:[^\n\\]|\\\n)*)", text, re.M)
    assert m, name
    return m.group(1).replace("\\\n", " ").split()


def test_standalone_runtimes_fit_one_publish_and_cover_every_family() -> None:
    runtimes = make_variable("STANDALONE_RUNTIMES")
    assert len(runtimes) <= MAX_RUNTIMES and len(set(runtimes)) == len(runtimes)
    for family in ("nodejs", "java", "dotnet", "ruby", "provided.al2023", "provided.al2", "python"):
        assert any(r.startswith(family) for r in runtimes), family


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_deploy_standalone_publishes_for_its_architecture(
    arch: str, aws_env: dict[str, str], tmp_path: Path  # noqa: F811
) -> None:
    suffix = MAKE_SUFFIX[arch]
    if not (CACHE / arch / "recipe").exists():
        pytest.skip(f"no standalone interpreter for {arch} in {CACHE} "
                    f"(make build_standalone_{suffix} builds it, minutes)")
    env = {**aws_env, "STANDALONE_REUSE_ONLY": "1", "STANDALONE_CACHE": str(CACHE)}
    proc = make(f"deploy_standalone_{suffix}", env, REGION=REGION, OUT_DIR=str(tmp_path),
                AWS=str(AWS_CLI), PYTHONS=sys.executable, PYTHON=sys.executable)
    if proc.returncode != 0 and "no up-to-date interpreter" in proc.stderr:
        pytest.skip(f"the cached {arch} interpreter is stale (make build_standalone_{suffix})")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published = json.loads((tmp_path / f"publish-standalone-{arch}.json").read_text())
    assert published["CompatibleArchitectures"] == [arch]
    assert published["CompatibleRuntimes"] == make_variable("STANDALONE_RUNTIMES")
    assert published["LayerVersionArn"].endswith(f":layer:lambda-logs-http-standalone-{suffix}:1")
    assert "standalone" in published["Description"]
    zip_path = tmp_path / f"lambda-logs-http-standalone-{arch}.zip"
    uploaded = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    assert published["Content"]["CodeSha256"] == uploaded
    listed = aws(aws_env, "list-layer-versions", "--layer-name", f"lambda-logs-http-standalone-{suffix}")
    assert [v["Version"] for v in listed["LayerVersions"]] == [1]


def test_deploy_standalone_needs_a_region() -> None:
    proc = make("deploy_standalone_x86", clean_env())
    assert proc.returncode == 2
    assert "REGION is required" in proc.stderr
