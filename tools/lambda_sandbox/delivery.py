"""Pushing telemetry to one subscriber: buffering, batching, retries, drops.

A :class:`Subscriber` owns a buffer and one sender thread. Events are buffered until
``maxItems`` or ``maxBytes`` is reached or the oldest waited ``timeoutMs``; then one batch (a
JSON array) is POSTed to the listener. One subscriber's POSTs are sequential and in order. A
batch that fails (connection error, status >= 400, or no answer within the policy's timeout)
is retried; after the last try it is dropped and counted, and the next batch starts with a
``platform.logsDropped`` event (if the subscriber takes ``platform`` events).

Nothing is pushed while the :class:`Gate` is closed (the environment is frozen): a Lambda
listener cannot receive while its process is stopped. A try that failed while a freeze began
without an answer is not counted against the batch (the listener was stopped, not slow).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass

from .config import DeliveryPolicy
from .platform_events import logs_dropped
from .results import DeliveryStats
from .timeutil import iso

log = logging.getLogger("lambda_sandbox.delivery")


class Gate:
    """Open while the environment runs, closed while it is frozen.

    ``epoch`` counts closings, so a sender can tell that a freeze happened during a try.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = True
        self.epoch = 0

    def close(self) -> None:
        with self._cond:
            if self._open:
                self._open = False
                self.epoch += 1

    def open(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def is_open(self) -> bool:
        with self._cond:
            return self._open

    def wake(self) -> None:
        """Wake waiters so they can re-check their own stop flag."""
        with self._cond:
            self._cond.notify_all()

    def wait_open(self, stopped: threading.Event) -> bool:
        """Block until open; False if ``stopped`` was set first."""
        with self._cond:
            while not self._open and not stopped.is_set():
                self._cond.wait(0.5)
            return self._open and not stopped.is_set()


@dataclass(frozen=True)
class Buffering:
    """A subscription's ``buffering`` values (already validated)."""

    max_items: int = 10_000
    max_bytes: int = 262_144
    timeout_ms: int = 1_000


@dataclass(frozen=True)
class Destination:
    """Where pushes go: ``sandbox.localdomain`` already mapped to 127.0.0.1."""

    host: str
    port: int
    path: str


class PushError(Exception):
    """A push the listener did not acknowledge."""

    def __init__(self, destination: Destination, status: int | None, detail: str) -> None:
        super().__init__(f"push to {destination.host}:{destination.port}{destination.path} "
                         f"failed: {detail}")
        self.status = status


def post_batch(destination: Destination, body: bytes, timeout_s: float) -> int:
    """POST one batch; returns the status, raises :class:`PushError` if not acknowledged."""
    conn = http.client.HTTPConnection(destination.host, destination.port, timeout=timeout_s)
    try:
        conn.request("POST", destination.path, body, headers={
            "Content-Type": "application/json",
            # The same idempotency hint the emulator sends: a hash of the batch.
            "Sequence-Id": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        })
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PushError(destination, None, f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    if response.status >= 400:
        raise PushError(destination, response.status, f"status {response.status}")
    return response.status


class Subscriber:
    """One extension's subscription: buffer + sender thread. ``start()`` once, ``stop()`` twice
    is fine."""

    def __init__(self, name: str, categories: frozenset[str], buffering: Buffering,
                 destination: Destination, policy: DeliveryPolicy, gate: Gate) -> None:
        self.name = name
        self.categories = categories
        self.buffering = buffering
        self.destination = destination
        self.policy = policy
        self.stats = DeliveryStats()
        self._gate = gate
        self._cond = threading.Condition()
        self._buffer: collections.deque[tuple[bytes, float]] = collections.deque()
        self._buffered_bytes = 0
        self._flush_all = False
        self._pending_drop_records = 0
        self._pending_drop_bytes = 0
        self._stopped = threading.Event()
        self._sending = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"subscriber {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=f"sandbox-telemetry-{self.name}",
                                        daemon=True)
        self._thread.start()

    def offer(self, event: bytes, category: str) -> None:
        """Buffer an encoded event if its category was subscribed (never blocks)."""
        if category not in self.categories:
            return
        with self._cond:
            if self._stopped.is_set():
                return
            self._buffer.append((event, time.monotonic()))
            self._buffered_bytes += len(event)
            while len(self._buffer) > self.policy.max_buffered_events:
                dropped, _ = self._buffer.popleft()
                self._buffered_bytes -= len(dropped)
                self._count_drop(1, len(dropped))
            self._cond.notify_all()

    def flush_immediately(self, enabled: bool = True) -> None:
        """Push without waiting for ``timeoutMs`` (used during shutdown)."""
        with self._cond:
            self._flush_all = enabled
            self._cond.notify_all()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the sender (what is still buffered is discarded); True if it finished in time."""
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()
        self._gate.wake()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _count_drop(self, records: int, size: int) -> None:
        self.stats.dropped_records += records
        self.stats.dropped_bytes += size
        if "platform" in self.categories:
            self._pending_drop_records += records
            self._pending_drop_bytes += size

    def _ready(self) -> bool:
        if self._stopped.is_set():
            return True
        if self._pending_drop_records and not self._buffer:
            return True
        if not self._buffer:
            return False
        if self._flush_all:
            return True
        if len(self._buffer) >= self.buffering.max_items:
            return True
        if self._buffered_bytes >= self.buffering.max_bytes:
            return True
        oldest = self._buffer[0][1]
        return (time.monotonic() - oldest) * 1000.0 >= self.buffering.timeout_ms

    def _wait_timeout(self) -> float | None:
        if not self._buffer:
            return None
        age_ms = (time.monotonic() - self._buffer[0][1]) * 1000.0
        return max(0.001, (self.buffering.timeout_ms - age_ms) / 1000.0)

    def _take_batch(self) -> list[bytes]:
        """Up to maxItems events, stopping once maxBytes is reached (so a batch may exceed it
        by its last event, as Lambda's may)."""
        batch: list[bytes] = []
        size = 0
        if self._pending_drop_records:
            record = logs_dropped(dropped_bytes=self._pending_drop_bytes,
                                  dropped_records=self._pending_drop_records)
            event = json.dumps({"time": iso(), "type": "platform.logsDropped",
                                "record": record}, separators=(",", ":")).encode()
            batch.append(event)
            size += len(event)
            self._pending_drop_records = 0
            self._pending_drop_bytes = 0
        while (self._buffer and len(batch) < self.buffering.max_items
               and size < self.buffering.max_bytes):
            event, _ = self._buffer.popleft()
            self._buffered_bytes -= len(event)
            batch.append(event)
            size += len(event)
        return batch

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with self._cond:
                    while not self._ready():
                        self._cond.wait(self._wait_timeout())
                    if self._stopped.is_set():
                        return
                if not self._gate.wait_open(self._stopped):
                    return
                with self._cond:
                    batch = self._take_batch()
                    self._sending = bool(batch)
                if batch:
                    self._send(batch)
            except Exception:  # the sender loop never dies: log and go on
                log.exception("telemetry sender %s failed", self.name)
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _send(self, batch: list[bytes]) -> None:
        body = b"[" + b",".join(batch) + b"]"
        attempt = 0
        while not self._stopped.is_set():
            if not self._gate.wait_open(self._stopped):
                return
            epoch = self._gate.epoch
            try:
                post_batch(self.destination, body, self.policy.timeout_s)
            except PushError as exc:
                if exc.status is None and (self._gate.epoch != epoch
                                           or not self._gate.is_open()):
                    # No answer because the environment froze mid-push: the listener was
                    # stopped, not failing. Try again after the thaw, without counting it.
                    continue
                attempt += 1
                self.stats.failed_attempts += 1
                # During shutdown a listener that already exited is expected, not news.
                level = logging.DEBUG if self._flush_all else logging.WARNING
                log.log(level, "telemetry push to %s (attempt %d/%d): %s", self.name, attempt,
                        self.policy.attempts, exc)
                if attempt >= self.policy.attempts:
                    with self._cond:
                        self._count_drop(len(batch), len(body))
                    log.error("dropped %d telemetry events (%d bytes) for %s", len(batch),
                              len(body), self.name)
                    return
                self._stopped.wait(self.policy.backoff(attempt))
                continue
            self.stats.batches += 1
            self.stats.events += len(batch)
            self.stats.batch_sizes.append(len(batch))
            self.stats.batch_bytes.append(len(body))
            return
