"""Run an unpacked Lambda layer under AWS's own Runtime Interface Emulator (RIE).

Why: unit tests and our own sandbox only prove the extension against *our* reading of the Lambda
APIs. The RIE is AWS's code for the Extensions, Runtime and (in "managed instances" mode) Telemetry
APIs, so a scenario run here checks the layer against the real thing: registration, event order,
SHUTDOWN handling and deadlines, and the telemetry push format.

How: the RIE wants ``/opt/extensions``, ``/var/task/bootstrap`` and fixed ports (9001 runtime API,
8080 invoke), so each scenario runs in fresh Linux namespaces (``unshare``; root needed):

* mount: the layer bind-mounted read-only on ``/opt`` (as Lambda unzips a layer there), a tmpfs on
  ``/var`` holding ``/var/task`` (bootstrap + task files) and ``/var/lang`` (a bind mount of a Python
  prefix, so ``/var/lang/bin/python3`` exists as in Lambda's Python runtimes), a tmpfs on ``/tmp``,
  and ``/etc/hosts`` mapping ``sandbox.localdomain`` to 127.0.0.1 (as Lambda resolves it);
* network: only ``lo``, so nothing can leave and parallel scenarios never clash on ports;
* pid: this module itself runs as PID 1 of the namespace (the *driver*, ``--inside``). When it exits
  or is killed, the kernel kills every process left in the namespace (RIE, runtime, extensions):
  nothing can outlive a scenario. ``unshare --kill-child`` ties the driver to the outer call, whose
  ``subprocess`` timeout therefore bounds everything.

The driver starts a capture HTTP receiver (``RECEIVER_URL``, inside the namespace, so the extension
can reach it), starts the RIE, invokes it over 127.0.0.1:8080, optionally waits for the receiver,
sends SIGTERM (RIE -> SHUTDOWN to extensions), waits for the RIE to exit, and prints one JSON
result on stdout, which :func:`run_rie_scenario` turns into a :class:`RieResult`.

Modes (pinned by test_harness.py):

* default: real Extensions/Runtime APIs, a stubbed Telemetry API (202 ``Telemetry.NotSupported``),
  init on the first invoke (no invoke: no extension ever starts), everything runs as root, the
  RIE's own log on stderr;
* ``managed_instances=True`` sets ``AWS_LAMBDA_MAX_CONCURRENCY``, which switches the RIE to its
  Lambda Managed Instances implementation: a real Telemetry API (schema 2025-01-29 only),
  SHUTDOWN-only extensions, concurrent invokes, init at start-up, runtime and extensions run as an
  unprivileged user (uid 993: the layer and any interpreter must be world-readable), and the RIE's
  own log goes to stdout among the programs' output (:meth:`RieResult.program_lines` separates).

Usage::

    ok, why = rie_available()          # (False, reason) where it cannot run: pytest.skip(why)
    result = run_rie_scenario(layer_dir, STANDIN_RUNTIME_BOOTSTRAP,
                              task_files=standin_runtime_files(),
                              env={"HTTP_ENDPOINT": RECEIVER_URL + "/logs"},
                              managed_instances=True, invocations=[{"msg": "hi"}], settle_s=1)
    result.responses, result.receiver_requests, result.program_lines(), result.rie_lines()

Standard library only, and importable on Python 3.9+, because the same file runs as the driver
under whatever interpreter the outer test uses.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

SAM_CLI_VERSION = "1.170.0"
"""The aws-sam-cli wheel that ships the RIE binary (pinned, hash-checked in fetch_rie.sh)."""

REPO_ROOT = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = Path(__file__).with_name("fetch_rie.sh")
CACHE_DIR = Path(os.environ.get("RIE_CACHE_DIR", str(REPO_ROOT / ".cache" / "rie")))

RUNTIME_API = "127.0.0.1:9001"
"""Where the RIE serves the Runtime, Extensions and Telemetry APIs inside the namespace."""
INVOKE_URL = "http://127.0.0.1:8080/2015-03-31/functions/function/invocations"
RECEIVER_PORT = 9555
RECEIVER_URL = f"http://127.0.0.1:{RECEIVER_PORT}"
"""The capture receiver, reachable from the extension inside the namespace (any path is accepted)."""

LAMBDA_BASE_ENV: dict[str, str] = {
    # What Lambda gives every process, instead of the host's environment (the RIE hands its own
    # environment to the runtime and to every extension, so a host variable would leak in).
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib"
    ":/var/task:/var/task/lib:/opt/lib",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Fake credentials: the RIE warns without them, and nothing here can reach AWS anyway.
    "AWS_ACCESS_KEY_ID": "AKIARIEHARNESSFAKE00",
    "AWS_SECRET_ACCESS_KEY": "rie-harness-fake-secret",
    "AWS_SESSION_TOKEN": "rie-harness-fake-token",
}

_RIE_SLOG = re.compile(r"^time=\S+ level=[A-Z]+ msg=")
"""A log line of the RIE's managed-instances implementation (Go slog text format)."""

_DRIVER_GRACE_S = 20.0
"""Extra time the outer call allows the driver beyond ``timeout_s`` (namespace setup, teardown)."""


class RieUnavailable(RuntimeError):
    """The RIE cannot run here (not root, no unshare, binary not obtainable...)."""


# --------------------------------------------------------------------------------------------------
# Availability and the binary
# --------------------------------------------------------------------------------------------------


def rie_arch() -> str:
    """RIE binary suffix for this machine: ``x86_64`` or ``arm64`` (Lambda's names)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise RieUnavailable(f"no RIE binary for machine {machine!r}")


def rie_binary(fetch: bool = True) -> Path:
    """Path of the RIE binary: ``$RIE_BINARY``, else the cache, else fetched via fetch_rie.sh.

    Raises :class:`RieUnavailable` with the fetch script's error when it cannot be had.
    """
    explicit = os.environ.get("RIE_BINARY")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RieUnavailable(f"RIE_BINARY={explicit} is not an executable file")
        return path
    path = CACHE_DIR / f"aws-lambda-rie-{rie_arch()}"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if not fetch:
        raise RieUnavailable(f"{path} missing (run {FETCH_SCRIPT})")
    try:
        proc = subprocess.run(
            ["bash", str(FETCH_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=360,
            env={**os.environ, "RIE_CACHE_DIR": str(CACHE_DIR)},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RieUnavailable(f"fetch_rie.sh failed: {exc}") from exc
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise RieUnavailable(f"fetch_rie.sh exited {proc.returncode}: {' | '.join(tail)}")
    return path


@functools.lru_cache(maxsize=1)
def rie_available() -> tuple[bool, str]:
    """Whether scenarios can run here, and if not, a reason fit for ``pytest.skip``.

    Checks once per process: Linux, root, ``unshare``/``mount``/``ip`` present, the binary
    obtainable, and that mount+net+pid namespaces can actually be created (containers may forbid
    it even to root).
    """
    if not sys.platform.startswith("linux"):
        return False, f"RIE harness needs Linux namespaces (platform is {sys.platform})"
    if os.geteuid() != 0:
        return False, "RIE harness needs root (unshare -m -n -p, mounts on /opt and /var)"
    for tool in ("unshare", "mount", "ip"):
        if shutil.which(tool) is None:
            return False, f"RIE harness needs `{tool}` on PATH (util-linux / iproute2)"
    try:
        rie_binary()
    except RieUnavailable as exc:
        return False, f"RIE binary not obtainable: {exc}"
    try:
        probe = subprocess.run(
            [*_unshare_cmd(), "sh", "-c", "ip link set lo up && mount --make-rprivate /"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot create namespaces: {exc}"
    if probe.returncode != 0:
        return False, f"cannot create namespaces: {probe.stderr.strip()[:300]}"
    return True, ""


def _unshare_cmd() -> list[str]:
    return ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class InvokeResponse:
    """One invocation through the RIE's invoke endpoint (``body`` is the function's response)."""

    payload: str
    status: int | None
    headers: dict[str, str]
    body: str
    started_s: float
    """Seconds since the RIE started."""
    duration_s: float
    error: str | None = None
    """Client-side failure (timeout, connection refused) — then ``status`` is None."""
    attempts: int = 1
    """Tries, counting retries after 400 ``Runtime.Unavailable`` (see ``unavailable_retry_s``)."""

    def json(self) -> Any:
        """The response body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class CapturedRequest:
    """One request the capture receiver got (body gunzipped when ``Content-Encoding: gzip``)."""

    time: float
    """Epoch seconds at arrival (comparable with ``deadlineMs`` / 1000 and ``sigterm_epoch``)."""
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased; repeated headers joined with ``, ``."""
    body: str
    raw_size: int
    status_sent: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class RieResult:
    """Everything a scenario observed. ``error`` is set when the driver itself failed."""

    responses: list[InvokeResponse]
    output: str
    """RIE stdout: the runtime's and extensions' stdout+stderr, START/END/REPORT lines, and in
    managed-instances mode the RIE's own log too (see :meth:`program_lines`)."""
    rie_log: str
    """RIE stderr: the emulator's own log in default mode (registrations, INIT/INVOKE phases,
    shutdown); empty in managed-instances mode (see :meth:`rie_lines`)."""
    receiver_requests: list[CapturedRequest]
    rie_exit_code: int | None
    """Exit status after SIGTERM (negative: killed by that signal; None: never started)."""
    killed: bool
    """True when the RIE outlived ``shutdown_wait_s`` after SIGTERM and was SIGKILLed."""
    sigterm_epoch: float | None
    shutdown_s: float | None
    """Seconds from SIGTERM to the RIE's exit."""
    leftover_processes: list[str]
    """Processes still alive in the namespace after the RIE exited (then killed by teardown)."""
    startup_s: float | None
    """Seconds from starting the RIE until its invoke port accepted connections."""
    total_s: float
    error: str | None = None
    driver_stderr: str = ""

    def program_lines(self) -> list[str]:
        """Lines the runtime and extensions wrote (and START/END/REPORT), without RIE log lines.

        Why: in managed-instances mode the RIE writes its own log (``time=... level=...``) to
        stdout, interleaved with the programs' output; in default mode it uses stderr.
        """
        return [line for line in self.output.splitlines() if not _RIE_SLOG.match(line)]

    def rie_lines(self) -> list[str]:
        """The emulator's own log lines, from stderr (default mode) and stdout (managed mode)."""
        from_stdout = [line for line in self.output.splitlines() if _RIE_SLOG.match(line)]
        return self.rie_log.splitlines() + from_stdout

    def receiver_json(self, path_prefix: str = "") -> list[Any]:
        """Parsed JSON bodies of captured requests whose path starts with ``path_prefix``."""
        return [r.json() for r in self.receiver_requests if r.path.startswith(path_prefix)]

    def describe(self) -> str:
        """A readable dump for assertion messages: why a scenario failed is usually in the logs."""
        return (
            f"error={self.error}\nexit={self.rie_exit_code} killed={self.killed} "
            f"shutdown_s={self.shutdown_s}\n--- rie_log\n{self.rie_log}\n--- output\n"
            f"{self.output}\n--- driver stderr\n{self.driver_stderr}"
        )


# --------------------------------------------------------------------------------------------------
# Runtimes to run a layer with
# --------------------------------------------------------------------------------------------------

STANDIN_RUNTIME_BOOTSTRAP = "#!/bin/sh\nexec /var/lang/bin/python3 /var/task/standin_runtime.py\n"
"""Bootstrap for the stdlib custom runtime in standin_runtime.py (see :func:`standin_runtime_files`)."""


def standin_runtime_files() -> dict[str, str]:
    """``task_files`` for :data:`STANDIN_RUNTIME_BOOTSTRAP`: a tiny custom runtime (stdlib only).

    Per invocation it prints ``fn-out <requestId> <payload["msg"]>`` on stdout and
    ``fn-err <requestId>`` on stderr, optionally sleeps ``payload["sleep"]`` s or fails
    (``payload["fail"]``), and answers ``{"requestId", "pid", "uid", "thread", "echo"}``.
    """
    source = Path(__file__).with_name("standin_runtime.py").read_text()
    return {"standin_runtime.py": source}


def awslambdaric_bootstrap(handler: str = "app.handler") -> str:
    """Bootstrap running AWS's Python runtime client (awslambdaric) on ``/var/lang/bin/python3``.

    awslambdaric is taken from the site-packages this test process imports it from, so the
    ``python_prefix`` mounted on /var/lang must be the same Python version (the default is). That
    directory must be readable by any user: in managed-instances mode the RIE runs the runtime and
    the extensions as an unprivileged user (uid 993), which cannot enter /root.
    Raises ImportError when awslambdaric is not installed.
    """
    _site_dir()  # raises ImportError early when awslambdaric is missing
    return (
        f"#!/bin/sh\nPYTHONPATH={NAMESPACE_SITE_DIR} "
        f"exec /var/lang/bin/python3 -m awslambdaric {handler}\n"
    )


# Where the driver makes this process's site-packages visible inside the namespace. The real
# directory may sit under /tmp (a checkout or CI clone there), which the namespace covers with
# a tmpfs: so it is bind-mounted here first, under the /var tmpfs, before /tmp is covered.
NAMESPACE_SITE_DIR = "/var/rie-site"


def _site_dir() -> str:
    import awslambdaric  # optional: only scenarios that use it need it

    return str(Path(awslambdaric.__file__).resolve().parent.parent)


# --------------------------------------------------------------------------------------------------
# Outer API
# --------------------------------------------------------------------------------------------------


def run_rie_scenario(
    layer_dir: Path | None,
    bootstrap: Path | str,
    *,
    env: Mapping[str, str] | None = None,
    invocations: Sequence[Any] = (),
    managed_instances: bool = False,
    max_concurrency: int = 4,
    concurrent: bool = False,
    task_files: Mapping[str, str | bytes] | None = None,
    python_prefix: Path | None = None,
    receiver: bool = True,
    receiver_statuses: Sequence[int] = (),
    receiver_delay_s: float = 0.0,
    unavailable_retry_s: float = 5.0,
    settle_s: float = 0.0,
    settle_until_requests: int = 0,
    shutdown_wait_s: float = 10.0,
    sandbox_hosts: bool = True,
    rie_args: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> RieResult:
    """Run one scenario under the RIE and return what it observed.

    Args:
        layer_dir: an unpacked layer (``extensions/<exe>`` ...), mounted read-only on ``/opt``;
            None for no layer (an empty ``/opt``). In managed-instances mode its files must be
            readable (and launchers executable) by others: the RIE runs them as uid 993.
        bootstrap: the runtime: a file (copied) or script text, installed as ``/var/task/bootstrap``.
        env: variables for the RIE, the runtime and the extensions, over :data:`LAMBDA_BASE_ENV`.
        invocations: payloads (str/bytes sent as is, anything else as JSON), one invoke each.
        managed_instances: switch the RIE to Lambda Managed Instances mode
            (``AWS_LAMBDA_MAX_CONCURRENCY=max_concurrency`` unless ``env`` sets it).
        concurrent: send all invocations at once (threads) instead of one after another.
        unavailable_retry_s: retry an invoke answered 400 ``Runtime.Unavailable`` for this long.
            Managed-instances mode answers so (instead of queueing) whenever no runtime thread is
            waiting in ``/next`` — e.g. during init, or right after the previous response. 0 to
            observe that raw behaviour.
        task_files: more files for ``/var/task`` (relative name -> content), e.g. ``app.py``.
        python_prefix: a Python installation mounted on ``/var/lang`` (default: the prefix of the
            interpreter running this code); must not live under /var or /tmp.
        receiver: start the capture receiver at :data:`RECEIVER_URL`.
        receiver_statuses: HTTP statuses for the receiver's first responses, then 200.
        receiver_delay_s: delay before each receiver response.
        settle_s: after the invocations, wait this long before SIGTERM (telemetry batching, an
            extension's flush) ...
        settle_until_requests: ... or less, once the receiver has this many requests.
        shutdown_wait_s: how long the RIE may take to exit after SIGTERM before SIGKILL.
        sandbox_hosts: make ``sandbox.localdomain``/``sandbox`` resolve to 127.0.0.1 (as in Lambda).
        rie_args: extra RIE arguments, e.g. ``("--log-level", "debug")``.
        timeout_s: budget for the whole scenario inside the namespace; the outer call waits at most
            ``timeout_s + 20`` s and then kills everything.

    Raises:
        RieUnavailable: when :func:`rie_available` is False.
    """
    ok, why = rie_available()
    if not ok:
        raise RieUnavailable(why)
    binary = rie_binary()
    if python_prefix is None:
        python_prefix = Path(sys.base_prefix)
    if isinstance(bootstrap, Path):
        bootstrap_bytes = bootstrap.read_bytes()
    else:
        bootstrap_bytes = bootstrap.encode()
    files: dict[str, str] = {"bootstrap": _b64(bootstrap_bytes)}
    for name, content in (task_files or {}).items():
        files[name] = _b64(content.encode() if isinstance(content, str) else content)
    full_env = dict(LAMBDA_BASE_ENV)
    if managed_instances:
        full_env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(max_concurrency)
    full_env.update(env or {})
    spec = {
        "rie_binary": str(binary),
        "rie_args": list(rie_args),
        "layer_dir": str(Path(layer_dir).resolve()) if layer_dir is not None else None,
        "python_prefix": str(Path(python_prefix).resolve()),
        "site_dir": _optional_site_dir(),
        "task_files": files,
        "env": full_env,
        "invocations": [_payload_text(p) for p in invocations],
        "concurrent": concurrent,
        "unavailable_retry_s": unavailable_retry_s,
        "receiver": receiver,
        "receiver_statuses": list(receiver_statuses),
        "receiver_delay_s": receiver_delay_s,
        "settle_s": settle_s,
        "settle_until_requests": settle_until_requests,
        "shutdown_wait_s": shutdown_wait_s,
        "sandbox_hosts": sandbox_hosts,
        "timeout_s": timeout_s,
    }
    cmd = [*_unshare_cmd(), sys.executable, str(Path(__file__).resolve()), "--inside"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            input=json.dumps(spec).encode(),
            capture_output=True,
            timeout=timeout_s + _DRIVER_GRACE_S,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        # subprocess.run has SIGKILLed unshare; --kill-child takes the driver, and the driver's
        # death (PID 1) the whole namespace.
        stderr = (exc.stderr or b"").decode(errors="replace")
        return _failed(f"driver exceeded {timeout_s + _DRIVER_GRACE_S:.0f} s", stderr, started)
    stderr = proc.stderr.decode(errors="replace")
    try:
        data = json.loads(proc.stdout.decode(errors="replace"))
    except ValueError:
        return _failed(f"driver exited {proc.returncode} without a result", stderr, started)
    if "fatal" in data:
        return _failed(f"driver failed: {data['fatal']}", stderr, started)
    return _result_from_json(data, stderr)


def _die_with_parent() -> None:
    """In the forked child before exec: SIGKILL it if the test process dies first.

    With ``--kill-child`` on unshare and the driver as PID 1, this chains all the way down: no
    RIE or extension can outlive a test run that was killed (e.g. by pytest-timeout).
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _payload_text(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode()
    if isinstance(payload, str):
        return payload
    return json.dumps(payload)


def _failed(error: str, stderr: str, started: float) -> RieResult:
    return RieResult(
        responses=[],
        output="",
        rie_log="",
        receiver_requests=[],
        rie_exit_code=None,
        killed=False,
        sigterm_epoch=None,
        shutdown_s=None,
        leftover_processes=[],
        startup_s=None,
        total_s=time.monotonic() - started,
        error=error,
        driver_stderr=stderr,
    )


def _result_from_json(data: dict[str, Any], driver_stderr: str) -> RieResult:
    return RieResult(
        responses=[InvokeResponse(**r) for r in data["responses"]],
        output=data["output"],
        rie_log=data["rie_log"],
        receiver_requests=[CapturedRequest(**r) for r in data["receiver_requests"]],
        rie_exit_code=data["rie_exit_code"],
        killed=data["killed"],
        sigterm_epoch=data["sigterm_epoch"],
        shutdown_s=data["shutdown_s"],
        leftover_processes=data["leftover_processes"],
        startup_s=data["startup_s"],
        total_s=data["total_s"],
        error=data["error"],
        driver_stderr=driver_stderr,
    )


# --------------------------------------------------------------------------------------------------
# Driver (runs as PID 1 inside the namespaces)
# --------------------------------------------------------------------------------------------------


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, timeout=10, capture_output=True)


def _setup_namespace(spec: dict[str, Any]) -> Path:
    """Build the Lambda-like filesystem; return where the RIE binary can be executed from."""
    _run("ip", "link", "set", "lo", "up")
    _run("mount", "--make-rprivate", "/")
    # The layer first: a bind mount keeps working when /tmp or /var is covered afterwards.
    os.makedirs("/opt", exist_ok=True)
    if spec["layer_dir"]:
        _run("mount", "--bind", spec["layer_dir"], "/opt")
        _run("mount", "-o", "remount,ro,bind", "/opt")  # Lambda's /opt is read-only
    else:
        _run("mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", "/opt")
    binary = Path(spec["rie_binary"])
    stash: bytes | None = None
    if _under(binary, "/var") or _under(binary, "/tmp"):
        stash = binary.read_bytes()  # about to be hidden by the tmpfs mounts
    prefix = spec["python_prefix"]
    if _under(Path(prefix), "/var") or _under(Path(prefix), "/tmp"):
        raise RuntimeError(f"python_prefix {prefix} would be hidden by the /var or /tmp tmpfs")
    _run("mount", "-t", "tmpfs", "-o", "size=512m,mode=755", "tmpfs", "/var")
    if spec.get("site_dir"):
        # Before /tmp is covered: the site directory may live under it (see NAMESPACE_SITE_DIR).
        os.makedirs(NAMESPACE_SITE_DIR)
        _run("mount", "--bind", spec["site_dir"], NAMESPACE_SITE_DIR)
        _run("mount", "-o", "remount,ro,bind", NAMESPACE_SITE_DIR)
    _run("mount", "-t", "tmpfs", "-o", "size=512m,mode=1777", "tmpfs", "/tmp")
    os.makedirs("/var/lang")
    _run("mount", "--bind", prefix, "/var/lang")
    _run("mount", "-o", "remount,ro,bind", "/var/lang")
    task = Path("/var/task")
    task.mkdir()
    for name, content in spec["task_files"].items():
        target = task / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(content))
        if name == "bootstrap":
            target.chmod(0o755)
    if spec["sandbox_hosts"]:
        hosts = Path("/tmp/.hosts")
        hosts.write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tsandbox.localdomain sandbox\n"
        )
        _run("mount", "--bind", str(hosts), "/etc/hosts")
        hosts.unlink()  # the bind mount keeps the inode; /tmp stays clean for the function
    if stash is not None:
        rapid = Path("/var/rapid")
        rapid.mkdir()
        binary = rapid / "aws-lambda-rie"
        binary.write_bytes(stash)
        binary.chmod(0o755)
    return binary


def _optional_site_dir() -> str | None:
    try:
        return _site_dir()
    except ImportError:
        return None


def _under(path: Path, top: str) -> bool:
    resolved = str(path.resolve())
    return resolved == top or resolved.startswith(top + "/")


class _Receiver:
    """A capture HTTP server: records every request, answers scripted statuses, then 200."""

    def __init__(self, statuses: Sequence[int], delay_s: float, port: int = RECEIVER_PORT) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.statuses = list(statuses)
        self.delay_s = delay_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _capture(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    raw = _read_chunked(self.rfile)
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    raw = self.rfile.read(length) if length else b""
                body = raw
                if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                    try:
                        body = gzip.decompress(raw)
                    except OSError:
                        pass
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    key = name.lower()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                with outer.lock:
                    index = len(outer.requests)
                    status = outer.statuses[index] if index < len(outer.statuses) else 200
                    outer.requests.append(
                        {
                            "time": time.time(),
                            "method": self.command,
                            "path": self.path,
                            "headers": headers,
                            "body": body.decode("utf-8", errors="replace"),
                            "raw_size": len(raw),
                            "status_sent": status,
                        }
                    )
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                reply = b'{"ok":true}' if status < 400 else b'{"error":"scripted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _capture  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # stderr of the driver is for the driver's own errors

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> list[dict[str, Any]]:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            return list(self.requests)


def _read_chunked(stream: IO[bytes]) -> bytes:
    """A ``Transfer-Encoding: chunked`` request body (http.server does not decode it)."""
    parts = []
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(stream.read(size))
        stream.readline()


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
        sink.append(chunk)


def _wait_port(port: int, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _invoke(payload: str, deadline: float, t0: float, retry_s: float) -> dict[str, Any]:
    """Invoke once; retry while the RIE answers 400 ``Runtime.Unavailable`` (managed mode: no
    runtime thread is waiting in ``/next`` yet, and the RIE does not queue) for up to ``retry_s``.
    """
    started = time.monotonic()
    retry_until = started + retry_s
    attempts = 0
    while True:
        attempts += 1
        result = _invoke_once(payload, deadline - time.monotonic(), t0)
        unavailable = result["status"] == 400 and "Runtime.Unavailable" in result["body"]
        if not unavailable or time.monotonic() + 0.05 >= min(retry_until, deadline):
            break
        time.sleep(0.05)
    result["started_s"] = started - t0
    result["duration_s"] = time.monotonic() - started
    result["attempts"] = attempts
    return result


def _invoke_once(payload: str, timeout: float, t0: float) -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any] = {
        "payload": payload,
        "status": None,
        "headers": {},
        "body": "",
        "started_s": started - t0,
        "duration_s": 0.0,
        "error": None,
    }
    # As the AWS SDKs do: the RIE passes the Content-Type on to the runtime, and awslambdaric
    # JSON-decodes the event only when it is application/json (urllib's default is a form type).
    request = urllib.request.Request(
        INVOKE_URL,
        data=payload.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=max(timeout, 0.1)) as response:
            result["status"] = response.status
            result["headers"] = dict(response.headers.items())
            result["body"] = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        result["status"] = exc.code
        result["headers"] = dict(exc.headers.items())
        result["body"] = exc.read().decode("utf-8", errors="replace")
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["duration_s"] = time.monotonic() - started
    return result


def _leftovers() -> list[str]:
    """Processes other than this driver still alive in the pid namespace (its /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
        if state == "Z":
            continue  # already dead, only unreaped
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        found.append(f"{entry} {cmdline}")
    return found


def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    deadline = t0 + float(spec["timeout_s"])
    shutdown_wait = float(spec["shutdown_wait_s"])
    result: dict[str, Any] = {
        "responses": [],
        "output": "",
        "rie_log": "",
        "receiver_requests": [],
        "rie_exit_code": None,
        "killed": False,
        "sigterm_epoch": None,
        "shutdown_s": None,
        "leftover_processes": [],
        "startup_s": None,
        "total_s": 0.0,
        "error": None,
    }
    binary = _setup_namespace(spec)
    receiver = (
        _Receiver(spec["receiver_statuses"], spec["receiver_delay_s"]) if spec["receiver"] else None
    )
    out: list[bytes] = []
    err: list[bytes] = []
    proc = subprocess.Popen(
        [str(binary), *spec["rie_args"]],
        cwd="/var/task",
        env=spec["env"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    drains = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for thread in drains:
        thread.start()
    try:
        # Keep time for the shutdown phase out of every earlier wait.
        work_deadline = deadline - shutdown_wait - 1.0
        if not _wait_port(8080, min(t0 + 15.0, work_deadline), proc):
            result["error"] = f"RIE did not listen on :8080 (exit {proc.poll()})"
        else:
            result["startup_s"] = time.monotonic() - t0
            payloads = spec["invocations"]
            retry_s = float(spec["unavailable_retry_s"])
            if spec["concurrent"]:
                slots: list[dict[str, Any]] = [{} for _ in payloads]

                def one(i: int, p: str) -> None:
                    slots[i] = _invoke(p, work_deadline, t0, retry_s)

                threads = [
                    threading.Thread(target=one, args=(i, p), daemon=True)
                    for i, p in enumerate(payloads)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(max(work_deadline - time.monotonic(), 0.1))
                result["responses"] = [s for s in slots if s]
            else:
                for payload in payloads:
                    result["responses"].append(_invoke(payload, work_deadline, t0, retry_s))
            settle_end = min(time.monotonic() + float(spec["settle_s"]), work_deadline)
            want = int(spec["settle_until_requests"])
            while time.monotonic() < settle_end:
                if want and receiver is not None and receiver.count() >= want:
                    break
                time.sleep(0.02)
    finally:
        if proc.poll() is None:
            result["sigterm_epoch"] = time.time()
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=max(min(shutdown_wait, deadline - time.monotonic()), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                result["killed"] = True
                proc.wait(timeout=5)
            result["shutdown_s"] = time.monotonic() - sent
        result["rie_exit_code"] = proc.returncode
        # What the RIE left running (extensions it did not kill): recorded, then killed by teardown.
        time.sleep(0.05)
        result["leftover_processes"] = _leftovers()
        for thread in drains:
            thread.join(timeout=2)
        if receiver is not None:
            result["receiver_requests"] = receiver.close()
        result["output"] = b"".join(out).decode("utf-8", errors="replace")
        result["rie_log"] = b"".join(err).decode("utf-8", errors="replace")
        result["total_s"] = time.monotonic() - t0
    return result


def _inside_main() -> int:
    spec = json.loads(sys.stdin.buffer.read())
    try:
        result = _drive(spec)
    except Exception as exc:  # the outer side needs a result either way
        traceback.print_exc()
        result = {"fatal": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``--inside`` runs the driver (spec JSON on stdin, result JSON on stdout)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inside", action="store_true", help="run as the in-namespace driver")
    args = parser.parse_args(argv)
    if not args.inside:
        ok, why = rie_available()
        print("RIE available" if ok else f"RIE unavailable: {why}")
        return 0 if ok else 1
    if os.getpid() != 1:
        print("--inside must run as PID 1 of a fresh pid namespace", file=sys.stderr)
        return 2
    return _inside_main()


if __name__ == "__main__":
    sys.exit(main())
