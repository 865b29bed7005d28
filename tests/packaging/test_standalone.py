"""The standalone layer (build-standalone.sh): its own CPython for runtimes without Python.

What is checked, per architecture (arm64 under qemu-user on an x86_64 machine):
* every ELF file in the zip needs only glibc's own libraries, at symbol versions up to 2.26
  (Amazon Linux 2; AL2023 has 2.34), and is built for that architecture;
* the zip stays small (12 MB), and its interpreter lives outside the function's paths;
* on the layer's trimmed standard library alone, every module of the package imports, the
  interpreter finds its home wherever the layer is unpacked, and TLS works with its own OpenSSL;
* the unit suite passes on the bundled interpreter, and every import the extension makes there is
  in tools/standalone/stdlib.txt (tests/packaging/standalone_runner.py);
* the launcher picks the bundled interpreter only when the function has no Python of its own.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.packaging.layer_helpers import REPO, clean_env, report_of, run_launcher
from tests.packaging.standalone_helpers import (
    ARCHES,
    BUNDLED,
    RUNTIME,
    Standalone,
    build_standalone,
    emulated_executable,
    runner_prefix,
    site_for_tests,
)

MAX_ZIP_BYTES = 12 * 1024 * 1024
MAX_GLIBC = (2, 26)
# glibc's own libraries (and loaders): anything else would have to come from the function's OS.
GLIBC_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}
MACHINE = {"x86_64": "Advanced Micro Devices X86-64", "arm64": "AArch64"}
ALLOWLIST = REPO / "tools" / "standalone" / "stdlib.txt"
PACKAGE = REPO / "lambda_logs_http"


@pytest.fixture(scope="session", params=ARCHES)
def standalone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    return build_standalone(request.param, tmp_path_factory.mktemp(f"standalone-{request.param}"))


def run_bundled(sa: Standalone, *args: str, python: Path | None = None, timeout: float = 120,
                **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*runner_prefix(sa.arch), str(python or sa.python), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs,
    )


# --- the zip --------------------------------------------------------------------------------------

def elf_report(data: bytes, path: Path) -> tuple[str, set[str], set[str]]:
    """(machine, needed libraries, needed symbol versions) of one ELF file, read by readelf."""
    path.write_bytes(data)
    header = subprocess.run(["readelf", "-h", "-W", str(path)], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    machine = re.search(r"Machine:\s+(.+)", header).group(1).strip()
    dynamic = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    versions_out = subprocess.run(["readelf", "-V", "-W", str(path)], capture_output=True,
                                  text=True, check=True, timeout=30).stdout
    # .gnu.version_r lists, per needed library, the versions its symbols are bound to.
    version_r = versions_out.split(".gnu.version_r", 1)[1] if ".gnu.version_r" in versions_out else ""
    versions = set(re.findall(r"Name: (\S+)\s+Flags", version_r))
    return machine, needed, versions


def test_every_elf_needs_only_old_glibc(standalone: Standalone, tmp_path: Path) -> None:
    if not shutil.which("readelf"):
        pytest.skip("readelf missing (Debian: apt-get install binutils)")
    elves, problems = {}, []
    with zipfile.ZipFile(standalone.zip_path) as zf:
        for info in zf.infolist():
            data = zf.read(info) if not info.is_dir() else b""
            if not data.startswith(b"\x7fELF"):
                continue
            machine, needed, versions = elf_report(data, tmp_path / "elf")
            elves[info.filename] = (machine, sorted(needed), sorted(versions))
            if machine != MACHINE[standalone.arch]:
                problems.append(f"{info.filename}: built for {machine}")
            for lib in sorted(needed - GLIBC_LIBRARIES):
                problems.append(f"{info.filename}: needs {lib}, not part of glibc")
            for version in sorted(versions):
                m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", version)
                if m is None:
                    if not version.startswith("GLIBC_"):
                        problems.append(f"{info.filename}: needs symbol version {version}")
                elif (int(m.group(1)), int(m.group(2))) > MAX_GLIBC:
                    problems.append(f"{info.filename}: needs {version} (> GLIBC_2.26)")
    print(json.dumps(elves, indent=1))
    assert str(BUNDLED) in elves, f"no interpreter in the zip: {sorted(elves)}"
    assert problems == []


def test_zip_is_small_and_holds_the_interpreter_outside_the_functions_paths(
    standalone: Standalone,
) -> None:
    size = standalone.zip_path.stat().st_size
    print(f"{standalone.zip_path.name}: {size} bytes")
    assert size <= MAX_ZIP_BYTES, f"{size} bytes > 12 MB"
    with zipfile.ZipFile(standalone.zip_path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    tops = {name.split("/")[0] for name in infos}
    # /opt/bin is on the function's PATH, /opt/lib on its LD_LIBRARY_PATH, /opt/python on its
    # PYTHONPATH: none of the layer's files may land there.
    assert tops == {"extensions", "lambda-logs-http"}
    modes = {n: (i.external_attr >> 16) & 0o777 for n, i in infos.items()}
    assert modes[str(BUNDLED)] == 0o755
    assert modes["extensions/lambda-logs-http"] == 0o755
    assert not [n for n in infos if n.endswith(".so") or ".so." in n]
    assert f"{RUNTIME}/lib/python3.13/lib-dynload/" in infos
    assert any(n.startswith(f"{RUNTIME}/licenses/") for n in infos)


def test_stdlib_in_the_zip_is_the_allowlist(standalone: Standalone) -> None:
    allowed = {line.split("#")[0].strip() for line in ALLOWLIST.read_text().splitlines()} - {""}
    lib = f"{RUNTIME}/lib/python3.13/"
    with zipfile.ZipFile(standalone.zip_path) as zf:
        sources = [n[len(lib):] for n in zf.namelist() if n.startswith(lib) and n.endswith(".py")]
        pycs = [n for n in zf.namelist() if n.startswith(lib) and n.endswith(".pyc")]
    shipped = {s[: -len("/__init__.py")] if s.endswith("/__init__.py") else s[:-3] for s in sources}
    assert {s.replace("/", ".") for s in shipped} == allowed
    assert len(pycs) == len(sources)


# --- the interpreter on the layer's own library ---------------------------------------------------

def package_and_stdlib_imports() -> tuple[list[str], list[str]]:
    """Every module of the package, and every absolute import any of them names (lazy ones
    inside functions included)."""
    modules, imported = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules.append(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module)
    stdlib = sorted(n for n in imported if n.split(".")[0] != "lambda_logs_http")
    return modules, stdlib


PROBE = r"""
import json, os, sys
modules, stdlib = json.loads(sys.argv[1])
failed = {}
for name in stdlib + modules:
    try:
        __import__(name)  # importlib itself is not in the layer
    except Exception as exc:
        failed[name] = "%s: %s" % (type(exc).__name__, exc)
import ssl
print(json.dumps({
    "failed": failed, "prefix": sys.prefix, "exec_prefix": sys.exec_prefix,
    "executable": sys.executable, "path": sys.path, "openssl": ssl.OPENSSL_VERSION,
    "version": list(sys.version_info[:3]), "machine": os.uname().machine,
    "builtin": sorted(sys.builtin_module_names),
}))
"""


def test_every_package_module_imports_on_the_trimmed_library(
    standalone: Standalone, tmp_path: Path
) -> None:
    """Run from a copy in an unrelated directory: the interpreter finds its home from its own
    path (relocatable), and the stdlib modules' module-level imports are all in the layer."""
    layer = tmp_path / "somewhere" / "opt"
    shutil.copytree(standalone.layer, layer, symlinks=True)
    modules, stdlib = package_and_stdlib_imports()
    python = layer / BUNDLED
    proc = run_bundled(
        standalone, "-I", "-S", "-c",
        f"import sys; sys.path.insert(0, {str(layer / 'lambda-logs-http')!r});" + PROBE,
        json.dumps([modules, stdlib]), python=python, env=clean_env(PATH="/nonexistent"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # e.g. no "Could not find platform dependent libraries"
    info = json.loads(proc.stdout)
    assert info["failed"] == {}
    home = str(layer / RUNTIME)
    assert info["prefix"] == info["exec_prefix"] == home
    assert all(p.startswith(home) or p.startswith(str(layer)) for p in info["path"]), info["path"]
    assert info["openssl"].startswith("OpenSSL 3.5"), info["openssl"]
    assert info["version"][:2] == [3, 13]
    assert info["machine"] == {"x86_64": "x86_64", "arm64": "aarch64"}[standalone.arch]
    for module in ("_socket", "select", "_ssl", "_hashlib", "zlib", "binascii", "_json"):
        assert module in info["builtin"], module


def test_tls_with_the_bundled_openssl(standalone: Standalone, tmp_path: Path) -> None:
    """A real handshake and request against a local TLS server (this test's Python), verified
    against a CA given as cafile, as HTTP_CA_BUNDLE-style settings do."""
    from tests.support.tls import make_tls_material, openssl_available

    if not openssl_available():
        pytest.skip("openssl missing (Debian: apt-get install openssl)")
    import ssl
    import threading

    tls = make_tls_material(tmp_path / "tls")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tconn:
                tconn.settimeout(60)
                seen.append(tconn.recv(1024))
                tconn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except OSError as exc:  # reported through the client's failure
            seen.append(repr(exc).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = (
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "with socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=60) as s:\n"
        "    with ctx.wrap_socket(s, server_hostname='localhost') as t:\n"
        "        t.sendall(b'GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
        "        print(t.version(), t.recv(100).split(b'\\r\\n')[0].decode())\n"
    )
    try:
        proc = run_bundled(standalone, "-I", "-S", "-c", client, str(tls.ca_file), str(port),
                           env=clean_env())
    finally:
        thread.join(timeout=60)
        listener.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["TLSv1.3", "HTTP/1.1", "204", "No", "Content"]
    assert seen and seen[0].startswith(b"GET / HTTP/1.1")


# --- the unit suite on the bundled interpreter ----------------------------------------------------

@pytest.mark.timeout(1800)
def test_unit_suite_on_the_bundled_interpreter(standalone: Standalone, tmp_path: Path) -> None:
    """tests/unit on the layer's binary (arm64: under qemu-user), with the extension's imports
    checked against the allow-list; the report is printed (-s shows it)."""
    emulated = bool(runner_prefix(standalone.arch))
    site = site_for_tests(standalone.arch)
    full = standalone.full_python
    assert full.exists(), full
    executable = emulated_executable(standalone.arch, full)
    report = tmp_path / "report.json"
    timeout = 600 if not emulated else 1200
    # Under emulation (about 10x slower) one test's wall-clock bound cannot hold: a push to the
    # listener answered within 0.5 s while a flooding peer never reads (2-3 s under qemu).
    # The behaviour it checks runs natively on the x86_64 build. And the property-based tests run
    # a tenth of their examples there (standalone_runner.py --emulated says why).
    deselect = ["--deselect", "tests/unit/test_listener.py::"
                "test_a_peer_that_never_reads_its_answers_does_not_hold_up_lambda"] if emulated else []
    proc = subprocess.run(
        [str(executable), "-I", "-S", str(REPO / "tests" / "packaging" / "standalone_runner.py"),
         str(report), str(ALLOWLIST), str(site), str(executable),
         *(["--emulated"] if emulated else []), "--",
         "-q", "-p", "no:cacheprovider", "--timeout", "600", *deselect, "tests/unit"],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    tail = "\n".join(proc.stdout.splitlines()[-15:])
    print(tail)
    assert report.exists(), f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(report.read_text())
    print("extension's stdlib imports:", " ".join(result["used"]))
    if result["hypothesis_examples_capped"]:
        print("hypothesis examples (emulated: full -> run):",
              " ".join(f"{a}->{b}" for a, b in result["hypothesis_examples_capped"]))
    assert result["missing"] == [], result["missing"]
    assert proc.returncode == 0, f"{tail}\n{proc.stderr[-3000:]}"
    assert re.search(r"\d+ passed", proc.stdout)


# --- the launcher in the standalone layer ---------------------------------------------------------

def test_launcher_runs_the_bundled_interpreter_without_any_python_around(
    standalone: Standalone, tmp_path: Path
) -> None:
    """No /var/lang/bin/python3, nothing on PATH: the layer's own interpreter runs the extension
    (which, without a Lambda API, exits with its one-line error)."""
    if os.access("/var/lang/bin/python3", os.X_OK):
        pytest.skip("/var/lang/bin/python3 exists here and takes precedence")
    prefix = runner_prefix(standalone.arch)
    if prefix:
        pytest.skip("the launcher execs the interpreter directly: needs the machine's architecture")
    proc = run_launcher(standalone.layer / "extensions" / "lambda-logs-http",
                        clean_env(PATH="/nonexistent"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "no Python interpreter found" not in output
    assert output.startswith("[EXTENSION] ERROR AWS_LAMBDA_RUNTIME_API is not set"), output


def test_function_python_runtime_is_preferred_when_present(
    standalone: Standalone, tmp_path: Path
) -> None:
    """On a python3.x runtime, /var/lang/bin/python3 (3.9+) runs the extension, not the bundled
    copy: shown with the plain layer's stand-in package, in a private mount namespace."""
    from tests.packaging.layer_helpers import INTERPRETERS, build, write_fixture_package

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare")
    if runner_prefix(standalone.arch):
        pytest.skip("the launcher execs the interpreter directly: needs the machine's architecture")
    layer = tmp_path / "opt"
    plain = build(tmp_path / "plain", write_fixture_package(tmp_path / "src")).layer
    shutil.copytree(plain, layer, symlinks=True)
    shutil.copytree(standalone.layer / RUNTIME, layer / RUNTIME, symlinks=True)
    lang = INTERPRETERS[0]
    script = ('mount -t tmpfs tmpfs /var && mkdir -p /var/lang/bin && ln -s "$1" /var/lang/bin/python3 '
              '&& PATH=/nonexistent exec "$2"')
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", lang.path,
         str(layer / "extensions" / "lambda-logs-http")],
        env=clean_env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
    assert report_of(proc)["version"] == lang.version
    # And without it, the bundled one (3.13), with the stand-in package: no mount needed.
    report = report_of(run_launcher(layer / "extensions" / "lambda-logs-http",
                                    clean_env(PATH="/nonexistent")))
    assert report["executable"] == str(layer / BUNDLED)
    assert report["version"] == "3.13"
    assert (report["isolated"], report["no_site"], report["dont_write_bytecode"]) == (1, 1, 1)


def test_too_old_function_python_hands_over_to_the_bundled_one(
    standalone: Standalone, tmp_path: Path
) -> None:
    from tests.packaging.layer_helpers import OLD_INTERPRETERS, build, write_fixture_package

    if not OLD_INTERPRETERS:
        pytest.skip("no Python older than 3.9 here")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare")
    if runner_prefix(standalone.arch):
        pytest.skip("the launcher execs the interpreter directly: needs the machine's architecture")
    layer = tmp_path / "opt"
    plain = build(tmp_path / "plain", write_fixture_package(tmp_path / "src")).layer
    shutil.copytree(plain, layer, symlinks=True)
    shutil.copytree(standalone.layer / RUNTIME, layer / RUNTIME, symlinks=True)
    old = OLD_INTERPRETERS[-1]
    script = ('mount -t tmpfs tmpfs /var && mkdir -p /var/lang/bin && ln -s "$1" /var/lang/bin/python3 '
              '&& PATH=/nonexistent exec "$2" arg1')
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", old.path,
         str(layer / "extensions" / "lambda-logs-http")],
        env=clean_env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
    report = report_of(proc)
    assert report["version"] == "3.13"
    assert report["executable"] == str(layer / BUNDLED)
    assert report["argv"] == [str(layer / "extensions" / "lambda-logs-http"), "arg1"]
