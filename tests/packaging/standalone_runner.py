"""Run pytest on the standalone layer's interpreter and check the package's imports against the
layer's standard-library allow-list (tools/standalone/stdlib.txt).

    <standalone python3> -I -S tests/packaging/standalone_runner.py REPORT.json ALLOWLIST SITE \
        EXECUTABLE -- PYTEST ARGS...

The interpreter is the layer's own binary with its complete standard library (the build cache's
install), because pytest, hypothesis and the tests' helpers import far more than the extension
does. ``SITE`` holds pytest and its plugins (pure-Python wheels); ``EXECUTABLE`` becomes
``sys.executable`` for the tests that start Python subprocesses (under qemu-user: a wrapper script
that runs this interpreter through qemu, since no binfmt_misc handler may exist). Every ``import`` the extension's
code runs, directly or through the standard-library modules it calls (``socket`` importing
``encodings.idna`` for a host name, say), is attributed to it and must name a module of the
allow-list; the report lists them all. Imports made by the tests and by pytest are not attributed.

Attribution: ``builtins.__import__`` sees every import statement, including those of modules
already loaded. An import belongs to the extension when the innermost frame on the stack that is
not standard-library code is in ``lambda_logs_http/``. Module-level imports of a standard-library
module that pytest happened to load first escape this; the layer test that imports every module
of the package on the layer's trimmed library alone covers those.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import sysconfig


def main() -> int:
    report_path, allow_path, site_dir, executable, sep, *pytest_args = sys.argv[1:]
    if sep != "--":
        print("usage: standalone_runner.py REPORT ALLOWLIST SITE EXECUTABLE -- PYTEST ARGS",
              file=sys.stderr)
        return 2
    sys.executable = executable
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    package_dir = os.path.join(repo, "lambda_logs_http") + os.sep
    stdlib_dir = os.path.join(sysconfig.get_paths()["stdlib"], "")
    site_dirs = (os.path.join(stdlib_dir, "site-packages", ""), os.path.join(site_dir, ""))
    sys.path[:0] = [repo]
    sys.path.append(site_dir)
    with open(allow_path, encoding="utf-8") as f:
        allowed = {line.split("#")[0].strip() for line in f} - {""}

    def is_stdlib_file(filename: str) -> bool:
        return filename.startswith(stdlib_dir) and not filename.startswith(site_dirs)

    def attributed() -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(package_dir):
                return True
            if not (filename.startswith("<frozen") or is_stdlib_file(filename)):
                return False
            frame = frame.f_back
        return False

    used: set[str] = set()
    original_import = builtins.__import__

    def record(name: str) -> None:
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None) or ""
        if is_stdlib_file(origin):
            used.add(name)

    def tracing_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        module = original_import(name, globals, locals, fromlist, level)
        if attributed():
            if level:
                base = (globals or {}).get("__package__") or ""
                for _ in range(level - 1):
                    base = base.rpartition(".")[0]
                name = f"{base}.{name}" if name else base
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                record(".".join(parts[:i]))
            for item in fromlist or ():
                record(f"{name}.{item}")
        return module

    builtins.__import__ = tracing_import
    import pytest

    status = int(pytest.main(pytest_args))
    builtins.__import__ = original_import
    missing = sorted(used - allowed)
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump({"pytest_status": status, "used": sorted(used), "missing": missing}, f, indent=1)
    if missing:
        print(
            "standalone_runner: the extension imported standard-library modules that are not in "
            f"{allow_path}: {', '.join(missing)}",
            file=sys.stderr,
        )
        return status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
