"""Dockerfile.build and `make build_docker`, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import REPO, clean_env

DOCKERFILE = (REPO / "Dockerfile.build").read_text()
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]


def test_every_lambda_python_comes_from_an_official_image() -> None:
    images = re.findall(r"^FROM \$\{PYTHON_IMAGE\}:(3\.\d+)-slim-\$\{DEBIAN\}", DOCKERFILE, re.M)
    assert sorted(images, key=lambda v: int(v.split(".")[1])) == VERSIONS
    assert re.search(r"^ARG PYTHON_IMAGE=python$", DOCKERFILE, re.M)
    for version in VERSIONS[:-1]:  # the last image is the base; the others are copied in
        for path in (f"/usr/local/bin/python{version}", f"/usr/local/lib/python{version}",
                     f"/usr/local/lib/libpython{version}.so*"):
            assert re.search(rf"^COPY --from=py{version.replace('.', '')} {re.escape(path)} ",
                             DOCKERFILE, re.M), path


def test_build_uses_build_sh_with_exactly_the_six_interpreters() -> None:
    pythons = re.search(r'^ENV PYTHONS="([^"]+)"', DOCKERFILE, re.M).group(1).split()
    assert pythons == [f"python{v}" for v in VERSIONS]
    assert re.search(r"^RUN OUT_DIR=/out bash build\.sh", DOCKERFILE, re.M)


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignore = (REPO / "Dockerfile.build.dockerignore").read_text().split()
    for src in re.findall(r"^COPY (?!--from)(\S+) ", DOCKERFILE, re.M):
        assert (REPO / src).exists(), src
        assert "!" + src in ignore, src


def test_make_build_docker_copies_the_zip_out(tmp_path: Path) -> None:
    """The make plumbing, with a stand-in `docker` that logs its calls."""
    if not shutil.which("make"):
        pytest.skip("make not installed (Debian: apt-get install make)")
    log = tmp_path / "calls"
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        "  create) echo cid123 ;;\n"
        '  cp) echo zip > "$3" ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    out = tmp_path / "dist"
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "build_docker", f"DOCKER={fake}",
         f"OUT_DIR={out}"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("build -f Dockerfile.build -t lambda-logs-http-build")
    assert calls[1:] == [
        "create lambda-logs-http-build",
        f"cp cid123:/out/lambda-logs-http.zip {out}/lambda-logs-http.zip",
        "rm -f cid123",
    ]
    assert (out / "lambda-logs-http.zip").read_text() == "zip\n"
