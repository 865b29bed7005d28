"""Run pytest on the standalone layer's interpreter and check the package's imports against the
layer's standard-library allow-list (tools/standalone/stdlib.txt).

    <standalone python3> -I -S tests/packaging/standalone_runner.py REPORT.json ALLOWLIST SITE \
        EXECUTABLE [--emulated] -- PYTEST ARGS...

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

``--emulated`` (the arm64 build under qemu-user, about 10x slower): every property-based test
still runs, on a tenth of its examples (at least 10). Those tests compare the package's pure-Python
parsers and encoders with the standard library's and botocore's on generated inputs, which no
architecture changes; their full example counts run natively on the x86_64 build of the same
interpreter, and on every other Python. Without the cap they are three quarters of the run
(about 3 of 4.5 minutes).
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import sysconfig

EMULATED_EXAMPLES_DIVISOR = 10
EMULATED_MIN_EXAMPLES = 10


class FewerExamples:
    """pytest plugin: caps each hypothesis test's ``max_examples`` (see ``--emulated``).

    Hypothesis gives explicit ``@settings(max_examples=...)`` precedence over any profile, so the
    cap replaces the settings object that ``@given`` reads at call time
    (``_hypothesis_internal_use_settings``, an attribute of hypothesis 6's wrapped test; without
    it the test runs unchanged). Applied once per function: parametrized items share it."""

    def __init__(self) -> None:
        self.capped: dict[int, tuple[int, int]] = {}

    def pytest_collection_modifyitems(self, items: list) -> None:  # type: ignore[type-arg]
        from hypothesis import settings

        for item in items:
            test = getattr(item, "obj", None)
            current = getattr(test, "_hypothesis_internal_use_settings", None)
            if current is None or id(test) in self.capped:
                continue
            wanted = max(EMULATED_MIN_EXAMPLES, current.max_examples // EMULATED_EXAMPLES_DIVISOR)
            if wanted < current.max_examples:
                test._hypothesis_internal_use_settings = settings(current, max_examples=wanted)
            self.capped[id(test)] = (current.max_examples, min(wanted, current.max_examples))


def main() -> int:
    args = sys.argv[1:]
    emulated = "--emulated" in args[: args.index("--") if "--" in args else len(args)]
    if emulated:
        args.remove("--emulated")
    report_path, allow_path, site_dir, executable, sep, *pytest_args = args
    if sep != "--":
        print("usage: standalone_runner.py REPORT ALLOWLIST SITE EXECUTABLE [--emulated] -- "
              "PYTEST ARGS", file=sys.stderr)
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

    fewer = FewerExamples() if emulated else None
    status = int(pytest.main(pytest_args, plugins=[fewer] if fewer else []))
    builtins.__import__ = original_import
    missing = sorted(used - allowed)
    capped = sorted(fewer.capped.values()) if fewer else []
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump({"pytest_status": status, "used": sorted(used), "missing": missing,
                   "hypothesis_examples_capped": capped}, f, indent=1)
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
