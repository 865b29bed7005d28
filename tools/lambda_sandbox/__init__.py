"""A local Lambda sandbox: runs extensions and a function as real processes, the way Lambda does.

The sandbox is a stand-in for the Lambda service on ``127.0.0.1`` (an ephemeral port, so tests
can run several at once). One HTTP server serves the Extensions API, the Telemetry API and the
Runtime API at ``AWS_LAMBDA_RUNTIME_API``. It starts every executable of an unpacked layer's
``extensions/`` directory and the function's runtime (AWS's ``awslambdaric`` by default, or any
``bootstrap``-style command), walks them through init, invokes, freezes and shutdown, pushes
telemetry to subscribers, and records everything for tests to assert on.

Usage::

    from tools.lambda_sandbox import Sandbox, FunctionSpec

    sb = Sandbox(layer_dir=Path("build/layer"),
                 function=FunctionSpec(handler="app.handler", code_dir=Path("fn"),
                                       python=sys.executable),
                 env={"MY_SETTING": "1"},
                 timeout_s=3.0, memory_mb=128, log_format="Text", function_name="demo",
                 telemetry="full", freeze=True, managed_instances=False)
    init = sb.start()          # InitResult(ok, duration_ms, extensions_registered_ms,
                               #            extensions_ready_ms, error, phase, runtime_ready_ms)
    r = sb.invoke({"k": 1})    # InvokeResult(request_id, status, response, error, duration_ms,
                               #              post_runtime_extensions_ms, response_ms,
                               #              init, report, raw_response)
    sb.shutdown(reason="spindown")  # ShutdownResult(exit_codes, killed, duration_ms,
                                    #                reason, deadline_ms)

    with Sandbox(...) as sb:   # always shuts down and kills everything (bounded time)
        ...

``Sandbox(layer_dir=None, function=None, env=None, *, timeout_s=3.0, memory_mb=128,
limit_cpu=False, log_format="Text", log_level=None, function_name="demo",
function_version="$LATEST", region="us-east-1", account_id="123456789012", telemetry="full",
freeze=True, managed_instances=False, max_concurrency=2, init_timeout_s=10.0,
shutdown_timeout_s=2.0, runtime_shutdown_s=0.3, delivery=None, inherit_env=False,
snapstart=False, snapshot_freeze_s=1.0, tenant_id=None)``

* ``layer_dir``: an unpacked layer; every executable in ``<layer_dir>/extensions/`` is started
  (sorted by name) with the layer laid at that directory (no ``/opt`` needed) and its
  ``python/`` directory on the function's ``PYTHONPATH``. ``None``: no extensions.
* ``function``: :class:`FunctionSpec` ``(handler="app.handler", code_dir=None, python=
  sys.executable, command=None, telemetry_log_fd=None)``; ``code_dir=None`` is the bundled
  sample function; ``command=[...]`` runs a custom runtime instead of awslambdaric.
* ``env``: the user's variables, given to the runtime and the extensions. Lambda's reserved
  names are refused (use the matching argument); the fake AWS credentials may be overridden.
* ``memory_mb``: ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` and the reports' ``memorySizeMB``.
  ``limit_cpu=True`` also gives every process Lambda's CPU share for it (1 vCPU per 1,769 MB:
  a cgroup with a CFS quota of 7,236 µs per 100 ms at 128 MB, see ``cpu_share``), created by
  the constructor (``CpuShareUnavailable`` where no cgroup can be; it needs root) and removed
  at shutdown. ``sb.cpu_limit`` describes it, ``sb.cpu_stat()`` reads its throttling counters.
  The cold start as a caller feels it is ``init.duration_ms`` plus the first invocation's
  ``response_ms``.
* ``telemetry``: ``"full"`` (Lambda's Telemetry API) or ``"not-supported"`` (like the plain
  Runtime Interface Emulator: 202 ``Telemetry.NotSupported``, nothing delivered).
* ``freeze``: SIGSTOP every process between invocations (ignored with managed instances).
* ``managed_instances``: Lambda Managed Instances rules (``AWS_LAMBDA_INITIALIZATION_TYPE=
  lambda-managed-instances``, ``AWS_LAMBDA_MAX_CONCURRENCY=max_concurrency``, SHUTDOWN-only
  extensions, Telemetry schema ``2025-01-29`` only, no freeze, concurrent ``invoke`` calls, no
  ``platform.runtimeDone``, a ``platform.report`` with ``durationMs`` only).
* ``snapstart``: SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): init, then the
  snapshot — every process stays frozen — and at the next invoke a restore after
  ``snapshot_freeze_s``: the TCP connections the processes had open to the outside world are
  destroyed (a real restore leaves them dead; see ``snapstart``), then ``platform.restoreStart``,
  ``platform.restoreRuntimeDone`` and ``platform.restoreReport``, and the first ``platform.report``
  carries ``restoreDurationMs``. The role's credentials come from a local endpoint
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``) instead of
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``. ``sb.restores`` lists
  :class:`RestoreResult` records.
* ``tenant_id``: tenant isolation — the one tenant this environment serves: the runtime gets
  ``Lambda-Runtime-Aws-Tenant-Id`` with every invocation (awslambdaric's JSON logs then carry
  ``tenantId``), and ``platform.start`` and ``platform.report`` carry ``tenantId``.
* ``delivery``: :class:`DeliveryPolicy` for telemetry pushes (tries, per-try timeout, backoff).
* ``inherit_env``: start processes from this process's environment instead of a minimal one.

What a test can inspect:

* ``sb.runtime_api`` — ``"127.0.0.1:PORT"``.
* ``sb.function_output`` / ``sb.extension_output`` — every line (telemetry-fd frame) the
  runtime / the extensions wrote, without the trailing newline; ``sb.output`` — the same as
  :class:`OutputLine` (time, source, stream, text) records.
* ``sb.telemetry_events`` — every telemetry event emitted (``{"time","type","record"}``), in
  order; ``sb.delivery_stats()`` — per subscriber: batches, sizes, failed tries, drops.
* ``sb.registrations``, ``sb.telemetry_subscriptions``, ``sb.errors`` (init/exit/invocation
  errors reported or detected), ``sb.api_calls``, ``sb.init_results``, ``sb.invocations``,
  ``sb.resets`` (teardowns after a timeout/crash/failed init), ``sb.restores``,
  ``sb.shutdown_result``,
  ``sb.pids()``, ``sb.frozen``.

Command line: ``python -m tools.lambda_sandbox --layer DIR --handler app.handler --code DIR
--invocations N [--memory MB]`` (see ``--help``; ``--memory`` limits the CPU as above).
"""

from __future__ import annotations

import logging

from .config import DeliveryPolicy, FunctionSpec
from .lifecycle import Sandbox
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

# A library does not print: the CLI (or the application) configures logging.
logging.getLogger("lambda_sandbox").addHandler(logging.NullHandler())

__all__ = [
    "ApiCall",
    "DeliveryPolicy",
    "DeliveryStats",
    "ErrorRecord",
    "FunctionSpec",
    "InitResult",
    "InvokeResult",
    "OutputLine",
    "Registration",
    "RestoreResult",
    "Sandbox",
    "ShutdownResult",
    "SubscriptionRecord",
]
