"""The standalone layer in tests: built from the interpreter cache only, run natively or under qemu.

Building the interpreters takes minutes (``make build_standalone_x86`` / ``_arm``, or CI once), so
tests never do it: with an up-to-date interpreter in ``.cache/standalone/<arch>/`` they assemble
the layer from it (seconds), otherwise they skip and say which target builds it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.packaging.layer_helpers import REPO, clean_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

BUILD_STANDALONE = REPO / "build-standalone.sh"
CACHE = Path(os.environ.get("STANDALONE_CACHE", REPO / ".cache" / "standalone"))
ARCHES = ("x86_64", "arm64")
MAKE_SUFFIX = {"x86_64": "x86", "arm64": "arm"}
RUNTIME = Path("lambda-logs-http/runtime")
BUNDLED = RUNTIME / "bin" / "python3"
ON_LAMBDA = Path("/opt") / BUNDLED
QEMU_SYSROOT = Path("/usr/aarch64-linux-gnu")
# Pinned as in requirements-dev.txt: what the unit suite runs with on the bundled interpreter.
TEST_PACKAGES = (
    "pytest==9.2.0", "pytest-timeout==2.4.0", "hypothesis==6.170.15", "botocore==1.44.8",
)


@dataclass(frozen=True)
class Standalone:
    arch: str
    zip_path: Path
    layer: Path
    build_output: str

    @property
    def python(self) -> Path:
        """The layer's interpreter, with the layer's trimmed library."""
        return self.layer / BUNDLED

    @property
    def full_python(self) -> Path:
        """The same binary in the build cache, with the whole standard library (for pytest)."""
        return CACHE / self.arch / "root" / "opt" / RUNTIME / "bin" / "python3.13"


def host_arch() -> str:
    return {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")


def runner_prefix(arch: str) -> list[str]:
    """How to run a binary of ``arch`` here: directly, or under qemu-user; skips if neither."""
    if arch == host_arch():
        return []
    qemu = shutil.which("qemu-aarch64") if arch == "arm64" else None
    if not qemu or not (QEMU_SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        pytest.skip(
            f"cannot run {arch} binaries here (Debian: apt-get install qemu-user libc6-arm64-cross "
            "libgcc-s1-arm64-cross)"
        )
    return [qemu, "-L", str(QEMU_SYSROOT)]


def emulated_executable(arch: str, python: Path) -> Path:
    """A host-runnable program standing for ``python`` (and its ``sys.executable``, which tests
    that start Python subprocesses use): the python itself natively, else a qemu wrapper script
    beside it (no binfmt_misc handler needed). qemu's ``-0`` makes the wrapper the emulated
    interpreter's argv[0]: so its sys.executable is the wrapper, its children run under qemu too,
    and it still finds its standard library from that directory."""
    prefix = runner_prefix(arch)
    if not prefix:
        return python
    wrapper = python.with_name(f"{python.name}-qemu")
    text = (
        "#!/bin/sh\nexec " + " ".join(f"'{p}'" for p in prefix)
        + f" -0 '{wrapper}' '{python}' \"$@\"\n"
    )
    if not wrapper.exists() or wrapper.read_text() != text:
        wrapper.write_text(text)
        wrapper.chmod(0o755)
    return wrapper


def build_standalone(arch: str, out_dir: Path) -> Standalone:
    """Assemble the layer from the cached interpreter; skip when there is none (or it is stale)."""
    proc = subprocess.run(
        ["bash", str(BUILD_STANDALONE), arch],
        env=clean_env(
            OUT_DIR=str(out_dir), STANDALONE_REUSE_ONLY="1", STANDALONE_CACHE=str(CACHE),
            PYTHON=sys.executable,
        ),
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode == 3:
        pytest.skip(
            f"no up-to-date standalone interpreter for {arch} in {CACHE} "
            f"(make build_standalone_{MAKE_SUFFIX[arch]} builds it, minutes)"
        )
    assert proc.returncode == 0, f"build-standalone.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return Standalone(
        arch,
        out_dir / f"lambda-logs-http-standalone-{arch}.zip",
        out_dir / f"standalone-{arch}" / "layer",
        proc.stdout,
    )


def site_for_tests(arch: str, python_version: str = "3.13") -> Path:
    """pytest and its plugins for the bundled interpreter of ``arch`` (wheels for that machine:
    hypothesis has a compiled part), installed once into the cache by the dev venv's pip; skips
    when PyPI cannot be reached."""
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    site = CACHE / f"test-site-{python_version}-{arch}"
    stamp = site / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(TEST_PACKAGES):
        return site
    shutil.rmtree(site, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--target", str(site), "--python-version", python_version, "--only-binary=:all:",
         *(f"--platform=manylinux_2_{v}_{machine}" for v in (17, 28, 34)),
         *TEST_PACKAGES],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot install {' '.join(TEST_PACKAGES)} for the bundled interpreter "
                    f"(pip install): {proc.stderr.strip()[-300:]}")
    stamp.write_text(" ".join(TEST_PACKAGES))
    return site


def standalone_for_e2e(tmp_path_factory: pytest.TempPathFactory, e2e_python: str) -> Standalone:
    """The standalone layer of this machine's architecture for an end-to-end module; skips where
    the launcher would not pick its interpreter (``e2e_python``: that module's
    E2E_EXTENSION_PYTHON, which overrides it)."""
    if os.access("/var/lang/bin/python3", os.X_OK):
        pytest.skip("/var/lang/bin/python3 exists here: the launcher would prefer it")
    if e2e_python:
        pytest.skip("E2E_EXTENSION_PYTHON is set: it would override the layer's interpreter")
    arch = host_arch()
    if not arch:
        pytest.skip("no standalone build for this machine's architecture")
    return build_standalone(arch, tmp_path_factory.mktemp("standalone-e2e"))


def only_the_bundled_python(
    module: ModuleType, standalone: Standalone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """For one test of an end-to-end ``module`` that starts ``module.Sandbox``: the sandbox hands
    its own PATH to the extension, which is made an empty directory (no Python on it, and there
    is no /var/lang/bin/python3 here), and every sandbox that initialised must be running the
    extension on the layer's own interpreter (``/proc/PID/exe``)."""
    from tests.e2e.test_extension import running_interpreter

    empty = tmp_path / "no-python-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    bundled = os.path.realpath(standalone.layer / BUNDLED)
    checked: list[str | None] = []

    class CheckedSandbox(module.Sandbox):  # type: ignore[name-defined,misc]
        def start(self):  # type: ignore[no-untyped-def]
            result = super().start()
            if result.ok:
                exe = running_interpreter(self)
                assert exe in (bundled, None), f"extension runs {exe}, not {bundled}"
                checked.append(exe)
            return result

    monkeypatch.setattr(module, "Sandbox", CheckedSandbox)
    yield
    # At least one start saw the process alive and on the bundled interpreter, if any started.
    assert not checked or bundled in checked, checked
