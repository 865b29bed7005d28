"""build.sh: the layer zip's layout, modes, bytecode and determinism."""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import (
    FIXTURE_VERSION,
    INTERPRETERS,
    OLD_INTERPRETERS,
    REPO,
    Build,
    build,
    interpreter_params,
    run_build,
)

EXT = "extensions/lambda-logs-http"
PKG = "lambda-logs-http/lambda_logs_http/"
MODULES = ["__init__", "__main__", "sub/__init__", "sub/mod"]


def _infos(zip_path: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename: i for i in zf.infolist()}


def _mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16


def test_layout_is_extension_plus_private_package(built: Build) -> None:
    names = set(_infos(built.zip_path))
    files = {n for n in names if not n.endswith("/")}
    assert EXT in files
    assert {PKG + m + ".py" for m in MODULES} <= files
    # Everything lives under extensions/ or the private package dir; nothing under python/
    # (/opt/python is on the function's import path).
    assert all(n.startswith(("extensions/", "lambda-logs-http/")) for n in names), sorted(names)


@pytest.mark.parametrize(
    "excluded",
    ["tests/test_inside.py", "test_module.py", "conftest.py", "notes.txt",
     "__pycache__/stale.cpython-311.pyc", ".hidden/x.py"],
)
def test_tests_caches_and_other_files_are_left_out(built: Build, excluded: str) -> None:
    assert PKG + excluded not in _infos(built.zip_path)


def test_nothing_outside_the_package_is_packed(built: Build) -> None:
    names = _infos(built.zip_path)
    assert not [n for n in names if "lambda_sandbox" in n or "/tests/" in n]


def test_launcher_is_executable_and_everything_world_readable(built: Build) -> None:
    for name, info in _infos(built.zip_path).items():
        mode = _mode(info)
        assert info.create_system == 3, name  # Unix: unzip applies the mode
        if name.endswith("/"):
            assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o755, name
        elif name == EXT:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755, name
        else:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, name


def test_entries_sorted_with_fixed_timestamps(built: Build) -> None:
    with zipfile.ZipFile(built.zip_path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_same_tree_gives_same_sha256(built: Build, fixture_src: Path, tmp_path: Path) -> None:
    again = build(tmp_path / "again", fixture_src)
    digest = hashlib.sha256(built.zip_path.read_bytes()).hexdigest()
    assert hashlib.sha256(again.zip_path.read_bytes()).hexdigest() == digest
    assert built.reported_sha256 == digest


def test_build_reports_path_size_and_version(built: Build) -> None:
    assert str(built.zip_path) in built.stdout
    assert f"{built.zip_path.stat().st_size} bytes" in built.stdout
    assert FIXTURE_VERSION in built.stdout


@pytest.mark.parametrize("interp", interpreter_params())
def test_bytecode_for_each_interpreter(built: Build, interp) -> None:
    names = _infos(built.zip_path)
    for module in MODULES:
        directory, _, stem = module.rpartition("/")
        cache = f"{directory}/__pycache__" if directory else "__pycache__"
        pyc = f"{PKG}{cache}/{stem}.{interp.tag}.pyc"
        assert pyc in names, pyc


def test_bytecode_for_python_3_14(built: Build) -> None:
    """python3.14 is a Lambda runtime too: without its bytecode in the zip, every cold start there
    compiles the package from source (/opt is read-only, so Python cannot cache it)."""
    if not any(i.version == "3.14" for i in INTERPRETERS):
        pytest.skip("no Python 3.14 here: bash .ci/python314.sh makes .cache/python3.14/")
    assert "3.14" in re.search(r"^pyc\s+(.*)$", built.stdout, re.M).group(1).split()
    names = _infos(built.zip_path)
    for module in MODULES:
        directory, _, stem = module.rpartition("/")
        cache = f"{directory}/__pycache__" if directory else "__pycache__"
        assert f"{PKG}{cache}/{stem}.cpython-314.pyc" in names, module


@pytest.mark.parametrize("interp", interpreter_params())
def test_bytecode_is_unchecked_hash_with_opt_paths(built: Build, interp) -> None:
    """Each interpreter reads its own .pyc: right magic, hash-based and unchecked (unzip changes
    mtimes, /opt is read-only), compiled-in path under /opt/lambda-logs-http."""
    cache = built.layer / "lambda-logs-http/lambda_logs_http/sub/__pycache__"
    pyc = cache / f"mod.{interp.tag}.pyc"
    check = (
        "import importlib.util, marshal, sys\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "assert data[:4] == importlib.util.MAGIC_NUMBER, 'magic'\n"
        "flags = int.from_bytes(data[4:8], 'little')\n"
        "assert flags == 0b01, 'flags %d' % flags\n"
        "print(marshal.loads(data[16:]).co_filename)\n"
    )
    proc = subprocess.run(
        [interp.path, "-I", "-S", "-c", check, str(pyc)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "/opt/lambda-logs-http/lambda_logs_http/sub/mod.py"


def test_unzip_keeps_the_exec_bit(built: Build, tmp_path: Path) -> None:
    """What Lambda does with the zip, done by Info-ZIP's unzip (not Python's zipfile)."""
    if not shutil.which("unzip"):
        pytest.skip("unzip not installed (Debian: apt-get install unzip)")
    subprocess.run(["unzip", "-q", str(built.zip_path), "-d", str(tmp_path)], check=True)
    mode = (tmp_path / EXT).stat().st_mode
    assert mode & 0o111 == 0o111
    init = tmp_path / "lambda-logs-http/lambda_logs_http/__init__.py"
    assert init.stat().st_mode & 0o444 == 0o444


def test_layer_dir_is_the_unpacked_zip(built: Build) -> None:
    on_disk = {
        p.relative_to(built.layer).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in built.layer.rglob("*") if p.is_file()
    }
    in_zip = {n: stat.S_IMODE(_mode(i)) for n, i in _infos(built.zip_path).items()
              if not n.endswith("/")}
    assert on_disk == in_zip


def test_build_without_package_fails_clearly(tmp_path: Path) -> None:
    proc = run_build(tmp_path / "out", tmp_path)
    assert proc.returncode != 0
    assert "no package at" in proc.stderr


def test_build_without_main_module_fails_clearly(fixture_src: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(fixture_src, src)
    (src / "lambda_logs_http" / "__main__.py").unlink()
    proc = run_build(tmp_path / "out", src)
    assert proc.returncode != 0
    assert "__main__.py is missing" in proc.stderr


def test_pythons_rejects_an_unsupported_interpreter(fixture_src: Path, tmp_path: Path) -> None:
    if not OLD_INTERPRETERS:
        pytest.skip("no Python older than 3.9 here")
    proc = run_build(tmp_path / "out", fixture_src, PYTHONS=OLD_INTERPRETERS[-1].path)
    assert proc.returncode != 0
    assert "not a Python 3.9+ interpreter" in proc.stderr


def test_syntax_newer_than_an_interpreter_fails_the_build(
    fixture_src: Path, tmp_path: Path
) -> None:
    """A module 3.9 cannot compile must fail the build, not ship and crash at cold start."""
    py39 = [i for i in INTERPRETERS if i.version == "3.9"]
    if not py39:
        pytest.skip("no Python 3.9 here")
    src = tmp_path / "src"
    shutil.copytree(fixture_src, src)
    (src / "lambda_logs_http" / "sub" / "mod.py").write_text(
        'match 1:\n    case _:\n        SOURCE = "3.10+"\n'
    )
    proc = run_build(tmp_path / "out", src, PYTHONS=py39[0].path)
    assert proc.returncode != 0
    assert "failed to compile" in proc.stderr


def test_real_package_builds_and_every_module_imports_on_every_python(tmp_path: Path) -> None:
    """The real lambda_logs_http, from the unpacked layer, under each interpreter as the launcher
    starts it (-I -S -B): stdlib only, and importable on 3.9 (e.g. no runtime `X | Y`)."""
    if not (REPO / "lambda_logs_http" / "__main__.py").exists():
        pytest.skip("lambda_logs_http/__main__.py not written yet")
    real = build(tmp_path / "out")
    root = real.layer / "lambda-logs-http"
    modules = sorted(
        "lambda_logs_http." + p.relative_to(root / "lambda_logs_http").with_suffix("").as_posix()
        .replace("/", ".")
        for p in (root / "lambda_logs_http").rglob("*.py")
    )
    modules = [m.removesuffix(".__init__") for m in modules]
    check = (
        "import importlib, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
        "assert callable(sys.modules['lambda_logs_http.__main__'].main), 'no main()'\n"
    )
    sources = sorted((root / "lambda_logs_http").rglob("*.py"))
    for interp in INTERPRETERS:
        missing = [str(p.relative_to(root)) for p in sources
                   if not (p.parent / "__pycache__" / f"{p.stem}.{interp.tag}.pyc").is_file()]
        assert not missing, f"no {interp.tag} bytecode for {missing}"
        proc = subprocess.run(
            [interp.path, "-I", "-S", "-B", "-c", check, str(root), *modules],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, f"Python {interp.version}:\n{proc.stderr}"
