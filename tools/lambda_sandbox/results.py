"""Plain records the sandbox hands back to its caller (and keeps for tests to inspect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InitResult:
    """One init phase.

    ``duration_ms``: initStart → every extension and the runtime called ``next`` (Lambda's init
    duration). ``extensions_registered_ms``: initStart → the last extension registered (what the
    extensions' pre-register work adds to every cold start, since the runtime only starts then).
    ``extensions_ready_ms``: initStart → the last extension called ``/event/next``. Both are
    ``0.0`` when the layer has no extensions and ``None`` when init failed before that point.
    ``error``: ``{"errorType", "errorMessage"}`` when ``ok`` is false.
    """

    ok: bool
    duration_ms: float
    extensions_registered_ms: float | None
    extensions_ready_ms: float | None
    error: dict[str, Any] | None = None
    phase: str = "init"
    runtime_ready_ms: float | None = None


@dataclass(frozen=True)
class InvokeResult:
    """One invocation, as a client and the bill see it.

    ``status``: ``success`` | ``error`` (the function raised; ``/invocation/error``) |
    ``failure`` (runtime or extension crashed, or init failed) | ``timeout``.
    ``response``: the parsed JSON response (the raw text if it is not JSON), ``None`` without one.
    ``error``: the error document (``errorType``, ``errorMessage``, ...) when not a success.
    ``duration_ms``: invoke start → runtime responded and every extension called ``/event/next``
    (Lambda's billed ``durationMs``). ``post_runtime_extensions_ms``: runtime response → the last
    INVOKE-registered extension's ``/event/next`` (Lambda's ``PostRuntimeExtensionsDuration``;
    ``None`` if the runtime never answered). ``response_ms``: invoke start → the runtime posted
    its response (what the client waits for; ``None`` without a response).
    """

    request_id: str
    status: str
    response: Any
    error: dict[str, Any] | None
    duration_ms: float
    post_runtime_extensions_ms: float | None
    response_ms: float | None
    init: InitResult | None = None
    report: dict[str, Any] | None = None
    raw_response: bytes | None = None


@dataclass(frozen=True)
class RestoreResult:
    """One SnapStart restore (``snapstart=True``): the environment was kept frozen for
    ``frozen_s`` after init, then resumed. ``connections``: the TCP connections its processes
    had open to the outside world; ``broken``: how many of them were destroyed (all of them
    where the machine allows, see ``snapstart.can_break_connections``). ``duration_ms``: the
    restore as ``platform.restoreReport`` reports it."""

    frozen_s: float
    connections: int
    broken: int
    duration_ms: float
    time: float


@dataclass(frozen=True)
class ShutdownResult:
    """One shutdown (spindown, or the reset after a timeout or crash).

    ``exit_codes``: each process's exit status by name (``runtime`` for the function; negative
    means killed by that signal; ``None`` if it could not be reaped). ``killed``: names that had
    to be SIGKILLed (the runtime after its 300 ms, extensions at the deadline).
    ``duration_ms``: shutdown start → every process gone.
    """

    exit_codes: dict[str, int | None]
    killed: list[str]
    duration_ms: float
    reason: str = "spindown"
    deadline_ms: int | None = None


@dataclass(frozen=True)
class Registration:
    """A successful ``/extension/register``."""

    name: str
    extension_id: str
    events: tuple[str, ...]
    account_id_feature: bool
    time: float


@dataclass(frozen=True)
class SubscriptionRecord:
    """An accepted Telemetry API subscription."""

    extension: str
    schema_version: str
    types: tuple[str, ...]
    buffering: dict[str, int]
    uri: str
    time: float


@dataclass(frozen=True)
class ErrorRecord:
    """An error a process reported (``init/error``, ``exit/error``, ``invocation/error``) or one
    the sandbox detected (a crash, a timeout)."""

    source: str
    name: str
    endpoint: str
    error_type: str
    body: Any = None
    time: float = 0.0


@dataclass(frozen=True)
class OutputLine:
    """One line (or, from the telemetry fd, one frame) a process wrote.

    ``source`` is ``function`` or the extension's name; ``stream`` is ``stdout``, ``stderr`` or
    ``telemetry-fd``; ``text`` keeps its trailing newline, as Lambda's Text records do.
    """

    time: float
    source: str
    stream: str
    text: str


@dataclass(frozen=True)
class ApiCall:
    """One request the sandbox's HTTP server answered (for debugging tests)."""

    time: float
    method: str
    path: str
    status: int
    caller: str = ""


@dataclass
class DeliveryStats:
    """What one telemetry subscriber was sent."""

    batches: int = 0
    events: int = 0
    failed_attempts: int = 0
    dropped_records: int = 0
    dropped_bytes: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    batch_bytes: list[int] = field(default_factory=list)
