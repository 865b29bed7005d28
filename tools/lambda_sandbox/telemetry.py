"""The Telemetry API: subscription validation and the hub that fans events out.

``PUT /2022-07-01/telemetry`` is validated like Lambda does (schema versions, types, buffering
limits, ``sandbox.localdomain`` HTTP destination, init phase only) and answers 200 ``"OK"`` or
400 ``ValidationError``. In ``not-supported`` mode it answers like the plain Runtime Interface
Emulator: 202 ``Telemetry.NotSupported`` and nothing is ever delivered.

The :class:`TelemetryHub` keeps every event of the current init phase, so an extension that
subscribes late in init still receives ``platform.initStart`` and the earlier log lines, as in
Lambda. It also keeps a ledger of every event emitted (``events``) for tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from . import platform_events
from .config import DeliveryPolicy
from .delivery import Buffering, Destination, Gate, Subscriber
from .log_records import encode_event
from .results import DeliveryStats, SubscriptionRecord
from .server import ApiRequest, ApiResponse, error_response
from .timeutil import iso

log = logging.getLogger("lambda_sandbox.telemetry")

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
MANAGED_INSTANCES_SCHEMA_VERSIONS = ("2025-01-29",)
EVENT_CATEGORIES = ("platform", "function", "extension")
SANDBOX_HOST = "sandbox.localdomain"
RESERVED_PORT = 9001

LIMITS = {
    "maxItems": (1_000, 10_000),
    "maxBytes": (262_144, 1_048_576),
    "timeoutMs": (25, 30_000),
}
DEFAULTS = {"maxItems": 10_000, "maxBytes": 262_144, "timeoutMs": 1_000}


class SubscriptionError(ValueError):
    """A subscription Lambda would refuse with 400 ``ValidationError``."""


@dataclass(frozen=True)
class Subscription:
    """A validated subscription request."""

    schema_version: str
    types: tuple[str, ...]
    buffering: Buffering
    destination: Destination
    uri: str


def _strict_int(value: Any, name: str) -> int:
    # bool is an int in Python but not in JSON Schema.
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubscriptionError(f"buffering.{name} must be an integer")
    return value


def parse_subscription(body: bytes, *, managed_instances: bool) -> Subscription:
    """Validate a subscription body; raises :class:`SubscriptionError` with Lambda-like text."""
    try:
        doc = json.loads(body or b"null")
    except ValueError as exc:
        raise SubscriptionError(f"Invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SubscriptionError("request body must be a JSON object")

    allowed_versions = MANAGED_INSTANCES_SCHEMA_VERSIONS if managed_instances else SCHEMA_VERSIONS
    schema_version = doc.get("schemaVersion")
    if schema_version not in allowed_versions:
        raise SubscriptionError(
            f"schemaVersion must be one of {', '.join(allowed_versions)}, got {schema_version!r}")

    types = doc.get("types")
    if not isinstance(types, list) or not types:
        raise SubscriptionError("types must be a non-empty array")
    for item in types:
        if item not in EVENT_CATEGORIES:
            raise SubscriptionError(
                f"types: {item!r} is not one of {', '.join(EVENT_CATEGORIES)}")

    raw_buffering = doc.get("buffering", {})
    if raw_buffering is None:
        raw_buffering = {}
    if not isinstance(raw_buffering, dict):
        raise SubscriptionError("buffering must be an object")
    values = dict(DEFAULTS)
    for name, (low, high) in LIMITS.items():
        if name in raw_buffering:
            value = _strict_int(raw_buffering[name], name)
            if not low <= value <= high:
                raise SubscriptionError(
                    f"buffering.{name} must be between {low} and {high}, got {value}")
            values[name] = value

    destination = doc.get("destination")
    if not isinstance(destination, dict):
        raise SubscriptionError("destination must be an object")
    protocol = destination.get("protocol")
    if protocol == "TCP":
        raise SubscriptionError("destination.protocol TCP is not supported by the sandbox; use "
                                "HTTP")
    if protocol != "HTTP":
        raise SubscriptionError(f"destination.protocol must be HTTP or TCP, got {protocol!r}")
    uri = destination.get("URI")
    if not isinstance(uri, str) or not uri:
        raise SubscriptionError("destination.URI must be a non-empty string")
    parts = urlsplit(uri)
    if parts.scheme != "http":
        raise SubscriptionError("destination.URI must be an http:// URI")
    if parts.hostname != SANDBOX_HOST:
        raise SubscriptionError(f"destination.URI host must be {SANDBOX_HOST}")
    try:
        port = parts.port
    except ValueError as exc:
        raise SubscriptionError(f"destination.URI has an invalid port: {exc}") from exc
    if port is None:
        raise SubscriptionError("destination.URI must name a port")
    if port == RESERVED_PORT:
        raise SubscriptionError(f"destination.URI port {RESERVED_PORT} is reserved by Lambda")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"

    return Subscription(
        schema_version=schema_version,
        types=tuple(dict.fromkeys(types)),
        buffering=Buffering(values["maxItems"], values["maxBytes"], values["timeoutMs"]),
        destination=Destination("127.0.0.1", port, path),
        uri=uri,
    )


class TelemetryHub:
    """Fans events out to subscribers; holds the init-phase backlog and the freeze gate."""

    def __init__(self, policy: DeliveryPolicy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._subscribers: dict[str, Subscriber] = {}
        self._retired: list[Subscriber] = []
        self._backlog: list[tuple[bytes, str]] | None = []
        self.gate = Gate()
        self.events: list[dict[str, Any]] = []

    def emit(self, event_type: str, record: Any, epoch_s: float | None = None) -> None:
        """Emit one event now (``epoch_s`` overrides its ``time``)."""
        event = {"time": iso(epoch_s), "type": event_type, "record": record}
        encoded = encode_event(event)
        category = event_type.split(".", 1)[0]
        with self._lock:
            self.events.append(event)
            for subscriber in self._subscribers.values():
                subscriber.offer(encoded, category)
            if self._backlog is not None:
                self._backlog.append((encoded, category))

    def begin_init(self) -> None:
        """A new init phase: keep its events for subscribers that come later in it."""
        with self._lock:
            self._backlog = []

    def end_init(self) -> None:
        """Init is over: subscriptions are closed, the backlog is not needed any more."""
        with self._lock:
            self._backlog = None

    @property
    def accepting(self) -> bool:
        with self._lock:
            return self._backlog is not None

    def subscribe(self, extension: str, subscription: Subscription) -> SubscriptionRecord:
        """Add (or replace) ``extension``'s subscriber, replay the init backlog to it, and emit
        ``platform.telemetrySubscription``."""
        subscriber = Subscriber(extension, frozenset(subscription.types), subscription.buffering,
                                subscription.destination, self._policy, self.gate)
        with self._lock:
            old = self._subscribers.pop(extension, None)
            if old is not None:
                self._retired.append(old)
            self._subscribers[extension] = subscriber
            for encoded, category in self._backlog or []:
                subscriber.offer(encoded, category)
        if old is not None:
            old.stop(0.0)
        subscriber.start()
        self.emit("platform.telemetrySubscription", platform_events.telemetry_subscription(
            name=extension, state="Subscribed", types=list(subscription.types)))
        return SubscriptionRecord(
            extension=extension,
            schema_version=subscription.schema_version,
            types=subscription.types,
            buffering={"maxItems": subscription.buffering.max_items,
                       "maxBytes": subscription.buffering.max_bytes,
                       "timeoutMs": subscription.buffering.timeout_ms},
            uri=subscription.uri,
            time=time.time(),
        )

    def pause(self) -> None:
        """The environment freezes: no push starts until :meth:`resume`."""
        self.gate.close()

    def resume(self) -> None:
        self.gate.open()

    def flush_immediately(self) -> None:
        """Shutdown: push what is buffered now, and everything that comes later at once."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        for subscriber in subscribers:
            subscriber.flush_immediately()

    def stats(self) -> dict[str, DeliveryStats]:
        """Delivery statistics per subscriber (including replaced ones, by name: latest wins)."""
        with self._lock:
            subscribers = self._retired + list(self._subscribers.values())
        return {s.name: s.stats for s in subscribers}

    def drop_subscribers(self, timeout: float = 1.0) -> None:
        """The environment is gone: stop every subscriber (bounded), discarding their buffers."""
        with self._lock:
            subscribers = list(self._subscribers.values())
            self._retired.extend(subscribers)
            self._subscribers.clear()
        deadline = time.monotonic() + timeout
        for subscriber in subscribers:
            subscriber.stop(0.0)
        for subscriber in subscribers:
            subscriber.stop(max(0.0, deadline - time.monotonic()))


class TelemetryAPI:
    """HTTP handlers for ``/2022-07-01/telemetry`` (and the superseded Logs API).

    ``identify`` resolves the caller's ``Lambda-Extension-Identifier`` to an extension name or
    an error response; ``on_subscribed`` records accepted subscriptions.
    """

    def __init__(self, hub: TelemetryHub, *, mode: str, managed_instances: bool,
                 identify: Callable[[ApiRequest], tuple[str | None, ApiResponse | None]],
                 on_subscribed: Callable[[SubscriptionRecord], None]) -> None:
        self._hub = hub
        self._mode = mode
        self._managed_instances = managed_instances
        self._identify = identify
        self._on_subscribed = on_subscribed

    def subscribe(self, request: ApiRequest) -> ApiResponse:
        if self._mode == "not-supported":
            # What the plain emulator answers: accepted, but nothing will ever be delivered.
            return error_response(202, "Telemetry.NotSupported", "Telemetry API is not supported")
        name, failure = self._identify(request)
        if failure is not None:
            return failure
        assert name is not None
        if not self._hub.accepting:
            return error_response(403, "Telemetry.SubscriptionClosed",
                                  "Telemetry API subscription is closed", caller=name)
        try:
            subscription = parse_subscription(request.body,
                                              managed_instances=self._managed_instances)
        except SubscriptionError as exc:
            return error_response(400, "ValidationError", str(exc), caller=name)
        self._on_subscribed(self._hub.subscribe(name, subscription))
        return ApiResponse(200, b'"OK"', {"Content-Type": "application/json"}, caller=name)

    def logs(self, request: ApiRequest) -> ApiResponse:
        """The Logs API (2020-08-15) is superseded by the Telemetry API; not emulated."""
        return error_response(202, "Logs.NotSupported", "Logs API is not supported")
