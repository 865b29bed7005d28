"""The extension's lifecycle, on the main thread.

1. Read the configuration; register (INVOKE and SHUTDOWN; SHUTDOWN only on Lambda Managed
   Instances, or when the configuration is unusable and we run as a no-op).
2. Bind the listener, subscribe to the Telemetry API, start the listener and worker threads.
3. Loop on ``/event/next``. After each INVOKE, wait until that request's logs are delivered (or a
   bound is reached) *before* asking for the next event, because asking is what lets Lambda
   freeze the environment.
4. On SHUTDOWN, deliver what is left before the deadline, stop and join the threads, print one
   summary line and exit 0.

A configuration error never breaks the function: we log one clear line and stay registered as a
no-op (or, with ``HTTP_STRICT_CONFIG=true``, report an init error so the deployment fails loudly).
"""

from __future__ import annotations

import os
import sys
import time

from . import log
from .lambda_api.client import LocalHttpError
from .lambda_api.extensions import (
    INVOKE,
    SHUTDOWN,
    ExtensionsApiError,
    ExtensionsClient,
    Registration,
)
from .settings import load as config_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from .delivery.worker import DeliveryWorker
    from .invocations import InvocationProgress
    from .listener.server import TelemetryListener
    from .settings.load import Config
    from .stats import Stats

DEFAULT_NAME = "lambda-logs-http"
# Time kept back at shutdown for stopping threads and printing the summary.
SHUTDOWN_RESERVE_SECONDS = 0.1
# Time kept back at shutdown for writing what could not be delivered to the spill directory.
SPILL_RESERVE_SECONDS = 0.25
# How long to wait at shutdown for the last invocation's platform.report to be pushed.
REPORT_GRACE_SECONDS = 0.3


def run(environ: Mapping[str, str] | None = None, name: str | None = None) -> int:
    """Run the extension until SHUTDOWN; return the process exit code."""
    env = os.environ if environ is None else environ
    extension_name = name or os.path.basename(sys.argv[0] or "") or DEFAULT_NAME
    if extension_name in ("-c", "__main__.py", ""):
        extension_name = DEFAULT_NAME
    runtime_api = env.get(config_module.AWS_LAMBDA_RUNTIME_API, "")
    if not runtime_api:
        log.error(
            "AWS_LAMBDA_RUNTIME_API is not set: this program runs inside AWS Lambda "
            "(or a Lambda emulator) as an extension"
        )
        return 1

    try:
        config: Config | None = config_module.load(env)
        config_error = None
    except config_module.ConfigError as exc:
        config, config_error = None, exc

    managed = config_module.is_managed_instances(env)
    events = (SHUTDOWN,) if managed or config is None else (INVOKE, SHUTDOWN)
    client = ExtensionsClient(runtime_api, extension_name)
    try:
        registration = client.register(events)
    except (ExtensionsApiError, LocalHttpError) as exc:
        log.error(f"could not register with the Extensions API: {exc}")
        return 1

    if config is None:
        assert config_error is not None
        return _run_unconfigured(client, config_error, strict=config_module.strict_requested(env))
    log.set_level(log.LEVELS[config.log_level])
    return Extension(config, client, registration).run()


def _run_unconfigured(
    client: ExtensionsClient, error: config_module.ConfigError, *, strict: bool
) -> int:
    log.error(f"configuration error: {error}")
    if strict:
        client.init_error("Extension.ConfigInvalid", str(error))
        return 1
    log.error("logs will NOT be forwarded; the function keeps running normally")
    while True:
        try:
            event = client.next_event()
        except (ExtensionsApiError, LocalHttpError) as exc:
            log.error(f"event/next failed: {exc}")
            return 1
        if event.get("eventType") == SHUTDOWN:
            return 0


class Extension:
    """A registered, configured extension: owns the listener and worker threads."""

    def __init__(
        self, config: Config, client: ExtensionsClient, registration: Registration
    ) -> None:
        from .invocations import InvocationProgress
        from .stats import Stats

        self.config = config
        self.client = client
        self.registration = registration
        self.stats: Stats = Stats()
        self.progress: InvocationProgress = InvocationProgress()
        self.listener: TelemetryListener | None = None
        self.worker: DeliveryWorker | None = None
        self.gate: threading.Event | None = None  # opened when the threads may do heavy imports
        self.telemetry_active = False
        self.last_request_id = ""
        self._released_early = 0  # invocations in a row released before their logs were sent
        # The "end" strategy holds each invocation until its logs are delivered; "periodic"
        # releases it at once and lets the worker send in the background.
        self.hold_invocations = config.flush_strategy == "end"

    def run(self) -> int:
        for warning in self.config.warnings:
            log.warning(warning)
        try:
            self._start()
        except Exception as exc:  # never a traceback into the function's logs
            log.error(f"could not start: {type(exc).__name__}: {exc}; logs will NOT be forwarded")
            self._stop_threads(time.monotonic() + 1.0)
            return self._idle_until_shutdown()
        try:
            return self._event_loop()
        finally:
            self._stop_threads(time.monotonic() + 1.0)

    def _start(self) -> None:
        """Bind, start the threads (gated), subscribe: the work between register and the first
        ``/event/next``, kept to modules that import in microseconds (see ``open_gate``)."""
        import threading

        from .delivery.worker import DeliveryWorker
        from .lambda_api import telemetry
        from .listener.server import TelemetryListener

        config = self.config
        self.gate = threading.Event()
        self.worker = DeliveryWorker(
            config, self._transformer_factory, self._transport_factory, self.progress, self.stats
        )
        worker = self.worker
        self.listener = TelemetryListener(
            config.listener_port,
            lambda events: worker.submit(events, wake=False),
            self.progress,
            self.stats,
            wake_sink=worker.wake,
        )
        self.listener.bind()
        schema = (
            telemetry.MANAGED_INSTANCES_SCHEMA_VERSION
            if config.managed_instances
            else telemetry.SCHEMA_VERSION
        )
        body = telemetry.subscription_body(
            types=config.telemetry_types,
            max_items=config.telemetry_max_items,
            max_bytes=config.telemetry_max_bytes,
            timeout_ms=config.telemetry_timeout_ms,
            port=config.listener_port,
            schema_version=schema,
        )
        # Subscribe only once the listener serves: the subscription makes Lambda start pushing,
        # and a push must be answered at once. AWS's emulator keeps one push in flight, drops
        # what comes meanwhile, and (managed-instances mode, ~1 run in 6) stalled the first
        # invoke for 29 s behind a push our listener was not yet ready to answer. So whatever
        # the listener needs before serving is on the cold-start path: it imports only
        # ``select`` (see push_server). The worker stays gated (see open_gate).
        self.listener.start()
        self.worker.start(self.gate)
        self.listener.wait_serving(1.0)
        subscription = telemetry.subscribe(self.client.runtime_api, self.client.extension_id, body)
        if subscription.state == telemetry.SUBSCRIBED:
            self.telemetry_active = True
            log.debug(
                f"subscribed to the Telemetry API on {self.listener.host}:{config.listener_port}"
            )
        elif subscription.state == telemetry.NOT_SUPPORTED:
            log.warning(
                "this Lambda environment does not support the Telemetry API (a local emulator?): "
                f"no logs can be captured; invocations are not delayed ({subscription.detail})"
            )
        else:
            log.error(
                f"Telemetry API subscription failed ({subscription.detail}); "
                "no logs will be captured"
            )

    def open_gate(self) -> None:
        """Let the worker do its heavier imports (``json``, ``re``, ``socket``, ``ssl`` for
        https...). Called right before the first ``/event/next``: Lambda counts everything
        until then as the extension's init, and starts the function's runtime only after every
        extension registered, so this work then overlaps the runtime's own init instead."""
        if self.gate is not None:
            self.gate.set()

    def _transformer_factory(self) -> object:
        from .records.transform import EntryContext, Transformer, architecture

        config = self.config
        function_name = config.function_name or self.registration.function_name
        context = EntryContext(
            function_name,
            config.function_version,
            config.function_memory_size,
            config.aws_region,
            architecture(),
        )
        return Transformer(context, attribute_requests=not config.managed_instances)

    def _transport_factory(self) -> object:
        from .http import auth
        from .http.transport import HttpTransport, TestModeTransport, redact_url

        mode = "TEST MODE, nothing is sent" if self.config.test_mode else "forwarding"
        log.info(f"ready: {mode} to {redact_url(self.config.endpoint)}")
        strategy = auth.from_config(self.config)
        if self.config.test_mode:
            return TestModeTransport(self.config.endpoint, strategy)
        if not self.config.tls_verify and self.config.endpoint.startswith("https:"):
            log.warning("HTTP_TLS_VERIFY=false: the receiver's certificate is NOT checked")
        return HttpTransport(
            self.config.endpoint,
            strategy,
            tls_verify=self.config.tls_verify,
            ca_bundle=self.config.ca_bundle,
        )

    def _event_loop(self) -> int:
        margin = self.config.deadline_margin_ms / 1000.0
        budget = self.config.flush_budget_ms / 1000.0
        self.open_gate()
        while True:
            try:
                event = self.client.next_event()
            except (ExtensionsApiError, LocalHttpError) as exc:
                log.error(f"event/next failed: {exc}; delivering what is left and exiting")
                self._shutdown(time.monotonic() + 1.0, "")
                return 1
            event_type = event.get("eventType")
            deadline = _monotonic_deadline(event.get("deadlineMs"), margin)
            if event_type == INVOKE:
                request_id = str(event.get("requestId") or "")
                if self.telemetry_active and request_id and self.hold_invocations:
                    self._wait_for_delivery(request_id, deadline, budget)
                self.last_request_id = request_id
            elif event_type == SHUTDOWN:
                log.debug(f"shutdown ({event.get('shutdownReason', '')})")
                self._shutdown(deadline, self.last_request_id)
                return 0
            else:
                log.warning(f"ignored an unknown event type {event_type!r}")

    def _wait_for_delivery(self, request_id: str, deadline: float, budget: float) -> None:
        # Imported here, not at the top: progress needs threading, which must not load before
        # the register call (cold start).
        from .invocations import DEADLINE, DELIVERED

        started = time.monotonic()
        outcome = self.progress.wait(request_id, deadline, budget)
        held_ms = (time.monotonic() - started) * 1000
        if outcome == DELIVERED:
            if self._released_early:
                log.info(
                    f"invocations are delivered in time again ({self._released_early} "
                    "were released early)"
                )
                self._released_early = 0
            if log.enabled(log.DEBUG):
                log.debug(f"invocation {request_id} delivered; held {held_ms:.1f} ms")
            return
        pending = self.worker.pending_records() if self.worker else 0
        if outcome == DEADLINE:
            message = (
                f"invocation {request_id} reached its deadline: released it without "
                f"waiting for its logs; {pending} records stay queued for the next "
                "invocation or shutdown"
            )
        else:
            message = (
                f"released invocation {request_id} after the {budget * 1000:.0f} ms flush "
                f"budget (receiver slow or down?); {pending} undelivered records stay "
                "queued"
            )
        # One warning per streak: a receiver that is down would otherwise add a line to every
        # invocation's logs.
        log.emit(log.DEBUG if self._released_early else log.WARNING, message)
        self._released_early += 1

    def _shutdown(self, deadline: float, last_request_id: str) -> None:
        """Deliver everything still held before ``deadline``, then stop the threads.

        What cannot be delivered in time goes to the spill directory (a reset keeps /tmp), so
        the end of the window is kept free for that: a send still in flight then is aborted.
        """
        keep_deadline = deadline - SHUTDOWN_RESERVE_SECONDS
        send_deadline = keep_deadline - SPILL_RESERVE_SECONDS
        if self.telemetry_active and last_request_id:
            # The last invocation's platform.report is pushed only after we called /event/next.
            grace = min(time.monotonic() + REPORT_GRACE_SECONDS, send_deadline)
            self.progress.wait_report(last_request_id, grace)
        if self.listener is not None:
            self.listener.stop(timeout=0.5)
        if self.worker is not None and not self.worker.flush(send_deadline):
            self.worker.abort_send()
        self._stop_threads(keep_deadline)
        log.info(f"shutdown summary: {self.stats.summary()}")

    def _stop_threads(self, deadline: float) -> None:
        if self.listener is not None:
            self.listener.stop(timeout=max(0.05, deadline - time.monotonic()))
        if self.worker is not None and not self.worker.stop(max(0.05, deadline - time.monotonic())):
            # Stuck beyond an abort (e.g. in a connect): what it holds is lost; say so.
            pending = self.worker.pending_records()
            self.stats.drop("shutdown_stuck_send", pending)
            log.error(f"the worker did not stop in time; {pending} records are lost")
            log.info(f"shutdown summary: {self.stats.summary()}")
            sys.stdout.flush()
            os._exit(0)

    def _idle_until_shutdown(self) -> int:
        while True:
            try:
                event = self.client.next_event()
            except (ExtensionsApiError, LocalHttpError):
                return 1
            if event.get("eventType") == SHUTDOWN:
                return 0


def _monotonic_deadline(deadline_ms: object, margin: float) -> float:
    """The event's epoch-milliseconds deadline, minus ``margin``, on the monotonic clock."""
    now = time.monotonic()
    if not isinstance(deadline_ms, (int, float)):
        return now + 2.0 - margin  # Lambda always sends one; 2 s is the shutdown phase's length
    return now + (deadline_ms / 1000.0 - time.time()) - margin
