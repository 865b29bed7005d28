"""AWS's Signature Version 4 test suite, loaded from the botocore sdist on PyPI at test time.

AWS publishes the suite (``aws-sig-v4-test-suite``, Apache-2.0, "Copyright 2019 Amazon.com") and
botocore's source distribution ships it as ``tests/unit/auth/aws4_testsuite/``. Nothing of it is
committed here: ``ensure_suite()`` runs ``pip download --no-deps --no-binary :all:`` for the pinned
sdist into ``.cache/`` once and extracts only that folder. ``python -m tests.unit.aws.testsuite``
does the same ahead of a test run (``.ci/run`` calls it).

Each case is a folder with ``<name>.req`` (the raw request), ``.creq`` (canonical request),
``.sts`` (string to sign), ``.authz`` (the ``Authorization`` header) and ``.sreq``. The fixed
inputs are those of AWS's suite: the credentials and time below, region us-east-1, service
"service". A case whose canonical request carries ``x-amz-security-token`` is signed with that
token (as AWS's description of the suite says).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "botocore==1.44.8"
_SUITE_IN_SDIST = "tests/unit/auth/aws4_testsuite/"
ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / ".cache" / "aws-sig-v4-test-suite" / SDIST.replace("==", "-")

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
SERVICE = "service"
NOW = 1440938160.0  # 2015-08-30T12:36:00Z, the X-Amz-Date of every case


class Case:
    """One test case: the parsed request and the expected strings."""

    def __init__(self, folder: Path, name: str) -> None:
        stem = folder / folder.name
        self.name = name
        self.raw = stem.with_suffix(".req").read_text(encoding="utf-8")
        self.canonical_request = _read(stem.with_suffix(".creq"))
        self.string_to_sign = _read(stem.with_suffix(".sts"))
        self.authorization = _read(stem.with_suffix(".authz"))
        self.signed_request = _read(stem.with_suffix(".sreq"))
        self.method, self.target, self.headers, self.body = parse_request(self.raw)
        self.token = None
        for line in self.canonical_request.split("\n"):
            if line.startswith("x-amz-security-token:"):
                self.token = line.split(":", 1)[1]

    def __repr__(self) -> str:
        return self.name


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").replace("\r", "")


def parse_request(raw: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Method, request target, headers in order (folded lines joined) and body of a ``.req``.

    The suite's requests are not strictly valid HTTP (a space or raw UTF-8 in the target, no
    final CRLF), so they are read line by line rather than with an HTTP parser.
    """
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    request_line = lines[0]
    method, rest = request_line.split(" ", 1)
    target = rest.rsplit(" ", 1)[0]  # "GET /example space/ HTTP/1.1"
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obs-fold: a continuation of the previous value
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
            continue
        name, _, value = line.partition(":")
        headers.append((name, value))
    return method, target, headers, body.encode("utf-8")


def ensure_suite() -> Path | None:
    """The suite's folder in ``.cache``, downloading the sdist if needed; None if impossible."""
    if (CACHE / "get-vanilla").is_dir():
        return CACHE
    with tempfile.TemporaryDirectory() as scratch:
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "--disable-pip-version-check", "-d", scratch, SDIST],
            capture_output=True, timeout=300,
        )
        archives = list(Path(scratch).glob("*.tar.gz"))
        if download.returncode != 0 or not archives:
            return None
        partial = CACHE.with_name(CACHE.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                _, _, inside = member.name.partition("/")
                if not member.isfile() or not inside.startswith(_SUITE_IN_SDIST):
                    continue
                target = partial / inside[len(_SUITE_IN_SDIST):]
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
        shutil.rmtree(CACHE, ignore_errors=True)
        partial.rename(CACHE)
    return CACHE


def cases(suite: Path) -> list[Case]:
    """Every case of the suite (folders holding a ``.req``), sorted by name."""
    found = []
    for request in sorted(suite.rglob("*.req")):
        folder = request.parent
        found.append(Case(folder, folder.relative_to(suite).as_posix()))
    return found


if __name__ == "__main__":
    where = ensure_suite()
    if where is None:
        sys.exit(f"could not download the {SDIST} sdist with pip")
    print(f"{len(cases(where))} cases in {where}")
