"""Assemble the standalone layer: the plain layer (build.sh's stage) plus the bundled interpreter.

    python3 tools/standalone/assemble.py LAYER_DIR INTERPRETER_ROOT ALLOWLIST LICENSES_DIR \
        ZIP OUT_LAYER COMPILER

``LAYER_DIR`` is build.sh's unpacked layer (launcher, package, bytecode for every Lambda Python);
``INTERPRETER_ROOT`` the build cache's install (bin/python3.13, lib/python3.13/). The layer gains:

    lambda-logs-http/runtime/bin/python3             the interpreter (libpython and the C modules
                                                     of tools/standalone/Setup.local linked in)
    lambda-logs-http/runtime/lib/python3.13/         the allow-listed standard-library modules,
                                                     with unchecked-hash bytecode (/opt is read-only
                                                     and unzipping changes mtimes: Python must trust
                                                     the .pyc files as they are)
    lambda-logs-http/runtime/lib/python3.13/lib-dynload/   empty: CPython's landmark for its
                                                     platform library (no warning at start-up)
    lambda-logs-http/runtime/licenses/               CPython's, OpenSSL's and zlib's licenses

``COMPILER`` is an interpreter of the same version that runs here (the x86_64 build), for the
standard library's bytecode. The zip is deterministic (sorted entries, fixed timestamps and
modes), like build.sh's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

EPOCH = (1980, 1, 1, 0, 0, 0)
RUNTIME = "lambda-logs-http/runtime"
ON_LAMBDA = "/opt/" + RUNTIME


def read_allowlist(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        names = {line.split("#")[0].strip() for line in f} - {""}
    return sorted(names)


def module_files(stdlib: str, names: list[str]) -> list[str]:
    """Relative paths of the .py files of ``names`` (a package name means its __init__.py)."""
    files = []
    for name in names:
        rel = name.replace(".", "/")
        for candidate in (rel + ".py", rel + "/__init__.py"):
            if os.path.isfile(os.path.join(stdlib, candidate)):
                files.append(candidate)
                break
        else:
            raise SystemExit(f"assemble.py: {name} (allow-list) is not a module of {stdlib}")
    return files


def add_runtime(stage: str, root: str, allowlist: str, licenses: str) -> None:
    python = next(
        os.path.join(root, "bin", n)
        for n in sorted(os.listdir(os.path.join(root, "bin")))
        if n.startswith("python3.") and not n.endswith("-config")
    )
    version = os.path.basename(python)[len("python"):]
    stdlib = os.path.join(root, "lib", "python" + version)
    dest = os.path.join(stage, RUNTIME)
    os.makedirs(os.path.join(dest, "bin"))
    shutil.copyfile(python, os.path.join(dest, "bin", "python3"))
    dest_lib = os.path.join(dest, "lib", "python" + version)
    os.makedirs(os.path.join(dest_lib, "lib-dynload"))
    for rel in module_files(stdlib, read_allowlist(allowlist)):
        os.makedirs(os.path.dirname(os.path.join(dest_lib, rel)), exist_ok=True)
        shutil.copyfile(os.path.join(stdlib, rel), os.path.join(dest_lib, rel))
    shutil.copytree(licenses, os.path.join(dest, "licenses"))


def compile_stdlib(stage: str, python: str) -> None:
    """Bytecode for the trimmed library, by an interpreter of the same version, with the paths
    tracebacks show on Lambda."""
    lib = os.path.join(stage, RUNTIME, "lib")
    subprocess.run(
        [python, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         "-s", os.path.join(stage, RUNTIME), "-p", ON_LAMBDA, lib],
        check=True,
    )


def write_zip(stage: str, out: str, layer_dir: str) -> None:
    executables = {"extensions/lambda-logs-http", RUNTIME + "/bin/python3"}
    entries = []
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        rel = os.path.relpath(dirpath, stage).replace(os.sep, "/")
        if rel != ".":
            entries.append(rel + "/")
        entries.extend((f if rel == "." else rel + "/" + f) for f in filenames)
    entries.sort()
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in entries:
            info = zipfile.ZipInfo(name, EPOCH)
            info.create_system = 3
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
                continue
            mode = 0o755 if name in executables else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(stage, name), "rb") as f:
                zf.writestr(info, f.read(), compresslevel=9)
    os.replace(tmp, out)
    shutil.rmtree(layer_dir, ignore_errors=True)
    with zipfile.ZipFile(out) as zf:
        for info in zf.infolist():
            path = zf.extract(info, layer_dir)
            os.chmod(path, (info.external_attr >> 16) & 0o7777)
    with open(out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    unpacked = sum(i.file_size for i in zipfile.ZipFile(out).infolist())
    print(f"zip       {out}")
    print(f"size      {os.path.getsize(out)} bytes ({unpacked} unpacked), {len(entries)} entries")
    print(f"sha256    {digest}")
    print(f"layer     {layer_dir}")


def main() -> int:
    layer, root, allowlist, licenses, out, out_layer, compiler = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="standalone-stage.") as stage:
        shutil.copytree(layer, stage, dirs_exist_ok=True, symlinks=True)
        add_runtime(stage, root, allowlist, licenses)
        compile_stdlib(stage, compiler)
        write_zip(stage, out, out_layer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
