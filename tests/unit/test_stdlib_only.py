"""The runtime package must import nothing outside the standard library: it runs in a bare layer."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lambda_logs_http"
# Python 3.9 has no sys.stdlib_module_names; the pyenv 3.10+ list covers what we use.
STDLIB = set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}


@pytest.mark.skipif(
    sys.version_info < (3, 10), reason="needs sys.stdlib_module_names (3.10+); CI runs it there"
)
def test_imports_are_standard_library_only() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in STDLIB and top != "lambda_logs_http":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_cold_start_path_avoids_heavy_modules() -> None:
    """Everything the main thread imports before its first /event/next (config, register,
    bind, subscribe, start the gated threads) stays light: no json, re, socket, http.*, ssl..."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import lambda_logs_http.app, lambda_logs_http.lifecycle, lambda_logs_http.settings.load,"
        " lambda_logs_http.listener.server, lambda_logs_http.delivery.worker,"
        " lambda_logs_http.lambda_api.telemetry, lambda_logs_http.invocations;"
        "heavy = {'http.client', 'http.server', 'ssl', 'dataclasses', 'logging', 'typing',"
        " 'urllib.request', 'urllib.parse', 'gzip', 'hashlib', 'email', 'json', 're', 'socket',"
        " 'random', 'encodings.idna', 'zlib'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(PACKAGE.parent)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"


def test_sending_over_http_never_loads_http_client_email_or_ssl(tmp_path: Path) -> None:
    """The transport speaks HTTP/1.1 itself: ``http.client`` would pull in ``email`` (7 MiB and
    30-40 ms of CPU per execution environment); ``ssl`` is for https:// endpoints only; an
    ASCII host name needs no ``idna`` codec (with ``stringprep``: ~2 ms at the first send)."""
    import subprocess

    code = (
        "import sys, pathlib; sys.path.insert(0, sys.argv[1]);"
        "from tools.lambda_sandbox.receiver import Receiver;"
        "from lambda_logs_http.http.transport import HttpTransport;"
        "from lambda_logs_http.http.auth import Auth;"
        "receiver = Receiver(pathlib.Path(sys.argv[2]));"
        "before = set(sys.modules);"
        "from tests.support.endpoints import endpoint;"
        "t = HttpTransport(endpoint(receiver.url), Auth());"
        "assert all(t.send(b'{}', {}, 5).ok for _ in range(2));"
        "receiver.stop();"
        "print(sorted(m for m in set(sys.modules) - before"
        " if m.split('.')[0] in ('http', 'email', 'ssl') or m == 'encodings.idna'))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(PACKAGE.parent), str(tmp_path)],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"
