"""Helpers for the layer packaging tests: interpreters, a stand-in package, builds, runs.

The build and launcher tests use a small stand-in ``lambda_logs_http`` package whose ``main()``
reports where it was imported from and how Python was started, so they do not depend on the real
package's state; ``test_layer_build.py`` also builds and imports the real package.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "bin" / "lambda-logs-http"
BUILD_SH = REPO / "build.sh"
FIXTURE_VERSION = "9.8.7"

# main() of the stand-in package: one JSON line describing the process, then exit FX_RC.
_FIXTURE_MAIN = '''\
import json
import os
import sys

import lambda_logs_http
from lambda_logs_http.sub import mod


def big_block_in_heap() -> bool:
    """Whether a fresh 1 MiB block comes from the heap (brk) rather than a mapping of its own:
    glibc maps blocks over 128 KiB by default, each a page fault per page when first written
    and gone again when freed. (A CPython object's id is its address.)"""
    block = b"x" * (1 << 20)
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith("[heap]"):
                low, high = (int(a, 16) for a in line.split()[0].split("-"))
                if low <= id(block) < high:
                    return True
    return False


def main() -> int:
    report = {
        "file": lambda_logs_http.__file__,
        "mod_file": mod.__file__,
        "mod_source": mod.SOURCE,
        "argv": sys.argv,
        "path": sys.path,
        "executable": sys.executable,
        "version": "%d.%d" % sys.version_info[:2],
        "pid": os.getpid(),
        "isolated": sys.flags.isolated,
        "no_site": sys.flags.no_site,
        "dont_write_bytecode": sys.flags.dont_write_bytecode,
        "optimize": sys.flags.optimize,
        "inspect": sys.flags.inspect,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "big_block_in_heap": big_block_in_heap(),
        "leaked": sorted(m for m in sys.modules if m in ("evil", "sitecustomize", "usercustomize")),
    }
    print(json.dumps(report))
    return int(os.environ.get("FX_RC", "0"))
'''


@dataclass(frozen=True)
class Interpreter:
    version: str  # "3.11"
    path: str

    @property
    def tag(self) -> str:  # cache tag, as in __pycache__/x.cpython-311.pyc
        return "cpython-" + self.version.replace(".", "")


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _discover() -> tuple[list[Interpreter], list[Interpreter]]:
    """(Python 3.9+ interpreters, one per minor version; older Python 3 interpreters)."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    # What .ci/python314.sh made (no Python 3.14 is packaged for these machines); build.sh finds
    # these too.
    candidates += sorted(
        p for p in glob.glob(str(REPO / ".cache" / "python3.*" / "bin" / "python3.*"))
        if not p.endswith("-config")
    )
    candidates += ["/var/lang/bin/python3", sys.executable]
    supported: dict[str, Interpreter] = {}
    old: dict[str, Interpreter] = {}
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        version = _version_of(path)
        if version is None:
            continue
        key = f"{version[0]}.{version[1]}"
        target = supported if version >= (3, 9) else old
        target.setdefault(key, Interpreter(key, path))
    order = lambda i: tuple(int(p) for p in i.version.split("."))  # noqa: E731
    return sorted(supported.values(), key=order), sorted(old.values(), key=order)


INTERPRETERS, OLD_INTERPRETERS = _discover()


def interpreter_params() -> list:
    return [pytest.param(i, id=i.version) for i in INTERPRETERS]


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell (no PYTHON*, AWS_*, MAKEFLAGS)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    if "PYENV_ROOT" in os.environ:
        env["PYENV_ROOT"] = os.environ["PYENV_ROOT"]
    env.update(extra)
    return env


def write_fixture_package(src: Path) -> Path:
    """A stand-in lambda_logs_http under ``src``, with files the build must leave out."""
    pkg = src / "lambda_logs_http"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f'"""Stand-in."""\n\n__version__ = "{FIXTURE_VERSION}"\n')
    (pkg / "__main__.py").write_text(_FIXTURE_MAIN)
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text('SOURCE = "original"\n')
    # Must not reach the zip:
    (pkg / "tests").mkdir()
    (pkg / "tests" / "test_inside.py").write_text("assert True\n")
    (pkg / "test_module.py").write_text("assert True\n")
    (pkg / "conftest.py").write_text("")
    (pkg / "notes.txt").write_text("not python\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"stale")
    (pkg / ".hidden").mkdir()
    (pkg / ".hidden" / "x.py").write_text("")
    (src / "lambda_sandbox").mkdir()
    (src / "lambda_sandbox" / "__init__.py").write_text("")
    return src


@dataclass(frozen=True)
class Build:
    out_dir: Path
    zip_path: Path
    layer: Path
    stdout: str

    @property
    def reported_sha256(self) -> str:
        return re.search(r"^sha256\s+([0-9a-f]{64})$", self.stdout, re.M).group(1)


def run_build(
    out_dir: Path, src_dir: Path | None = None, **env: str
) -> subprocess.CompletedProcess:
    extra = {"OUT_DIR": str(out_dir)}
    if src_dir is not None:
        extra["SRC_DIR"] = str(src_dir)
    extra.update(env)
    return subprocess.run(
        ["bash", str(BUILD_SH)],
        env=clean_env(**extra), capture_output=True, text=True, timeout=120,
    )


def build(out_dir: Path, src_dir: Path | None = None, **env: str) -> Build:
    proc = run_build(out_dir, src_dir, **env)
    assert proc.returncode == 0, f"build.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return Build(out_dir, out_dir / "lambda-logs-http.zip", out_dir / "layer", proc.stdout)


def run_launcher(launcher: Path | str, env: dict[str, str], *args: str, **kwargs):
    return subprocess.run(
        [str(launcher), *args], env=env, capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL, **kwargs,
    )


def report_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
