"""bin/lambda-logs-http run from an unpacked layer: interpreter choice, isolation, errors, speed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import (
    INTERPRETERS,
    OLD_INTERPRETERS,
    Build,
    clean_env,
    interpreter_params,
    report_of,
    run_launcher,
)

EXT = Path("extensions/lambda-logs-http")
NO_PATH = "/nonexistent-path-entry"  # no python3, and no dirname/readlink either


def _pkg_init(layer: Path) -> str:
    return str(layer / "lambda-logs-http" / "lambda_logs_http" / "__init__.py")


def _default_python() -> str:
    return INTERPRETERS[-1].path


@pytest.mark.parametrize("interp", interpreter_params())
def test_runs_package_from_unzip_location_with_each_python(layer_copy: Path, interp) -> None:
    # PATH holds nothing: the launcher must need no external command (dirname, readlink...).
    env = clean_env(PATH=NO_PATH, LAMBDA_LOGS_HTTP_PYTHON=interp.path)
    report = report_of(run_launcher(layer_copy / EXT, env, "arg1"))
    assert report["file"] == _pkg_init(layer_copy)
    assert report["path"][0] == str(layer_copy / "lambda-logs-http")
    assert report["version"] == interp.version
    assert report["argv"] == [str(layer_copy / EXT), "arg1"]
    assert (report["isolated"], report["no_site"], report["dont_write_bytecode"]) == (1, 1, 1)


@pytest.mark.parametrize("interp", interpreter_params())
def test_precompiled_bytecode_is_used_not_the_source(layer_copy: Path, interp) -> None:
    """Unchecked-hash .pyc files: Python runs them without reading the (changed) source."""
    mod = layer_copy / "lambda-logs-http" / "lambda_logs_http" / "sub" / "mod.py"
    mod.write_text('SOURCE = "edited"\n')
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=interp.path)
    report = report_of(run_launcher(layer_copy / EXT, env))
    assert report["mod_source"] == "original"
    # And nothing was written next to it (-B; /opt is read-only on Lambda anyway).
    assert not list(mod.parent.glob("__pycache__/*.opt-*.pyc"))


def test_functions_python_variables_do_not_leak_in(layer_copy: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    (evil / "lambda_logs_http").mkdir(parents=True)
    (evil / "lambda_logs_http" / "__init__.py").write_text("raise SystemExit('shadowed')\n")
    (evil / "evil.py").write_text("")
    (evil / "sitecustomize.py").write_text("import evil\n")
    (evil / "usercustomize.py").write_text("import evil\n")
    startup = tmp_path / "startup.py"
    startup.write_text(f"open({str(tmp_path / 'started')!r}, 'w').close()\n")
    env = clean_env(
        LAMBDA_LOGS_HTTP_PYTHON=_default_python(),
        PYTHONPATH=str(evil),
        PYTHONSTARTUP=str(startup),
        PYTHONHOME="/nonexistent",  # would break startup entirely if honoured
        PYTHONOPTIMIZE="2",  # would skip the shipped .pyc files
        PYTHONINSPECT="1",
        PYTHONUSERBASE=str(evil),
    )
    report = report_of(run_launcher(layer_copy / EXT, env))
    assert report["file"] == _pkg_init(layer_copy)
    assert str(evil) not in report["path"]
    assert report["leaked"] == []
    assert (report["optimize"], report["inspect"]) == (0, 0)
    assert not (tmp_path / "started").exists()


def test_exec_makes_the_extension_process_python(layer_copy: Path) -> None:
    """Lambda signals the process it started: that must be Python, not a shell waiting on it."""
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=_default_python())
    proc = subprocess.Popen(
        [str(layer_copy / EXT)], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert json.loads(out)["pid"] == proc.pid


def test_exit_status_of_main_is_the_extensions(layer_copy: Path) -> None:
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=_default_python(), FX_RC="3")
    assert run_launcher(layer_copy / EXT, env).returncode == 3


OUR_TUNABLES = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608"


@pytest.mark.parametrize("interp", interpreter_params())
def test_big_blocks_come_from_the_heap_glibc_keeps(layer_copy: Path, interp) -> None:
    """A push or a batch body is about 1 MB: with glibc's defaults each is a mapping of its own,
    every page faulted in (and zeroed) when written and given back when freed. The launcher's
    tunables reach glibc in the Python process: such a block comes from the heap."""
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=interp.path)
    report = report_of(run_launcher(layer_copy / EXT, env))
    assert report["glibc_tunables"] == OUR_TUNABLES
    assert report["big_block_in_heap"] is True
    # The same interpreter without them: the block is mapped on its own (what they change).
    plain = subprocess.run(
        [interp.path, "-I", "-S", "-c",
         f"import sys; sys.path.insert(0, {str(layer_copy / 'lambda-logs-http')!r}); "
         "from lambda_logs_http.__main__ import big_block_in_heap; print(big_block_in_heap())"],
        env=clean_env(), capture_output=True, text=True, timeout=30, check=True,
    )
    assert plain.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("functions", "expected"),
    [
        ("glibc.malloc.arena_max=2", f"glibc.malloc.arena_max=2:{OUR_TUNABLES}"),
        (
            "glibc.malloc.trim_threshold=131072",
            "glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=4194304",
        ),
        (
            "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=0",
            "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=0",
        ),
    ],
    ids=["other-tunables-kept", "own-trim-threshold-kept", "own-both-kept"],
)
def test_tunables_the_function_sets_are_kept(
    layer_copy: Path, functions: str, expected: str
) -> None:
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=_default_python(), GLIBC_TUNABLES=functions)
    assert report_of(run_launcher(layer_copy / EXT, env))["glibc_tunables"] == expected


def test_python3_from_path_when_nothing_else(layer_copy: Path, tmp_path: Path) -> None:
    if os.access("/var/lang/bin/python3", os.X_OK):
        pytest.skip("/var/lang/bin/python3 exists here and takes precedence")
    decoy, real = tmp_path / "decoy", tmp_path / "bin"
    (decoy / "python3").mkdir(parents=True)  # a directory called python3 is not an interpreter
    real.mkdir()
    (real / "python3").symlink_to(_default_python())
    env = clean_env(PATH=f"{NO_PATH}::{decoy}:{real}")
    report = report_of(run_launcher(layer_copy / EXT, env))
    assert report["file"] == _pkg_init(layer_copy)
    assert report["version"] == INTERPRETERS[-1].version


def test_lambda_python_runtime_is_preferred_over_path(layer_copy: Path, tmp_path: Path) -> None:
    """/var/lang/bin/python3 (the Python runtimes' interpreter) wins over python3 on PATH; shown in
    a private mount namespace with a tmpfs on /var."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare")
    lang_py, path_py = INTERPRETERS[0], INTERPRETERS[-1]
    if lang_py.version == path_py.version:
        pytest.skip("needs two Python versions")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(path_py.path)
    script = (
        'mount -t tmpfs tmpfs /var && mkdir -p /var/lang/bin && ln -s "$1" /var/lang/bin/python3 '
        '&& PATH="$2" exec "$3"'
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         lang_py.path, str(tmp_path / "bin"), str(layer_copy / EXT)],
        env=clean_env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
    assert report_of(proc)["version"] == lang_py.version


def test_no_python_at_all_is_one_clear_error(layer_copy: Path) -> None:
    if os.access("/var/lang/bin/python3", os.X_OK):
        pytest.skip("/var/lang/bin/python3 exists here")
    proc = run_launcher(layer_copy / EXT, clean_env(PATH=NO_PATH))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[EXTENSION] ERROR lambda-logs-http: no Python interpreter found")
    assert "Python 3.9+" in lines[0] and "container image with python3" in lines[0]


def test_bad_interpreter_setting_is_one_clear_error(layer_copy: Path) -> None:
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON="/nonexistent/python3")
    proc = run_launcher(layer_copy / EXT, env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("[EXTENSION] ERROR lambda-logs-http: LAMBDA_LOGS_HTTP_PYTHON=")
    assert len(proc.stderr.splitlines()) == 1


def test_interpreter_setting_may_be_a_command_name(layer_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "my-python").symlink_to(_default_python())
    env = clean_env(PATH=str(tmp_path / "bin"), LAMBDA_LOGS_HTTP_PYTHON="my-python")
    assert report_of(run_launcher(layer_copy / EXT, env))["file"] == _pkg_init(layer_copy)


def test_too_old_python_is_one_clear_error(layer_copy: Path) -> None:
    if not OLD_INTERPRETERS:
        pytest.skip("no Python older than 3.9 here")
    old = OLD_INTERPRETERS[-1]
    proc = run_launcher(layer_copy / EXT, clean_env(LAMBDA_LOGS_HTTP_PYTHON=old.path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("[EXTENSION] ERROR lambda-logs-http: needs Python 3.9 or newer")
    assert f"is Python {old.version}" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("how", ["relative path", "bare name in its directory"])
def test_relative_invocations_find_the_package(layer_copy: Path, how: str) -> None:
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=_default_python())
    if how == "relative path":
        cmd, cwd = ["./" + str(EXT)], layer_copy
    else:
        cmd, cwd = ["sh", EXT.name], layer_copy / EXT.parent
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    report = report_of(proc)
    assert os.path.realpath(report["file"]) == os.path.realpath(_pkg_init(layer_copy))
    assert os.path.isabs(report["path"][0])


@pytest.mark.parametrize("shell", ["dash", "bash", "busybox"])
def test_posix_shells(layer_copy: Path, shell: str) -> None:
    """/bin/sh is dash on Debian images and bash on Amazon Linux (the Lambda runtimes)."""
    exe = shutil.which(shell)
    if not exe:
        pytest.skip(f"{shell} not installed (Debian: apt-get install {shell})")
    cmd = [exe, "sh"] if shell == "busybox" else [exe]
    env = clean_env(PATH=NO_PATH, LAMBDA_LOGS_HTTP_PYTHON=_default_python())
    proc = subprocess.run(
        [*cmd, str(layer_copy / EXT)], env=env, capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert report_of(proc)["file"] == _pkg_init(layer_copy)


def test_launcher_overhead_is_small(built: Build) -> None:
    """The shell adds about 1 ms (dash ~0.6, bash ~1.3 measured with hyperfine). Measured here
    with the interpreter replaced by /bin/true so Python's own start-up noise does not count;
    the minimum of many runs, with a generous bound against a busy machine."""
    true = shutil.which("true")
    launcher = built.layer / EXT
    env = clean_env(LAMBDA_LOGS_HTTP_PYTHON=true)

    def best(cmd: list[str], runs: int = 40) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    direct = best([true, "-I", "-S", "-B", "-u", "-c", "x", str(built.layer), str(launcher)])
    via_launcher = best([str(launcher)])
    overhead_ms = (via_launcher - direct) * 1000
    print(f"launcher overhead: {overhead_ms:.2f} ms")
    assert overhead_ms < 5, f"launcher adds {overhead_ms:.2f} ms"


def test_no_subprocess_on_the_hot_path() -> None:
    """Command substitution or external commands would fork on every cold start."""
    text = (Path(__file__).resolve().parents[2] / "bin" / "lambda-logs-http").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "$(" not in code
    assert "`" not in code
    for command in ("dirname", "readlink", "realpath", "basename", "uname", "which"):
        assert not re.search(rf"(^|[\s;|&(]){command}\s", code, re.M), command
