"""The main thread: subscribe, wait for events, hold each invocation for its logs, shut down.

1. (``app`` has read the settings and registered.) Bind the listener, start its thread,
   subscribe to the Telemetry API. Until init has ended (the first event) nothing else runs:
   the function's runtime is starting on the same share of CPU (see ``open_gate``).
2. Loop on ``/event/next``. With the first event, start delivery (the worker and sender
   threads). After each INVOKE, wait until that request's logs are delivered (or a bound is
   reached) *before* asking for the next event, because asking is what lets Lambda freeze the
   environment.
3. On SHUTDOWN, deliver what is left before the deadline, stop and join the threads, print one
   summary line and exit 0.

A configuration error never breaks the function: ``run_unconfigured`` logs one clear line and
stays registered as a no-op (or, with ``HTTP_STRICT_CONFIG=true``, reports an init error so the
deployment fails loudly).
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from . import log
from .lambda_api import telemetry
from .lambda_api.client import LocalHttpError
from .lambda_api.events import INVOKE, SHUTDOWN
from .lambda_api.extensions import ExtensionsApiError
from .settings.names import MANAGED_INSTANCES, PROVISIONED_CONCURRENCY, SNAP_START

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from .delivery.worker import DeliveryWorker
    from .invocations import InvocationProgress
    from .lambda_api.extensions import ExtensionsClient
    from .listener.server import TelemetryListener
    from .settings.model import Settings
    from .settings.parse import ConfigError
    from .stats import Stats

# Time kept back at shutdown for stopping threads and printing the summary.
SHUTDOWN_RESERVE_SECONDS = 0.1
# Time kept back at shutdown for writing what could not be delivered to the spill directory.
SPILL_RESERVE_SECONDS = 0.25
# How long to wait at shutdown for the last invocation's platform.report to be pushed.
REPORT_GRACE_SECONDS = 0.3
# Where delivery starts before the first /event/next rather than with the first event: no
# INVOKE comes (Managed Instances), or init is on no request's path, so the first invocation is
# better off finding delivery ready (provisioned concurrency; SnapStart, whose snapshot is
# taken after init).
DELIVERY_BEFORE_FIRST_NEXT = (MANAGED_INSTANCES, PROVISIONED_CONCURRENCY, SNAP_START)


def run_unconfigured(
    client: ExtensionsClient, error: ConfigError, *, strict: bool, what: str = ""
) -> int:
    """Registered, but the settings are unusable: say so once, then do nothing until SHUTDOWN.

    ``what`` words the line's start ("configuration error" by default)."""
    log.error(f"{what or 'configuration error'}: {error}")
    if strict:
        client.init_error("Extension.ConfigInvalid", str(error))
        return 1
    log.error("logs will NOT be forwarded; the function keeps running normally")
    return _idle_until_shutdown(client)


class Extension:
    """A registered, configured extension: owns the listener and worker threads.

    ``start_delivery`` builds the worker (not started) and what it shares with the main thread,
    and connects the listener to it; ``open_gate`` calls it once."""

    def __init__(
        self,
        settings: Settings,
        client: ExtensionsClient,
        listener: TelemetryListener,
        start_delivery: Callable[[], tuple[DeliveryWorker, InvocationProgress]],
        stats: Stats,
    ) -> None:
        self.settings = settings
        self.client = client
        self.listener = listener
        self.stats = stats
        self.worker: DeliveryWorker | None = None  # from open_gate on
        self.progress: InvocationProgress | None = None
        self._start_delivery = start_delivery
        self._gate_lock = _thread.allocate_lock()  # the main and the listener thread may open it
        self._gate_opened = False
        self.telemetry_active = False
        self.last_request_id = ""
        self._released_early = 0  # invocations in a row released before their logs were sent

    def run(self) -> int:
        for warning in self.settings.warnings:
            log.warning(warning)
        try:
            self._start()
        except Exception as exc:  # never a traceback into the function's logs
            log.error(f"could not start: {type(exc).__name__}: {exc}; logs will NOT be forwarded")
            self._stop_threads(time.monotonic() + 1.0)
            return _idle_until_shutdown(self.client)
        try:
            return self._event_loop()
        finally:
            self._stop_threads(time.monotonic() + 1.0)

    def _start(self) -> None:
        """Bind, start the listener, subscribe: the work between register and the first
        ``/event/next``, kept to the listener's few modules (see ``open_gate``)."""
        telemetry_settings = self.settings.telemetry
        self.listener.bind()
        # Pushes that come during init are answered and kept as they came (see open_gate).
        self.listener.defer_pushes(on_full=self.open_gate)
        # Subscribe only once the listener serves: the subscription makes Lambda start pushing,
        # and a push must be answered at once. AWS's emulator keeps one push in flight, drops
        # what comes meanwhile, and (managed-instances mode, ~1 run in 6) stalled the first
        # invoke for 29 s behind a push our listener was not yet ready to answer. So whatever
        # the listener needs before serving is on the cold-start path: it imports only
        # ``select`` (see listener.loop). Delivery starts later (see open_gate).
        self.listener.start()
        self.listener.wait_serving(1.0)
        managed = self.settings.lambda_env.managed_instances
        body = telemetry.subscription_body(
            types=telemetry_settings.types,
            max_items=telemetry_settings.max_items,
            max_bytes=telemetry_settings.max_bytes,
            timeout_ms=telemetry_settings.timeout_ms,
            port=self.listener.port,
            schema_version=(
                telemetry.MANAGED_INSTANCES_SCHEMA_VERSION if managed else telemetry.SCHEMA_VERSION
            ),
        )
        subscription = telemetry.subscribe(self.client.runtime_api, self.client.extension_id, body)
        if subscription.state == telemetry.SUBSCRIBED:
            self.telemetry_active = True
            log.debug(
                f"subscribed to the Telemetry API on {self.listener.host}:{self.listener.port}"
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
        """Start delivery: the worker and sender threads, which build their parts (the heavy
        imports: ``threading``, ``json``, ``re``, ``socket``, ``ssl`` for https...). Called
        once init has ended — with the first event, INVOKE or SHUTDOWN — and not at the first
        ``/event/next``: after that call the extension's work still shares the function's CPU
        with the runtime's own init (on a 128 MB function, 7 % of one CPU), so everything done
        then delays the function's readiness. On Lambda Managed Instances, where no INVOKE
        comes, and where init is ahead of any request (``DELIVERY_BEFORE_FIRST_NEXT``), it is
        called before the first ``/event/next`` instead. The listener then parses the pushes it
        kept meanwhile (it calls this itself if they grow large). Safe to call again, from any
        thread."""
        with self._gate_lock:
            if not self._gate_opened:
                self._gate_opened = True
                try:
                    import threading

                    # A thread's own loop catches and logs its errors; anything that escapes
                    # one still goes through our log (one line, scrubbed of secrets), never a
                    # traceback on stderr.
                    threading.excepthook = _report_thread_error
                    worker, progress = self._start_delivery()
                    worker.start()
                    self.worker, self.progress = worker, progress
                except Exception as exc:  # the listener counts what it cannot hand on
                    # start_delivery may have connected the listener to a worker that never ran:
                    # what it would queue there would be lost uncounted.
                    self.listener.deliver_to(None, None)
                    log.error(
                        f"could not start delivery: {type(exc).__name__}: {exc}; logs will NOT "
                        "be forwarded"
                    )
        self.listener.end_deferral()

    def _event_loop(self) -> int:
        delivery = self.settings.delivery
        margin = delivery.deadline_margin_ms / 1000.0
        budget = delivery.flush_budget_ms / 1000.0
        hold = self.telemetry_active and delivery.holds_invocations
        lambda_env = self.settings.lambda_env
        if lambda_env.managed_instances or (
            lambda_env.initialization_type in DELIVERY_BEFORE_FIRST_NEXT
        ):
            self.open_gate()
        while True:
            try:
                event = self.client.next_event()
            except (ExtensionsApiError, LocalHttpError) as exc:
                log.error(f"event/next failed: {exc}; delivering what is left and exiting")
                self._shutdown(time.monotonic() + 1.0, "")
                return 1
            self.open_gate()  # init has ended
            event_type = event.get("eventType")
            deadline = _monotonic_deadline(event.get("deadlineMs"), margin)
            if event_type == INVOKE:
                request_id = str(event.get("requestId") or "")
                # For the worker's entries: the trace, and which invocation was the first.
                if self.progress is not None:
                    self.progress.note_invoke(request_id, event.get("tracing"))
                if request_id and hold and self.progress is not None:
                    self._wait_for_delivery(request_id, deadline, budget)
                self.last_request_id = request_id
            elif event_type == SHUTDOWN:
                reason = event.get("shutdownReason")
                log.debug(f"shutdown ({reason})")
                self._shutdown(deadline, self.last_request_id, str(reason or "").lower())
                return 0
            else:
                log.warning(f"ignored an unknown event type {event_type!r}")

    def _wait_for_delivery(self, request_id: str, deadline: float, budget: float) -> None:
        # Imported here, not at the top: invocations needs threading, which must not load
        # before the register call (cold start).
        from .invocations import DEADLINE, DELIVERED

        assert self.progress is not None and self.worker is not None
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
        pending = self.worker.pending_records()
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

    def _shutdown(self, deadline: float, last_request_id: str, reason: str = "") -> None:
        """Deliver everything still held before ``deadline``, then stop the threads.

        What cannot be delivered in time goes to the spill directory (a reset keeps /tmp), so
        the end of the window is kept free for that: a send still in flight then is aborted.
        ``reason``: the SHUTDOWN's; a ``timeout`` or ``failure`` ended the last invocation,
        which the worker then says in one ERROR entry unless Lambda's own records already did
        (``records.enrich``).
        """
        self.open_gate()
        keep_deadline = deadline - SHUTDOWN_RESERVE_SECONDS
        send_deadline = keep_deadline - SPILL_RESERVE_SECONDS
        if self.telemetry_active and self.progress is not None:
            grace = min(time.monotonic() + REPORT_GRACE_SECONDS, send_deadline)
            if last_request_id:
                # The last invocation's platform.report is pushed only after we called
                # /event/next.
                self.progress.wait_report(last_request_id, grace)
            elif self.settings.lambda_env.managed_instances and reason in ("timeout", "failure"):
                # No INVOKE names the invocation that failed: its report, which does (and
                # makes its ERROR entry), may still be on its way — Lambda pushes telemetry
                # apart from the SHUTDOWN event.
                self.progress.wait_another_report(self.progress.reports_seen(), grace)
        self.listener.stop(timeout=0.5)
        self._notify_worker_of_shutdown(reason, last_request_id)
        if self.worker is not None and not self.worker.flush(send_deadline):
            self.worker.abort_send()
        self._stop_threads(keep_deadline)
        log.info(f"shutdown summary: {self.stats.summary()}")

    def _notify_worker_of_shutdown(self, reason: str, request_id: str) -> None:
        """Queue the SHUTDOWN's reason for the worker, once the listener has stopped: it goes
        behind every push taken in, so the worker sees the invocation's own runtimeDone and
        report first, and the flush (or, past its deadline, the spill) takes it with them."""
        from .records.enrich import SHUTDOWN_FAILED, ShutdownNotice
        from .records.timestamps import utc_now_iso

        worker = self.worker
        if reason in SHUTDOWN_FAILED and worker is not None:
            notice = ShutdownNotice.make(reason, request_id, utc_now_iso())
            if not worker.submit([notice], 0):
                log.warning(f"could not queue the entry for the shutdown ({reason})")

    def _stop_threads(self, deadline: float) -> None:
        self.listener.stop(timeout=max(0.05, deadline - time.monotonic()))
        worker = self.worker
        if worker is not None and not worker.stop(max(0.05, deadline - time.monotonic())):
            # Stuck beyond an abort (e.g. in a connect): what it holds is lost; say so.
            pending = worker.pending_records()
            self.stats.drop("shutdown_stuck_send", pending)
            log.error(f"the worker did not stop in time; {pending} records are lost")
            log.info(f"shutdown summary: {self.stats.summary()}")
            sys.stdout.flush()
            os._exit(0)


def _report_thread_error(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "a thread"
    log.error(f"{name} failed: {args.exc_type.__name__}: {args.exc_value}")


def _idle_until_shutdown(client: ExtensionsClient) -> int:
    while True:
        try:
            event = client.next_event()
        except (ExtensionsApiError, LocalHttpError) as exc:
            log.error(f"event/next failed: {exc}")
            return 1
        if event.get("eventType") == SHUTDOWN:
            return 0


def _monotonic_deadline(deadline_ms: object, margin: float) -> float:
    """The event's epoch-milliseconds deadline, minus ``margin``, on the monotonic clock."""
    now = time.monotonic()
    if not isinstance(deadline_ms, (int, float)):
        return now + 2.0 - margin  # Lambda always sends one; 2 s is the shutdown phase's length
    return now + (deadline_ms / 1000.0 - time.time()) - margin
