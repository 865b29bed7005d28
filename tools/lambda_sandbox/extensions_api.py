"""The Extensions API (``/2020-01-01/extension/...``) and each extension's state.

Error answers follow AWS's Runtime Interface Emulator: 403 with ``{"errorMessage",
"errorType"}``, ``errorType`` ``Extension.InvalidExtensionName`` (empty or unknown name),
``Extension.InvalidEventType`` (not INVOKE/SHUTDOWN, or INVOKE with Managed Instances),
``Extension.InvalidExtensionState`` (registered twice), ``Extension.RegistrationClosed``
(after init), ``Extension.MissingExtensionIdentifier`` / ``InvalidExtensionIdentifier`` /
``UnknownExtensionIdentifier``, ``Extension.MissingHeader``; a body that is not JSON gets
``InvalidRequestFormat``.

All state is guarded by the sandbox's shared condition variable: handlers notify it on every
change, and the lifecycle waits on it.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .processes import ManagedProcess
from .results import ErrorRecord, Registration
from .server import ApiRequest, ApiResponse, error_response, json_response

HEADER_NAME = "Lambda-Extension-Name"
HEADER_ID = "Lambda-Extension-Identifier"
HEADER_FEATURE = "Lambda-Extension-Accept-Feature"
HEADER_ERROR_TYPE = "Lambda-Extension-Function-Error-Type"
HEADER_EVENT_ID = "Lambda-Extension-Event-Identifier"

EVENT_INVOKE = "INVOKE"
EVENT_SHUTDOWN = "SHUTDOWN"
VALID_EVENTS = (EVENT_INVOKE, EVENT_SHUTDOWN)


@dataclass
class ExtensionState:
    """One launched extension process and what it did on the API."""

    name: str
    process: ManagedProcess | None = None
    extension_id: str | None = None
    events: tuple[str, ...] = ()
    registered_at: float | None = None
    ready_at: float | None = None
    last_next_at: float | None = None
    waiting: bool = False
    queue: collections.deque[tuple[int, dict[str, Any]]] = field(default_factory=collections.deque)
    current_seq: int = 0
    completed_seq: int = 0
    init_error: str | None = None
    exit_error: str | None = None
    shutdown_delivered: bool = False
    retired: bool = False

    @property
    def registered(self) -> bool:
        return self.extension_id is not None

    def subscribed(self, event: str) -> bool:
        return event in self.events


@dataclass(frozen=True)
class FunctionMetadata:
    """What ``/register`` answers."""

    function_name: str
    function_version: str
    handler: str
    account_id: str


class ExtensionsAPI:
    """Extension registry plus the four Extensions API handlers."""

    def __init__(self, cond: threading.Condition, metadata: FunctionMetadata, *,
                 managed_instances: bool, extensions_dir: str,
                 on_registered: Callable[[Registration], None],
                 on_error: Callable[[ErrorRecord], None]) -> None:
        self._cond = cond
        self._metadata = metadata
        self._managed_instances = managed_instances
        self._extensions_dir = extensions_dir
        self._on_registered = on_registered
        self._on_error = on_error
        self._states: dict[str, ExtensionState] = {}
        self._by_id: dict[str, ExtensionState] = {}
        self._registration_open = False
        self._closed = False
        self._seq = 0

    # ----------------------------------------------------------------- lifecycle side
    # Callers hold the shared condition for everything below unless noted.

    def reset(self, names: list[str]) -> None:
        """A new environment: retire every old extension and expect ``names`` to register."""
        for state in self._states.values():
            state.retired = True
        self._states = {name: ExtensionState(name) for name in names}
        self._by_id = {}
        self._registration_open = True
        self._cond.notify_all()

    def attach(self, name: str, process: ManagedProcess) -> None:
        self._states[name].process = process

    def close_registration(self) -> None:
        self._registration_open = False

    def close(self) -> None:
        """Wake every blocked ``/event/next`` so the server can stop."""
        self._closed = True
        self._cond.notify_all()

    @property
    def states(self) -> list[ExtensionState]:
        return list(self._states.values())

    def all_registered(self) -> bool:
        return all(s.registered for s in self._states.values())

    def all_ready(self) -> bool:
        return all(s.ready_at is not None for s in self._states.values())

    def first_init_error(self) -> ExtensionState | None:
        return next((s for s in self._states.values() if s.init_error), None)

    def queue_event(self, event: dict[str, Any], event_type: str) -> dict[str, int]:
        """Queue ``event`` for every extension registered for ``event_type``; returns the
        sequence number each must complete (call ``/event/next`` after) to be done with it."""
        queued: dict[str, int] = {}
        for state in self._states.values():
            if state.subscribed(event_type) and not state.retired:
                self._seq += 1
                state.queue.append((self._seq, event))
                queued[state.name] = self._seq
        self._cond.notify_all()
        return queued

    def finished(self, queued: dict[str, int]) -> bool:
        """Whether every extension in ``queued`` called ``/event/next`` after its event."""
        return all(self._states[name].completed_seq >= seq for name, seq in queued.items()
                   if name in self._states)

    def exited_extension(self) -> ExtensionState | None:
        """An extension whose process is gone (a crash, from the platform's point of view)."""
        for state in self._states.values():
            if state.process is not None and state.process.exited.is_set():
                return state
        return None

    # ----------------------------------------------------------------- HTTP side

    def identify(self, request: ApiRequest) -> tuple[str | None, ApiResponse | None]:
        """Resolve ``Lambda-Extension-Identifier`` to a name, or the 403 Lambda answers."""
        with self._cond:
            state, failure = self._lookup(request)
            return (state.name if state else None), failure

    def _lookup(self, request: ApiRequest) -> tuple[ExtensionState | None, ApiResponse | None]:
        raw = request.header(HEADER_ID)
        if not raw:
            return None, error_response(403, "Extension.MissingExtensionIdentifier",
                                        f"Missing {HEADER_ID} header")
        try:
            uuid.UUID(raw)
        except ValueError:
            return None, error_response(403, "Extension.InvalidExtensionIdentifier",
                                        f"Invalid {HEADER_ID}")
        state = self._by_id.get(raw)
        if state is None or state.retired:
            return None, error_response(403, "Extension.UnknownExtensionIdentifier",
                                        f"Unknown extension {raw}")
        return state, None

    def register(self, request: ApiRequest) -> ApiResponse:
        name = request.header(HEADER_NAME)
        if not name:
            return error_response(403, "Extension.InvalidExtensionName", "Empty extension name")
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            events = body.get("events", [])
            if events is None:
                events = []
            if not isinstance(events, list):
                raise ValueError("events must be an array")
        except ValueError as exc:
            return error_response(403, "InvalidRequestFormat", str(exc), caller=name)
        if body.get("configurationKeys"):
            return error_response(403, "InvalidRequestFormat",
                                  "configurationKeys are deprecated; use environment variables "
                                  "instead", caller=name)
        for event in events:
            if event not in VALID_EVENTS:
                return error_response(403, "Extension.InvalidEventType",
                                      f"{event}: ErrorInvalidEventType (valid: INVOKE, SHUTDOWN)",
                                      caller=name)
            if event == EVENT_INVOKE and self._managed_instances:
                return error_response(403, "Extension.InvalidEventType",
                                      "INVOKE: ErrorInvalidEventType (Lambda Managed Instances "
                                      "extensions may register for SHUTDOWN only)", caller=name)
        features = {f.strip() for f in request.header(HEADER_FEATURE).split(",")}
        with self._cond:
            state = self._states.get(name)
            if state is None:
                if not self._registration_open:
                    return error_response(403, "Extension.RegistrationClosed",
                                          "Extension registration closed already", caller=name)
                return error_response(
                    403, "Extension.InvalidExtensionName",
                    f"{name!r} is not the file name of an executable in {self._extensions_dir} "
                    "(Lambda would treat it as an internal extension and init would wait for "
                    "the real one until it times out)", caller=name)
            if state.registered:
                return error_response(
                    403, "Extension.InvalidExtensionState",
                    f"State transition from Registered to Registered failed for extension "
                    f"{name}. Error: already registered", caller=name)
            if not self._registration_open:
                return error_response(403, "Extension.RegistrationClosed",
                                      "Extension registration closed already", caller=name)
            state.extension_id = str(uuid.uuid4())
            state.events = tuple(dict.fromkeys(events))
            state.registered_at = time.monotonic()
            self._by_id[state.extension_id] = state
            self._cond.notify_all()
            registration = Registration(name, state.extension_id, state.events,
                                        "accountId" in features, time.time())
        self._on_registered(registration)
        answer: dict[str, Any] = {
            "functionName": self._metadata.function_name,
            "functionVersion": self._metadata.function_version,
            "handler": self._metadata.handler,
        }
        if "accountId" in features:
            answer["accountId"] = self._metadata.account_id
        return json_response(200, answer, {HEADER_ID: registration.extension_id}, caller=name)

    def next_event(self, request: ApiRequest) -> ApiResponse:
        """Block until this extension's next event (no timeout, as in Lambda)."""
        with self._cond:
            state, failure = self._lookup(request)
            if failure is not None:
                return failure
            assert state is not None
            now = time.monotonic()
            state.waiting = True
            state.completed_seq = state.current_seq
            state.last_next_at = now
            if state.ready_at is None:
                state.ready_at = now
            self._cond.notify_all()
            while not state.queue and not state.retired and not self._closed:
                self._cond.wait()
            state.waiting = False
            if not state.queue:
                return error_response(500, "InternalServerError", "Internal Server Error",
                                      caller=state.name)
            seq, event = state.queue.popleft()
            state.current_seq = seq
            if event.get("eventType") == EVENT_SHUTDOWN:
                state.shutdown_delivered = True
            self._cond.notify_all()
        headers = {HEADER_EVENT_ID: str(uuid.uuid4())}
        body = json.dumps(event, separators=(",", ":")).encode()
        if event.get("eventType") == EVENT_SHUTDOWN:
            # AWS's emulator sends SHUTDOWN without a JSON content type; so does the sandbox,
            # to keep extensions honest about parsing the body regardless.
            headers["Content-Type"] = "text/plain; charset=utf-8"
        else:
            headers["Content-Type"] = "application/json"
        return ApiResponse(200, body, headers, caller=state.name)

    def _report_error(self, request: ApiRequest, endpoint: str) -> ApiResponse:
        with self._cond:
            state, failure = self._lookup(request)
            if failure is not None:
                return failure
            assert state is not None
            error_type = request.header(HEADER_ERROR_TYPE)
            if not error_type:
                return error_response(403, "Extension.MissingHeader",
                                      f"{HEADER_ERROR_TYPE} not found", caller=state.name)
            if endpoint == "init/error":
                if not self._registration_open:
                    return error_response(
                        403, "Extension.InvalidExtensionState",
                        f"State transition to InitError failed for extension {state.name}. "
                        "Error: init is over (use /extension/exit/error)", caller=state.name)
                state.init_error = error_type
            else:
                state.exit_error = error_type
            self._cond.notify_all()
        try:
            body: Any = json.loads(request.body) if request.body else None
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        self._on_error(ErrorRecord("extension", state.name, endpoint, error_type, body,
                                   time.time()))
        return json_response(202, {"status": "OK"}, caller=state.name)

    def init_error(self, request: ApiRequest) -> ApiResponse:
        return self._report_error(request, "init/error")

    def exit_error(self, request: ApiRequest) -> ApiResponse:
        return self._report_error(request, "exit/error")
