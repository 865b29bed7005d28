"""The execution environment's lifecycle: init, invoke, freeze, reset, shutdown.

:class:`Sandbox` plays the Lambda service for one execution environment. It owns the HTTP
server (all three APIs on one ``127.0.0.1`` port), the extension and runtime processes, and
the telemetry hub, and moves them through Lambda's phases:

* **init** — start every executable in ``<layer>/extensions/`` (sorted); once all have
  registered, start the runtime; init ends when every extension called ``/event/next`` and
  the runtime called ``/invocation/next`` (``init_timeout_s``, 10 s like Lambda). A crash, an
  ``init/error`` or the time limit fails init and tears the environment down.
* **invoke** — thaw, hand the event to the runtime and INVOKE to every INVOKE-registered
  extension; the invocation ends when the runtime answered and every extension called
  ``/event/next`` again; then ``platform.report`` and freeze (SIGSTOP) until the next invoke.
  A timeout or crash tears down with a SHUTDOWN (``timeout``/``failure``) and the next invoke
  initialises a fresh environment.
* **restore** (``snapstart=True``) — after init the environment stays frozen (the snapshot);
  the next invoke first restores it: the processes' connections to the outside world are
  destroyed, the processes resume, and the restore events are emitted (see ``snapstart``).
* **shutdown** — the runtime gets SIGTERM (SIGKILL after ``runtime_shutdown_s``), extensions
  registered for SHUTDOWN get the event with ``deadlineMs`` = now + 2 s, and whatever is
  still running at the deadline is SIGKILLed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import platform_events, snapstart
from .config import (
    CREDENTIALS_PATH,
    FAKE_CREDENTIALS,
    DeliveryPolicy,
    FunctionSpec,
    SandboxConfig,
)
from .cpu_share import CpuCgroup, CpuLimit
from .extensions_api import EVENT_INVOKE, EVENT_SHUTDOWN, ExtensionsAPI, FunctionMetadata
from .log_records import strip_newline, to_record
from .processes import Chunk, ManagedProcess
from .results import (
    ApiCall,
    DeliveryStats,
    ErrorRecord,
    InitResult,
    InvokeResult,
    OutputLine,
    Registration,
    RestoreResult,
    ShutdownResult,
    SubscriptionRecord,
)
from .runtime_api import Invocation, RuntimeAPI
from .server import ApiRequest, ApiResponse, ApiServer, Router, error_response, json_response
from .telemetry import TelemetryAPI, TelemetryHub
from .timeutil import epoch_ms, iso, ms_between, wall_from_monotonic

log = logging.getLogger("lambda_sandbox")

RUNTIME_NAME = "runtime"


def describe_exit(code: int | None) -> str:
    """An exit status in the words Lambda (Go's os/exec) uses: ``exit status 1``,
    ``signal: killed``."""
    if code is None:
        return "unknown exit status"
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"signal: {-code}"
    words = {"SIGKILL": "killed", "SIGTERM": "terminated", "SIGSEGV": "segmentation fault",
             "SIGABRT": "aborted", "SIGINT": "interrupt"}
    return f"signal: {words.get(name, name.lower())}"


def _remove_cgroup(cgroup: CpuCgroup | None) -> None:
    """The sandbox's finalizer (it must not hold the sandbox itself)."""
    if cgroup is not None:
        cgroup.remove()


@dataclass(frozen=True)
class _Measured:
    """An invocation's outcome in the terms ``InvokeResult`` and ``platform.report`` use."""

    status: str
    error: dict[str, Any] | None
    error_type: str | None
    duration_ms: float
    post_runtime_extensions_ms: float | None
    response_ms: float | None


class Sandbox:
    """A local stand-in for one Lambda execution environment (see the package docstring)."""

    def __init__(
        self,
        layer_dir: Path | str | None = None,
        function: FunctionSpec | None = None,
        env: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 128,
        limit_cpu: bool = False,
        log_format: str = "Text",
        log_level: str | None = None,
        function_name: str = "demo",
        function_version: str = "$LATEST",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        telemetry: str = "full",
        freeze: bool = True,
        managed_instances: bool = False,
        max_concurrency: int = 2,
        init_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 2.0,
        runtime_shutdown_s: float = 0.3,
        delivery: DeliveryPolicy | None = None,
        inherit_env: bool = False,
        snapstart: bool = False,
        snapshot_freeze_s: float = 1.0,
        tenant_id: str | None = None,
    ) -> None:
        self.config = SandboxConfig(
            layer_dir=Path(layer_dir).resolve() if layer_dir is not None else None,
            function=function or FunctionSpec(),
            env=dict(env or {}),
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            limit_cpu=limit_cpu,
            log_format=log_format,
            log_level=log_level,
            function_name=function_name,
            function_version=function_version,
            region=region,
            account_id=account_id,
            telemetry=telemetry,
            freeze=freeze and not managed_instances,
            managed_instances=managed_instances,
            max_concurrency=max_concurrency,
            init_timeout_s=init_timeout_s,
            shutdown_timeout_s=shutdown_timeout_s,
            runtime_shutdown_s=runtime_shutdown_s,
            delivery=delivery or DeliveryPolicy(),
            inherit_env=inherit_env,
            snapstart=snapstart,
            snapshot_freeze_s=snapshot_freeze_s,
            tenant_id=tenant_id,
        )
        # What tests inspect. Lists are appended from several threads (appends are atomic).
        self.function_output: list[str] = []
        self.extension_output: list[str] = []
        self.output: list[OutputLine] = []
        self.registrations: list[Registration] = []
        self.telemetry_subscriptions: list[SubscriptionRecord] = []
        self.errors: list[ErrorRecord] = []
        self.api_calls: list[ApiCall] = []
        self.init_results: list[InitResult] = []
        self.invocations: list[InvokeResult] = []
        self.resets: list[ShutdownResult] = []
        self.restores: list[RestoreResult] = []
        self.shutdown_result: ShutdownResult | None = None

        self._cond = threading.Condition()
        self._lifecycle_lock = threading.RLock()
        self._invoke_lock = threading.Lock()
        self._state = "new"  # new | ready | needs-init | closed
        self._frozen = False
        self._runtime: ManagedProcess | None = None
        self._extensions: dict[str, ManagedProcess] = {}
        self._pending_init_ms: float | None = None
        self._pending_restore_ms: float | None = None
        self._snapshot_taken = False  # snapstart: init done, the next invoke restores
        self._log_stream = (f"{time.strftime('%Y/%m/%d', time.gmtime())}"
                            f"/[{self.config.function_version}]{uuid.uuid4().hex}")

        self.hub = TelemetryHub(self.config.delivery)
        self._extensions_api = ExtensionsAPI(
            self._cond,
            FunctionMetadata(self.config.function_name, self.config.function_version,
                             self.config.function.handler, self.config.account_id),
            managed_instances=self.config.managed_instances,
            extensions_dir=str(self._extensions_dir() or "<no layer>/extensions"),
            on_registered=self.registrations.append,
            on_error=self.errors.append,
        )
        self._runtime_api = RuntimeAPI(self._cond, on_error=self.errors.append)
        self._telemetry_api = TelemetryAPI(
            self.hub, mode=self.config.telemetry,
            managed_instances=self.config.managed_instances,
            identify=self._extensions_api.identify,
            on_subscribed=self.telemetry_subscriptions.append,
        )
        # Lambda's CPU share for memory_mb, for every process of this environment (see
        # cpu_share). Created before anything can fail and removed whatever happens: shutdown()
        # removes it, and so does the finalizer at interpreter exit if nobody shut down.
        self._cgroup: CpuCgroup | None = None
        self.cpu_limit: CpuLimit | None = None
        if self.config.limit_cpu:
            self._cgroup = CpuCgroup.create(self.config.memory_mb)
            self.cpu_limit = self._cgroup.limit
        self._remove_cgroup = weakref.finalize(self, _remove_cgroup, self._cgroup)
        try:
            self._server = ApiServer(self._router(), on_call=self.api_calls.append)
            self._server.start()
        except BaseException:
            self._remove_cgroup()
            raise
        self.runtime_api = self._server.address

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def telemetry_events(self) -> list[dict[str, Any]]:
        """Every telemetry event the sandbox emitted, in order (whether or not subscribed)."""
        return self.hub.events

    def delivery_stats(self) -> dict[str, DeliveryStats]:
        """What each subscriber was pushed (batches, sizes, failures, drops)."""
        return self.hub.stats()

    def pids(self) -> dict[str, int]:
        """Live process ids by name (``runtime`` for the function)."""
        procs = dict(self._extensions)
        if self._runtime is not None:
            procs[RUNTIME_NAME] = self._runtime
        return {name: p.pid for name, p in procs.items()
                if p.pid is not None and not p.exited.is_set()}

    def cpu_stat(self) -> dict[str, int]:
        """The cgroup's ``cpu.stat`` (periods, throttled periods and time; see
        :meth:`CpuCgroup.stat`); empty without ``limit_cpu`` or after shutdown."""
        return self._cgroup.stat() if self._cgroup is not None else {}

    def start(self) -> InitResult:
        """Run the init phase (cold start). Raises ``RuntimeError`` if already started."""
        with self._lifecycle_lock:
            if self._state == "closed":
                raise RuntimeError("sandbox is shut down")
            if self._state == "ready":
                raise RuntimeError("sandbox already started")
            return self._init("init")

    def invoke(self, event: Any = None, *, client_context: Mapping[str, Any] | None = None,
               cognito_identity: Mapping[str, Any] | None = None) -> InvokeResult:
        """Invoke the function once (initialising first if needed) and wait for the end of the
        invocation. ``event`` may be JSON-able, ``str`` or ``bytes``; ``None`` sends ``{}``.

        Invocations are serialised, except with ``managed_instances=True`` where calls from
        several threads run concurrently, as in Lambda Managed Instances."""
        if self.config.managed_instances:
            return self._invoke(event, client_context, cognito_identity)
        with self._invoke_lock:
            return self._invoke(event, client_context, cognito_identity)

    def shutdown(self, reason: str = "spindown") -> ShutdownResult:
        """Shut the environment down (SHUTDOWN event, 2 s deadline, SIGKILL) and stop the
        server. Safe to call twice: later calls return the first result."""
        with self._lifecycle_lock:
            if self._state == "closed":
                assert self.shutdown_result is not None
                return self.shutdown_result
            try:
                if self._state == "ready":
                    result = self._teardown(reason)
                else:
                    result = ShutdownResult({}, [], 0.0, reason)
            finally:
                self._state = "closed"
                with self._cond:
                    self._extensions_api.close()
                    self._runtime_api.close()
                self.hub.drop_subscribers(0.5)
                self._server.close(2.0)
                self._remove_cgroup()
            self.shutdown_result = result
            return result

    close = shutdown

    # ------------------------------------------------------------------ wiring

    def _router(self) -> Router:
        router = Router()
        ext, rt, tel = self._extensions_api, self._runtime_api, self._telemetry_api
        router.add("POST", r"/2020-01-01/extension/register", ext.register)
        router.add("GET", r"/2020-01-01/extension/event/next", ext.next_event)
        router.add("POST", r"/2020-01-01/extension/init/error", ext.init_error)
        router.add("POST", r"/2020-01-01/extension/exit/error", ext.exit_error)
        router.add("PUT", r"/2022-07-01/telemetry/?", tel.subscribe)
        router.add("PUT", r"/2020-08-15/logs/?", tel.logs)
        router.add("GET", r"/2018-06-01/runtime/invocation/next", rt.next_invocation)
        router.add("POST", r"/2018-06-01/runtime/invocation/(?P<request_id>[^/]+)/response",
                   rt.response)
        router.add("POST", r"/2018-06-01/runtime/invocation/(?P<request_id>[^/]+)/error",
                   rt.error)
        router.add("POST", r"/2018-06-01/runtime/init/error", rt.post_init_error)
        router.add("GET", r"/2018-06-01/runtime/restore/next", rt.restore_next)
        router.add("POST", r"/2018-06-01/runtime/restore/error", rt.post_restore_error)
        router.add("GET", CREDENTIALS_PATH, self._credentials)
        return router

    def _credentials(self, request: ApiRequest) -> ApiResponse:
        """SnapStart's credentials endpoint: the role's (fake) keys, for the right token."""
        if not self.config.snapstart:
            return error_response(404, "NotFound", "credentials are in the environment")
        if request.header("Authorization") != self.config.credentials_token:
            return error_response(401, "Unauthorized", "invalid authorization token")
        return json_response(200, {
            "AccessKeyId": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "SecretAccessKey": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "Token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            "Expiration": iso(time.time() + 6 * 3600).replace(".000Z", "Z"),
        })

    def _extensions_dir(self) -> Path | None:
        if self.config.layer_dir is None:
            return None
        return self.config.layer_dir / "extensions"

    def _extension_paths(self) -> list[Path]:
        directory = self._extensions_dir()
        if directory is None or not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.is_file() and os.access(p, os.X_OK))

    def _function_sink(self, chunk: Chunk) -> None:
        self.function_output.append(strip_newline(chunk.text))
        self.output.append(OutputLine(chunk.time, "function", chunk.stream, chunk.text))
        self.hub.emit("function", to_record(chunk.text, self.config.log_format), chunk.time)

    def _extension_sink(self, name: str) -> Callable[[Chunk], None]:
        def sink(chunk: Chunk) -> None:
            self.extension_output.append(strip_newline(chunk.text))
            self.output.append(OutputLine(chunk.time, name, chunk.stream, chunk.text))
            self.hub.emit("extension", to_record(chunk.text, self.config.log_format), chunk.time)
        return sink

    def _on_exit(self, process: ManagedProcess, code: int) -> None:
        log.debug("%s exited: %s", process.name, describe_exit(code))
        with self._cond:
            self._cond.notify_all()

    def _processes(self) -> list[ManagedProcess]:
        procs = list(self._extensions.values())
        if self._runtime is not None:
            procs.append(self._runtime)
        return procs

    # ------------------------------------------------------------------ init

    def _init(self, phase: str) -> InitResult:
        """Run one init phase; on failure the environment is torn down (reason ``failure``)."""
        cfg = self.config
        t0 = time.monotonic()
        deadline = t0 + cfg.init_timeout_s
        paths = self._extension_paths()
        self._thaw()
        self.hub.begin_init()
        with self._cond:
            self._extensions_api.reset([p.name for p in paths])
            self._runtime_api.reset()
            self._runtime_api.in_init = True
        self.hub.emit("platform.initStart", platform_events.init_start(
            initialization_type=cfg.initialization_type, phase=phase,
            runtime_version=platform_events.runtime_version(cfg.function.python),
            runtime_version_arn=f"arn:aws:lambda:{cfg.region}::runtime:sandbox",
            function_name=cfg.function_name, function_version=cfg.function_version))

        timings: dict[str, float] = {}
        failure = self._launch_extensions(paths)
        if failure is None:
            failure = self._wait_init(self._extensions_api.all_registered, deadline)
        if failure is None:
            timings["registered"] = ms_between(t0, max(
                [s.registered_at or t0 for s in self._extensions_api.states] + [t0]))
            failure = self._start_runtime()
        if failure is None:
            failure = self._wait_init(lambda: self._runtime_api.ready_at is not None, deadline)
        if failure is None:
            assert self._runtime is not None and self._runtime_api.ready_at is not None
            self._runtime.drain(1.0)
            timings["runtime_ready"] = ms_between(t0, self._runtime_api.ready_at)
            self.hub.emit("platform.initRuntimeDone", platform_events.init_runtime_done(
                initialization_type=cfg.initialization_type, phase=phase, status="success"),
                wall_from_monotonic(self._runtime_api.ready_at))
            failure = self._wait_init(self._extensions_api.all_ready, deadline)
        if failure is None:
            assert self._runtime_api.ready_at is not None
            ready_at = max([s.ready_at or t0 for s in self._extensions_api.states] + [t0])
            timings["ready"] = ms_between(t0, ready_at)
            result = self._init_succeeded(phase, t0, max(ready_at, self._runtime_api.ready_at),
                                          timings)
        else:
            result = self._init_failed(phase, t0, failure, timings)
        self.init_results.append(result)
        return result

    def _launch_extensions(self, paths: list[Path]) -> tuple[str, dict[str, Any]] | None:
        """Start every extension (the runtime waits for their registrations)."""
        env = self.config.extension_environment(self.runtime_api)
        for path in paths:
            process = ManagedProcess(path.name, [str(path)], env,
                                     self.config.layer_dir or path.parent,
                                     self._extension_sink(path.name), self._on_exit,
                                     cgroup=self._cgroup)
            try:
                process.start()
            except OSError as exc:
                return "failure", {"errorType": "Extension.LaunchError",
                                   "errorMessage": f"Extension {path.name} could not be "
                                                   f"started: {exc}"}
            self._extensions[path.name] = process
            with self._cond:
                self._extensions_api.attach(path.name, process)
        return None

    def _init_succeeded(self, phase: str, t0: float, end: float,
                        timings: dict[str, float]) -> InitResult:
        cfg = self.config
        duration_ms = ms_between(t0, end)
        with self._cond:
            self._extensions_api.close_registration()
            self._runtime_api.in_init = False
            states = self._extensions_api.states
        freeze = cfg.freeze or cfg.snapstart  # the snapshot holds the environment stopped
        if freeze:
            # Every extension already called /event/next: nothing reaches a listener from now
            # on until the next thaw, as in Lambda.
            self.hub.pause()
        for state in states:
            self.hub.emit("platform.extension", platform_events.extension(
                name=state.name, state="Ready", events=list(state.events)))
        self.hub.emit("platform.initReport", platform_events.init_report(
            initialization_type=cfg.initialization_type, phase=phase, status="success",
            duration_ms=duration_ms), wall_from_monotonic(end))
        self.hub.end_init()
        self._pending_init_ms = duration_ms
        self._state = "ready"
        if freeze:
            self._freeze()
        self._snapshot_taken = cfg.snapstart
        return InitResult(True, duration_ms, timings["registered"], timings["ready"], None,
                          phase, timings["runtime_ready"])

    def _init_failed(self, phase: str, t0: float, failure: tuple[str, dict[str, Any]],
                     timings: dict[str, float]) -> InitResult:
        status, error = failure
        duration_ms = ms_between(t0, time.monotonic())
        init_type = self.config.initialization_type
        if "runtime_ready" not in timings:
            if self._runtime is not None:
                self._runtime.drain(0.5)
            self.hub.emit("platform.initRuntimeDone", platform_events.init_runtime_done(
                initialization_type=init_type, phase=phase, status=status,
                error_type=error["errorType"]))
        self.hub.emit("platform.initReport", platform_events.init_report(
            initialization_type=init_type, phase=phase, status=status, duration_ms=duration_ms,
            error_type=error["errorType"]))
        self.errors.append(ErrorRecord("sandbox", "init", "init", error["errorType"], error,
                                       time.time()))
        log.warning("init failed: %s", error)
        self.resets.append(self._teardown("failure"))
        self._state = "needs-init"
        return InitResult(False, duration_ms, timings.get("registered"), timings.get("ready"),
                          error, phase, timings.get("runtime_ready"))

    def _start_runtime(self) -> tuple[str, dict[str, Any]] | None:
        cfg = self.config
        env = cfg.function_environment(self.runtime_api, self._log_stream)
        process = ManagedProcess(RUNTIME_NAME, cfg.function.argv(), env,
                                 cfg.function.resolved_code_dir(), self._function_sink,
                                 self._on_exit, telemetry_fd=cfg.function.uses_telemetry_fd()
                                 and not cfg.managed_instances, cgroup=self._cgroup)
        try:
            process.start()
        except OSError as exc:
            return "failure", {"errorType": "Runtime.InvalidEntrypoint",
                               "errorMessage": f"Error: fork/exec {cfg.function.argv()[0]}: {exc}"}
        self._runtime = process
        return None

    def _wait_init(self, done: Callable[[], bool],
                   deadline: float) -> tuple[str, dict[str, Any]] | None:
        """Wait (on the shared condition) until ``done()`` or an init failure; returns
        ``(status, error)`` for a failure (status as ``platform.initReport`` reports it)."""
        with self._cond:
            while True:
                if done():
                    return None
                failure = self._init_failure()
                if failure is not None:
                    return failure
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout", {"errorType": "Sandbox.Timedout",
                                       "errorMessage": f"Init timed out after "
                                                       f"{self.config.init_timeout_s:.2f} seconds"}
                self._cond.wait(min(remaining, 0.5))

    def _init_failure(self) -> tuple[str, dict[str, Any]] | None:
        """What broke init, if anything (caller holds the condition). An error a process
        reported wins over its exit, which usually follows it."""
        state = self._extensions_api.first_init_error()
        if state is not None:
            return "failure", {"errorType": "Extension.InitError",
                               "errorMessage": f"Extension {state.name} reported an init "
                                               f"error: {state.init_error}",
                               "extension": state.name, "extensionErrorType": state.init_error}
        crashed = self._extensions_api.exited_extension()
        if crashed is not None:
            assert crashed.process is not None
            return "failure", {"errorType": "Extension.Crash",
                               "errorMessage": f"Extension {crashed.name} exited during init: "
                                               f"{describe_exit(crashed.process.returncode)}",
                               "extension": crashed.name}
        init_error = self._runtime_api.init_error
        if init_error is not None:
            body = init_error["body"]
            message = body.get("errorMessage", "") if isinstance(body, dict) else str(body)
            return "error", {"errorType": init_error["errorType"], "errorMessage": message,
                             "body": body}
        if self._runtime is not None and self._runtime.exited.is_set():
            return "failure", {"errorType": "Runtime.ExitError",
                               "errorMessage": "Error: Runtime exited with error: "
                                               f"{describe_exit(self._runtime.returncode)}"}
        return None

    # ------------------------------------------------------------------ invoke

    @staticmethod
    def _payload(event: Any) -> bytes:
        if event is None:
            return b"{}"
        if isinstance(event, bytes):
            return event
        if isinstance(event, str):
            return event.encode()
        return json.dumps(event).encode()

    def _invoke(self, event: Any, client_context: Mapping[str, Any] | None,
                cognito_identity: Mapping[str, Any] | None) -> InvokeResult:
        init_result: InitResult | None = None
        with self._lifecycle_lock:
            if self._state == "closed":
                raise RuntimeError("sandbox is shut down")
            if self._state in ("new", "needs-init"):
                init_result = self._init("init" if self._state == "new" else "invoke")
                if not init_result.ok:
                    result = InvokeResult(str(uuid.uuid4()), "failure", None, init_result.error,
                                          0.0, None, None, init_result)
                    self.invocations.append(result)
                    return result
            if self._snapshot_taken:
                self._restore()
            self._thaw()
            runtime = self._runtime
            assert runtime is not None

        invocation = self._new_invocation(event, client_context, cognito_identity)
        queued = self._dispatch(invocation)
        deadline = invocation.created_at + self.config.timeout_s
        outcome, runtime_done = self._await_invocation(invocation, queued, runtime, deadline)
        with self._cond:
            self._runtime_api.forget(invocation)
        measured = self._measure(invocation, queued, outcome, runtime, deadline)
        if outcome != "done" and not runtime_done:
            runtime.drain(0.5)
            self._emit_runtime_done(invocation, measured.status, measured.error_type,
                                    invocation.created_at, measured.duration_ms)
        report = self._report(invocation, queued, outcome, measured)
        if outcome != "done":
            with self._lifecycle_lock:
                if self._state != "closed":  # shutdown() may have ended it meanwhile
                    reason = "timeout" if outcome == "timeout" else "failure"
                    self.resets.append(self._teardown(reason))
                    self._state = "needs-init"

        response: Any = None
        if invocation.response is not None and invocation.error is None:
            try:
                response = json.loads(invocation.response)
            except ValueError:
                response = invocation.response.decode("utf-8", "replace")
        result = InvokeResult(invocation.request_id, measured.status, response, measured.error,
                              measured.duration_ms, measured.post_runtime_extensions_ms,
                              measured.response_ms, init_result, report, invocation.response)
        self.invocations.append(result)
        return result

    def _new_invocation(self, event: Any, client_context: Mapping[str, Any] | None,
                        cognito_identity: Mapping[str, Any] | None) -> Invocation:
        cfg = self.config
        return Invocation(
            request_id=str(uuid.uuid4()),
            payload=self._payload(event),
            deadline_ms=epoch_ms() + int(cfg.timeout_s * 1000),
            tracing=platform_events.Tracing.new(),
            function_arn=cfg.function_arn,
            client_context=json.dumps(client_context) if client_context is not None else None,
            cognito_identity=(json.dumps(cognito_identity)
                              if cognito_identity is not None else None),
            created_at=time.monotonic(),
            tenant_id=cfg.tenant_id,
        )

    def _dispatch(self, invocation: Invocation) -> dict[str, int]:
        """Emit ``platform.start``, hand the event to the runtime and INVOKE to the extensions;
        returns what each extension must complete (see ``ExtensionsAPI.queue_event``)."""
        cfg = self.config
        self.hub.emit("platform.start", platform_events.start(
            request_id=invocation.request_id, version=cfg.function_version,
            tracing=invocation.tracing, tenant_id=invocation.tenant_id))
        invoke_event = {
            "eventType": EVENT_INVOKE,
            "deadlineMs": invocation.deadline_ms,
            "requestId": invocation.request_id,
            "invokedFunctionArn": cfg.function_arn,
            "tracing": invocation.tracing.for_extension(),
        }
        with self._cond:
            # Managed Instances extensions cannot register for INVOKE.
            queued = ({} if cfg.managed_instances
                      else self._extensions_api.queue_event(invoke_event, EVENT_INVOKE))
            self._runtime_api.submit(invocation)
        return queued

    def _measure(self, invocation: Invocation, queued: dict[str, int], outcome: str,
                 runtime: ManagedProcess, deadline: float) -> _Measured:
        """Status, error and the billed/observed durations of a finished invocation."""
        t0 = invocation.created_at
        finished_at = invocation.finished_at
        with self._cond:
            states = {s.name: s for s in self._extensions_api.states}
        last_next = max((states[n].last_next_at or 0.0 for n in queued if n in states),
                        default=None)
        response_ms = ms_between(t0, finished_at) if finished_at is not None else None
        post_ms: float | None = None
        if finished_at is not None:
            post_ms = (ms_between(finished_at, last_next)
                       if last_next is not None and last_next > finished_at else 0.0)
        if outcome == "done":
            error = None
            if invocation.error is not None:
                error = (invocation.error if isinstance(invocation.error, dict)
                         else {"errorMessage": str(invocation.error)})
            return _Measured("success" if error is None else "error", error,
                             invocation.error_type,
                             ms_between(t0, max(finished_at or t0, last_next or t0)),
                             post_ms, response_ms)
        status, error = self._invoke_failure(outcome, invocation, runtime)
        if outcome == "timeout" and finished_at is not None:
            # The runtime answered; an extension ran the invocation into its timeout.
            post_ms = ms_between(finished_at, deadline)
        return _Measured(status, error, error["errorType"],
                         ms_between(t0, min(time.monotonic(), deadline)), post_ms, response_ms)

    def _report(self, invocation: Invocation, queued: dict[str, int], outcome: str,
                measured: _Measured) -> dict[str, Any]:
        """Emit ``platform.report`` (after the extensions' last output) and, after a normal
        end, freeze: the report is only pushed once the environment runs again."""
        cfg = self.config
        if outcome == "done":
            for name in queued:
                process = self._extensions.get(name)
                if process is not None:
                    process.drain(0.2)
        report = platform_events.report(
            request_id=invocation.request_id, status=measured.status,
            error_type=measured.error_type, duration_ms=measured.duration_ms,
            memory_size_mb=cfg.memory_mb,
            max_memory_used_mb=sum(p.peak_rss_mb() for p in self._processes()),
            init_duration_ms=self._pending_init_ms,
            restore_duration_ms=self._pending_restore_ms,
            tenant_id=invocation.tenant_id)
        self._pending_init_ms = None
        self._pending_restore_ms = None
        if cfg.managed_instances:
            # Managed Instances report the duration only (and there is no freeze to follow).
            report["metrics"] = {"durationMs": report["metrics"]["durationMs"]}
        freeze_now = outcome == "done" and cfg.freeze
        if freeze_now:
            self.hub.pause()
        self.hub.emit("platform.report", report)
        if freeze_now:
            self._freeze()
        return report

    def _await_invocation(self, invocation: Invocation, queued: dict[str, int],
                          runtime: ManagedProcess, deadline: float) -> tuple[str, bool]:
        """Wait for the end of an invocation; returns (outcome, runtimeDone emitted).

        Outcomes: ``done``, ``timeout``, ``runtime-exit``, ``extension-exit``. Emits
        ``platform.runtimeDone`` as soon as the runtime answered (after its output)."""
        managed = self.config.managed_instances
        runtime_done = False

        def progressed() -> bool:
            if invocation.finished and not runtime_done:
                return True
            if runtime.exited.is_set() or self._extensions_api.exited_extension() is not None:
                return True
            return (invocation.finished and self._extensions_api.finished(queued)
                    and (managed or self._runtime_api.waiting > 0))

        while True:
            with self._cond:
                self._cond.wait_for(progressed, max(0.0, deadline - time.monotonic()))
                finished = invocation.finished
                extensions_done = self._extensions_api.finished(queued)
                runtime_back = managed or self._runtime_api.waiting > 0
                crashed = self._extensions_api.exited_extension()
            if finished and not runtime_done:
                runtime.drain(1.0)
                status = "success" if invocation.error is None else "error"
                assert invocation.finished_at is not None
                self._emit_runtime_done(invocation, status, invocation.error_type,
                                        invocation.created_at,
                                        ms_between(invocation.created_at, invocation.finished_at))
                runtime_done = True
                continue
            if runtime.exited.is_set():
                return "runtime-exit", runtime_done
            if crashed is not None:
                return "extension-exit", runtime_done
            if finished and extensions_done and runtime_back:
                return "done", runtime_done
            if time.monotonic() >= deadline:
                return "timeout", runtime_done

    def _invoke_failure(self, outcome: str, invocation: Invocation,
                        runtime: ManagedProcess) -> tuple[str, dict[str, Any]]:
        rid = invocation.request_id
        if outcome == "timeout":
            return "timeout", {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {rid} Error: Task timed out after "
                                f"{self.config.timeout_s:.2f} seconds"}
        if outcome == "runtime-exit":
            return "failure", {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: "
                                f"{describe_exit(runtime.returncode)}"}
        with self._cond:
            crashed = self._extensions_api.exited_extension()
        name = crashed.name if crashed is not None else "?"
        code = crashed.process.returncode if crashed is not None and crashed.process else None
        return "failure", {
            "errorType": "Extension.Crash",
            "errorMessage": f"RequestId: {rid} Error: Extension {name} exited: "
                            f"{describe_exit(code)}"}

    def _emit_runtime_done(self, invocation: Invocation, status: str, error_type: str | None,
                           t0: float, duration_ms: float) -> None:
        if self.config.managed_instances:
            return  # Lambda Managed Instances send no platform.runtimeDone
        finished_at = invocation.finished_at
        produced = len(invocation.response) if invocation.response is not None else None
        self.hub.emit("platform.runtimeDone", platform_events.runtime_done(
            request_id=invocation.request_id, status=status, error_type=error_type,
            tracing=invocation.tracing, duration_ms=duration_ms, produced_bytes=produced,
            response_start=wall_from_monotonic(finished_at) if finished_at else None,
            response_latency_ms=ms_between(t0, finished_at) if finished_at else None,
            response_duration_ms=0.0))

    # ------------------------------------------------------------------ restore

    def _restore(self) -> None:
        """Resume the snapshot taken after init: a long freeze, dead connections, the restore
        events; the first report then bills the restore instead of the init."""
        cfg = self.config
        self._snapshot_taken = False
        # The snapshot sits in storage: the processes stay stopped meanwhile (time passing, not
        # a wait for anything).
        time.sleep(cfg.snapshot_freeze_s)
        outside = self._connections_to_the_outside()
        broken = sum(1 for connection in outside if snapstart.destroy(connection))
        if broken < len(outside):
            log.warning("restore: %d of %d connections could not be destroyed (%s)",
                        len(outside) - broken, len(outside),
                        snapstart.can_break_connections() or "ss -K failed")
        t0 = time.monotonic()
        self._thaw()
        self.hub.emit("platform.restoreStart", platform_events.restore_start(
            runtime_version=platform_events.runtime_version(cfg.function.python),
            runtime_version_arn=f"arn:aws:lambda:{cfg.region}::runtime:sandbox",
            function_name=cfg.function_name, function_version=cfg.function_version))
        status, error_type = self._await_restored(t0 + cfg.init_timeout_s)
        self.hub.emit("platform.restoreRuntimeDone",
                      platform_events.restore_runtime_done(status=status, error_type=error_type))
        duration_ms = ms_between(t0, time.monotonic())
        self.hub.emit("platform.restoreReport", platform_events.restore_report(
            status=status, duration_ms=duration_ms, error_type=error_type))
        if status != "success":
            log.warning("restore failed: %s (%s)", status, error_type)
        self._pending_init_ms = None  # init ran before the snapshot: not billed here
        self._pending_restore_ms = duration_ms
        self.restores.append(RestoreResult(cfg.snapshot_freeze_s, len(outside), broken,
                                           duration_ms, time.time()))
        log.debug("restored after %.1f s: %d of %d connections destroyed",
                  cfg.snapshot_freeze_s, broken, len(outside))

    def _await_restored(self, deadline: float) -> tuple[str, str | None]:
        """Answer the runtime's ``/restore/next`` and wait until it is back at
        ``/invocation/next`` (after its after-restore hooks); ``(status, errorType)``."""
        runtime = self._runtime
        with self._cond:
            self._runtime_api.release_restore()
            while True:
                if self._runtime_api.restore_error is not None:
                    return "error", self._runtime_api.restore_error["errorType"]
                if self._runtime_api.waiting > 0:
                    return "success", None
                if runtime is None or runtime.exited.is_set():
                    return "failure", "Runtime.ExitError"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout", "Sandbox.Timedout"
                self._cond.wait(min(remaining, 0.5))

    def _connections_to_the_outside(self) -> list[snapstart.Connection]:
        """The environment's TCP connections to anything but itself and Lambda: the sandbox's
        API server and its telemetry pushes (Lambda's own, inside the environment) survive a
        restore. A server the sandbox's process happens to run too (a test's) is outside."""
        pids = list(self.pids().values())
        own = os.getpid()
        servers = snapstart.listening_ports([own]) - {self._server_port()}
        inside = {c.local for c in snapstart.established(pids)}
        inside.update(c.local for c in snapstart.established([own])
                      if c.local[1] not in servers)
        return [c for c in snapstart.established(pids) if c.remote not in inside]

    def _server_port(self) -> int:
        return int(self.runtime_api.rsplit(":", 1)[1])

    # ------------------------------------------------------------------ freeze

    def _freeze(self) -> None:
        for process in self._processes():
            process.freeze()
        self._frozen = True

    def _thaw(self) -> None:
        if self._frozen:
            for process in self._processes():
                process.thaw()
            self._frozen = False
        self.hub.resume()

    # ------------------------------------------------------------------ shutdown / reset

    def _teardown(self, reason: str) -> ShutdownResult:
        """Stop this environment: runtime first, then SHUTDOWN to extensions, SIGKILL at the
        deadline. Used for spindown and for the reset after a timeout or crash."""
        cfg = self.config
        t0 = time.monotonic()
        deadline = t0 + cfg.shutdown_timeout_s
        deadline_ms = epoch_ms() + int(cfg.shutdown_timeout_s * 1000)
        killed: list[str] = []
        self._thaw()
        self.hub.flush_immediately()

        runtime = self._runtime
        if runtime is not None and not runtime.exited.is_set():
            if reason == "spindown":
                runtime.terminate()
                if not runtime.wait(min(cfg.runtime_shutdown_s, cfg.shutdown_timeout_s)):
                    runtime.kill()
            else:
                # A reset: the runtime is stuck or broken; Lambda stops it first, hard.
                runtime.kill()
            runtime.wait(0.5)
            if runtime.killed:
                killed.append(RUNTIME_NAME)

        with self._cond:
            self._extensions_api.queue_event(
                {"eventType": EVENT_SHUTDOWN, "shutdownReason": reason,
                 "deadlineMs": deadline_ms}, EVENT_SHUTDOWN)
            while True:
                pending = [s for s in self._extensions_api.states
                           if s.subscribed(EVENT_SHUTDOWN) and s.process is not None
                           and not s.process.exited.is_set()]
                remaining = deadline - time.monotonic()
                if not pending or remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))

        for name, process in self._extensions.items():
            if not process.exited.is_set():
                process.kill()
                killed.append(name)
        exit_codes: dict[str, int | None] = {}
        for name, process in self._extensions.items():
            process.wait(0.5)
            exit_codes[name] = process.returncode
        if runtime is not None:
            exit_codes[RUNTIME_NAME] = runtime.returncode
        duration_ms = ms_between(t0, time.monotonic())

        self.hub.drop_subscribers(0.5)
        for process in self._processes():
            process.close(0.5)
        with self._cond:
            self._extensions_api.reset([])
            self._extensions_api.close_registration()
            self._runtime_api.reset()
        self._extensions = {}
        self._runtime = None
        self._frozen = False
        result = ShutdownResult(exit_codes, killed, duration_ms, reason, deadline_ms)
        log.debug("environment shut down (%s): %s", reason, result)
        return result
