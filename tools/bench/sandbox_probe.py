"""Timing ``platform.runtimeDone`` → the extension's ``/event/next`` inside the local sandbox.

The sandbox reports Lambda's ``PostRuntimeExtensionsDuration`` (runtime response → last
``/event/next``), which is mostly the Telemetry API's own buffering: Lambda pushes
``runtimeDone`` up to ``timeoutMs`` (25 ms at least) after the response, and no extension can
do anything about that. What the extension controls starts when that push is sent to it. The
sandbox does not record push times, so this probe observes them without changing the sandbox:

* it wraps ``lambda_sandbox.delivery.post_batch`` (the one function every push goes through)
  to note when each push started and ended, keeping the body for later lookup;
* it reads the sandbox's record of when each extension last called ``/event/next``
  (``ExtensionState.last_next_at``), on the same ``time.monotonic()`` clock.

Both are internals of ``lambda_sandbox``; the probe checks they exist and fails with a clear
message if they change, rather than reporting wrong numbers. Bodies are parsed only after the
invocation, so the probe adds nothing measurable to a push.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from tools.lambda_sandbox import Sandbox
from tools.lambda_sandbox import delivery as _delivery

RUNTIME_DONE = b'"platform.runtimeDone"'


@dataclass
class Push:
    """One push the sandbox made to a listener (monotonic seconds)."""

    started: float
    ended: float
    ok: bool
    body: bytes


class SandboxProbe:
    """Install with ``with SandboxProbe() as probe:`` around the sandbox's use."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> SandboxProbe:
        original = getattr(_delivery, "post_batch", None)
        if original is None:
            raise RuntimeError("lambda_sandbox.delivery.post_batch is gone: "
                               "update tools/bench/sandbox_probe.py")
        self._original = original

        def post_batch(destination: Any, body: bytes, timeout_s: float) -> int:
            started = time.monotonic()
            ok = False
            try:
                status = original(destination, body, timeout_s)
                ok = True
                return status
            finally:
                with self._lock:
                    self.pushes.append(Push(started, time.monotonic(), ok, body))

        _delivery.post_batch = post_batch
        return self

    def __exit__(self, *exc: object) -> None:
        _delivery.post_batch = self._original

    def clear(self) -> None:
        """Forget recorded pushes (call between invocations to keep memory flat)."""
        with self._lock:
            self.pushes.clear()

    def runtime_done_pushed_at(self, request_id: str) -> float | None:
        """Start time of the acknowledged push that carried ``request_id``'s runtimeDone."""
        with self._lock:
            pushes = list(self.pushes)
        needle = request_id.encode()
        for push in pushes:
            if not push.ok or RUNTIME_DONE not in push.body or needle not in push.body:
                continue
            for event in json.loads(push.body):
                record = event.get("record")
                if (event.get("type") == "platform.runtimeDone" and isinstance(record, dict)
                        and record.get("requestId") == request_id):
                    return push.started
        return None


def last_next_at(sandbox: Sandbox, extension: str) -> float | None:
    """When ``extension`` last called ``/event/next`` (monotonic), from the sandbox's state."""
    api = getattr(sandbox, "_extensions_api", None)
    states = getattr(api, "states", None)
    if states is None:
        raise RuntimeError("Sandbox._extensions_api.states is gone: "
                           "update tools/bench/sandbox_probe.py")
    for state in states:
        if state.name == extension:
            return getattr(state, "last_next_at", None)
    return None
