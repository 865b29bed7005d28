"""Nothing new may be imported before the register call (it delays every cold start), nor
before the first ``/event/next`` beyond what the listener needs (it competes with the runtime's
own init for the function's CPU).

Lambda starts the function's runtime only once every extension registered, so each module the
extension imports before its ``/extension/register`` request is added, whole, to the init of
every function that uses the layer (on a 128 MB function, at 7 % of a CPU). This test runs the
real launcher (``bin/lambda-logs-http``, from a layer laid out in a temporary directory) against
a fake Extensions API that accepts the register request and never answers it. While the
extension waits for that answer, a SIGUSR1 makes it print ``sys.modules``; whatever is there
beyond the interpreter's own start must be on the allow-lists below. The same is done while
the extension waits for its first ``/event/next`` (register and subscribe answered): until init
has ended only the listener runs, and it may add only ``AFTER_REGISTER_ALLOWED``.

Changing the lists is allowed, deliberately: measure the module's cost first
(``python3 -X importtime -I -S -c 'import MODULE'``), and prefer importing it after the register
call, or after the first ``/event/next``, where it overlaps the runtime's init instead.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "bin" / "lambda-logs-http"
PACKAGE = REPO / "lambda_logs_http"
TIMEOUT_S = 20.0

# The package modules the main thread needs to read its configuration and register.
PACKAGE_ALLOWED = {
    "lambda_logs_http",
    "lambda_logs_http.__main__",
    "lambda_logs_http.app",
    "lambda_logs_http.log",
    "lambda_logs_http.settings",
    "lambda_logs_http.settings.names",
    "lambda_logs_http.settings.parse",
    "lambda_logs_http.settings.model",
    "lambda_logs_http.settings.proxy",
    "lambda_logs_http.settings.endpoint",
    "lambda_logs_http.settings.load",
    "lambda_logs_http.http",
    "lambda_logs_http.http.auth",
    "lambda_logs_http.http.response",
    "lambda_logs_http.lambda_api",
    "lambda_logs_http.lambda_api.client",
    "lambda_logs_http.lambda_api.events",
    "lambda_logs_http.lambda_api.extensions",
}
# The standard library modules imported directly; whatever these import in turn on the running
# interpreter is allowed too (it differs between Python versions). Listed for 3.9-3.13:
# os -> os.path, posixpath, genericpath, stat, _stat, _collections_abc.
STDLIB_ALLOWED = {"__future__", "_socket", "os"}
# Between register and the first /event/next, with settings that need no AWS call and no
# HTTP_HEADERS (those import json and more then: see docs/design.md): the listener and the
# subscription. No threading, collections, json, re, socket, nor any delivery module: the worker
# is built once init has ended. select and errno are built-in modules.
AFTER_REGISTER_ALLOWED = {
    "lambda_logs_http.lifecycle",
    "lambda_logs_http.lambda_api.telemetry",
    "lambda_logs_http.listener",
    "lambda_logs_http.listener.server",
    "lambda_logs_http.listener.loop",
    "lambda_logs_http.listener.parser",
    "lambda_logs_http.stats",
    "select",
    "errno",
}

# Prepended to the launcher's -c code by a stand-in interpreter. It imports nothing new: _signal
# is a built-in module, and it is taken out of sys.modules again so that an import of it (or of
# signal) by the extension still shows.
SNAPSHOT_ON_SIGUSR1 = """\
import sys, _signal
del sys.modules["_signal"]


def _guard_snapshot(signum, frame):
    sys.stderr.write("GUARD-MODULES " + " ".join(sorted(sys.modules)) + "\\n")


_signal.signal(_signal.SIGUSR1, _guard_snapshot)
"""

STAND_IN_INTERPRETER = """\
#!{python} -IS
# Runs the real interpreter with the launcher's arguments, the -c code prefixed.
import os, sys

args = sys.argv[1:]
at = args.index("-c") + 1
args[at] = {prefix!r} + args[at]
os.execv({python!r}, [{python!r}, *args])
"""


def _layer(tmp_path: Path, prefix: str) -> tuple[Path, Path]:
    """A layer (launcher + the package, linked) and a stand-in interpreter adding ``prefix``."""
    layer = tmp_path / "layer"
    (layer / "extensions").mkdir(parents=True)
    (layer / "lambda-logs-http").mkdir()
    launcher = layer / "extensions" / "lambda-logs-http"
    shutil.copy(LAUNCHER, launcher)
    (layer / "lambda-logs-http" / "lambda_logs_http").symlink_to(PACKAGE)
    python = tmp_path / "python3"
    python.write_text(STAND_IN_INTERPRETER.format(python=sys.executable, prefix=prefix))
    for path in (launcher, python):
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return launcher, python


def _modules_of(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-u", "-c", code],
                         capture_output=True, text=True, timeout=TIMEOUT_S, check=True).stdout
    return set(out.split())


def _read_request_head(conn: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# How often the snapshot signal is sent again while no snapshot has come (see _snapshot_line).
RESIGNAL_S = 0.25


def _snapshot_line(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The ``GUARD-MODULES`` line, asked for by SIGUSR1, sent again every ``RESIGNAL_S``.

    Python runs a signal's handler only in the main thread, but a signal sent to the process
    may be taken by any of its threads: one that creates a thread (the worker, starting the
    sender) unblocks signals and takes a pending one on its way back from the kernel. The main
    thread, blocked reading its ``/event/next`` answer, then never runs the handler. (A SIGUSR1
    sent once to a process whose other thread creates threads was missed 14 times in 40 here.)
    The handler runs once whichever signal reaches the main thread, so sending again is safe.
    (``tgkill``, to the main thread alone, needs ctypes, which the standalone layer's
    interpreter that runs this suite does not have.)"""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    seen = b""
    marker = b"GUARD-MODULES "
    process.send_signal(signal.SIGUSR1)
    while time.monotonic() < deadline:
        wait = min(RESIGNAL_S, max(0.0, deadline - time.monotonic()))
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            process.send_signal(signal.SIGUSR1)
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        for line in seen.split(b"\n")[:-1]:
            if line.startswith(marker):
                return line
    raise AssertionError(f"no {marker!r} line from the extension; stderr so far: {seen[-2000:]!r}")


def _read_request(conn: socket.socket, deadline: float) -> bytes:
    """A whole request (head and Content-Length body): answering before the body is read
    could reset the connection under the answer."""
    data = _read_request_head(conn, deadline)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def modules_at_register(tmp_path: Path, env: dict[str, str], prefix: str = "") -> set[str]:
    """``sys.modules`` of the launched extension while its register request is unanswered."""
    return _modules_while_waiting(tmp_path, env, prefix, b"POST /2020-01-01/extension/register ")


def modules_at_first_next(tmp_path: Path, env: dict[str, str]) -> set[str]:
    """``sys.modules`` while its first ``/event/next`` is unanswered (register and the
    subscription answered)."""
    return _modules_while_waiting(tmp_path, env, "", b"GET /2020-01-01/extension/event/next ")


def _modules_while_waiting(tmp_path: Path, env: dict[str, str], prefix: str,
                           held: bytes) -> set[str]:
    launcher, python = _layer(tmp_path, SNAPSHOT_ON_SIGUSR1 + prefix)
    deadline = time.monotonic() + TIMEOUT_S
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(TIMEOUT_S)
        port = server.getsockname()[1]
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
                    "AWS_LAMBDA_FUNCTION_NAME": "guard", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_REGION": "us-east-1",
                    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                    "LAMBDA_LOGS_HTTP_PYTHON": str(python), **env}
        process = subprocess.Popen([str(launcher)], env=full_env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:  # one connection per request (lambda_api.client)
                conn, _ = server.accept()
                with conn:
                    head = _read_request(conn, deadline)
                    if head.startswith(held):
                        # The extension now blocks reading the answer; its main thread has
                        # nothing more to import (the listener's thread already serves).
                        line = _snapshot_line(process, deadline)
                        break
                    assert head.startswith((b"POST /2020-01-01/extension/register ",
                                            b"PUT /2022-07-01/telemetry ")), head[:200]
                    conn.sendall(b"HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: guard-id\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                                 b"Connection: close\r\n\r\n{}")
        finally:
            process.kill()
            process.wait(TIMEOUT_S)
            if process.stderr is not None:
                process.stderr.close()
    return set(line.decode().split()[1:])


def _unexpected(modules: set[str]) -> set[str]:
    baseline = _modules_of("import sys; print(' '.join(sys.modules))")
    stdlib = _modules_of(f"import sys, {', '.join(sorted(STDLIB_ALLOWED))}; "
                         "print(' '.join(sys.modules))")
    return modules - baseline - stdlib - STDLIB_ALLOWED - PACKAGE_ALLOWED


CONFIGS = {
    "minimal": {"HTTP_ENDPOINT": "http://127.0.0.1:9/ingest"},
    "everything set": {
        "HTTP_ENDPOINT": "https://logs.example.com/ingest",
        "HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_CREDENTIALS": "p",
        "HTTP_COMPRESSION": "gzip", "HTTP_TLS_VERIFY": "true", "HTTP_TIMEOUT_SECONDS": "3",
        "HTTP_FLUSH_STRATEGY": "periodic", "HTTP_EXTENSION_LOG_LEVEL": "debug",
        "HTTP_TELEMETRY_TYPES": "platform,function", "HTTP_SPILL_DIR": "/tmp/guard-spill",
    },
    "configuration error": {},  # no endpoint: registers as a no-op
    # Read after register: the settings from AWS (aws.*), HTTP_HEADERS' JSON, aws_sigv4's service.
    "settings from AWS": {
        "HTTP_ENDPOINT_SSM_NAME": "/logs/endpoint", "HTTP_AUTH_TYPE": "bearer",
        "HTTP_AUTH_CREDENTIALS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:t",
        "HTTP_AUTH_CREDENTIALS_SECRET_KEY": "token", "HTTP_HEADERS": '{"X-Scope-OrgID": "a"}',
    },
    "aws_sigv4 and HTTP_HEADERS": {
        "HTTP_ENDPOINT": "https://abc.execute-api.us-east-1.amazonaws.com/prod/logs",
        "HTTP_AUTH_TYPE": "aws_sigv4", "HTTP_HEADERS": '{"X-Scope-OrgID": "a"}',
    },
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_nothing_new_is_imported_before_register(tmp_path: Path, config: str) -> None:
    extra = _unexpected(modules_at_register(tmp_path, CONFIGS[config]))
    assert extra == set(), (
        f"imported before the register call: {sorted(extra)}. Each adds its import time to "
        "every cold start: import it later, or add it to the allow-list in this test with "
        "its measured cost (see the module docstring)")


@pytest.mark.timeout(60)
def test_the_guard_sees_an_import_before_register(tmp_path: Path) -> None:
    """The snapshot really is taken after the imports: one added in front of the launcher's code
    shows up (json, with its own imports)."""
    modules = modules_at_register(tmp_path, CONFIGS["minimal"], prefix="import json\n")
    assert {"json", "json.decoder"} <= _unexpected(modules)
    assert "lambda_logs_http.lambda_api.extensions" in modules


@pytest.mark.timeout(60)
@pytest.mark.parametrize("config", ["minimal", "everything set", "configuration error"])
def test_until_the_first_event_next_only_the_listener_is_imported(
    tmp_path: Path, config: str
) -> None:
    extra = _unexpected(modules_at_first_next(tmp_path, CONFIGS[config])) - AFTER_REGISTER_ALLOWED
    assert extra == set(), (
        f"imported before the first /event/next: {sorted(extra)}. Until init has ended the "
        "extension shares the function's CPU with the runtime's init: import it once init has "
        "ended (lifecycle.Extension.open_gate), or add it to AFTER_REGISTER_ALLOWED in this "
        "test with its measured cost (see the module docstring)")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("initialization_type", ["provisioned-concurrency", "snap-start",
                                                 "lambda-managed-instances"])
def test_where_init_is_ahead_of_requests_delivery_starts_before_the_first_event_next(
    tmp_path: Path, initialization_type: str
) -> None:
    """Provisioned concurrency and SnapStart run init before any request (SnapStart into its
    snapshot), and Managed Instances send no INVOKE: there the first invocation is better off
    finding delivery started."""
    env = {**CONFIGS["minimal"], "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type}
    modules = modules_at_first_next(tmp_path, env)
    assert {"threading", "lambda_logs_http.delivery.worker",
            "lambda_logs_http.invocations"} <= modules
