"""The Runtime API (``/2018-06-01/runtime/...``): invocations handed to the runtime process.

Headers and answers follow AWS's Runtime Interface Emulator (what awslambdaric expects):
``/invocation/next`` answers 200 with ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``,
``-Invoked-Function-Arn``, ``-Trace-Id`` and, when given, ``-Client-Context`` and
``-Cognito-Identity``; ``/response``, ``/error`` and ``/init/error`` answer 202
``{"status":"OK"}``; an unknown request id gets 400 ``InvalidRequestID``, a call out of turn 403
``InvalidStateTransition``, a response over 6 MB 413 ``RequestEntityTooLarge``.

SnapStart (what awslambdaric does with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): after its
init and before-snapshot hooks the runtime calls ``GET /restore/next``, which ends init and
answers once the environment is restored (:meth:`RuntimeAPI.release_restore`); it then runs its
after-restore hooks and calls ``/invocation/next`` (or ``POST /restore/error``).

State is guarded by the sandbox's shared condition variable, like the Extensions API's.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .platform_events import Tracing
from .results import ErrorRecord
from .server import ApiRequest, ApiResponse, error_response, json_response

HEADER_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


@dataclass
class Invocation:
    """One invoke, from submission to the runtime's answer. Times are ``time.monotonic()``."""

    request_id: str
    payload: bytes
    deadline_ms: int
    tracing: Tracing
    function_arn: str
    client_context: str | None = None
    cognito_identity: str | None = None
    created_at: float = 0.0
    dispatched_at: float | None = None
    finished_at: float | None = None
    response: bytes | None = None
    error: Any = None
    error_type: str | None = None
    tenant_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class RuntimeAPI:
    """The runtime's side of the sandbox: pending invocations and the four handlers."""

    def __init__(self, cond: threading.Condition,
                 on_error: Callable[[ErrorRecord], None]) -> None:
        self._cond = cond
        self._on_error = on_error
        self._pending: collections.deque[Invocation] = collections.deque()
        self._in_flight: dict[str, Invocation] = {}
        self._generation = 0
        self._closed = False
        self.in_init = False
        self.ready_at: float | None = None
        self.waiting = 0
        self.init_error: dict[str, Any] | None = None
        self.restored = False
        self.restore_error: dict[str, Any] | None = None

    # ----------------------------------------------------------------- lifecycle side
    # Callers hold the shared condition.

    def reset(self) -> None:
        """A new runtime process: forget the old one's state and wake its blocked calls."""
        self._generation += 1
        self._pending.clear()
        self._in_flight.clear()
        self.ready_at = None
        self.waiting = 0
        self.init_error = None
        self.restored = False
        self.restore_error = None
        self._cond.notify_all()

    def release_restore(self) -> None:
        """The environment is restored: answer the runtime's ``/restore/next``."""
        self.restored = True
        self._cond.notify_all()

    def submit(self, invocation: Invocation) -> None:
        self._pending.append(invocation)
        self._cond.notify_all()

    def forget(self, invocation: Invocation) -> None:
        """Stop accepting answers for ``invocation`` (it timed out or was abandoned)."""
        self._in_flight.pop(invocation.request_id, None)
        try:
            self._pending.remove(invocation)
        except ValueError:
            pass

    def close(self) -> None:
        self._closed = True
        self._cond.notify_all()

    # ----------------------------------------------------------------- HTTP side

    def next_invocation(self, request: ApiRequest) -> ApiResponse:
        with self._cond:
            generation = self._generation
            if self.ready_at is None:
                self.ready_at = time.monotonic()
            self.waiting += 1
            self._cond.notify_all()
            try:
                while (not self._pending and generation == self._generation
                       and not self._closed):
                    self._cond.wait()
            finally:
                if generation == self._generation:
                    self.waiting -= 1
            if generation != self._generation or not self._pending:
                return error_response(500, "InternalServerError", "Internal Server Error",
                                      caller="runtime")
            invocation = self._pending.popleft()
            invocation.dispatched_at = time.monotonic()
            self._in_flight[invocation.request_id] = invocation
            self._cond.notify_all()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
            "Lambda-Runtime-Trace-Id": invocation.tracing.value,
        }
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        if invocation.cognito_identity:
            headers["Lambda-Runtime-Cognito-Identity"] = invocation.cognito_identity
        if invocation.tenant_id:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = invocation.tenant_id
        return ApiResponse(200, invocation.payload, headers, caller="runtime")

    def restore_next(self, request: ApiRequest) -> ApiResponse:
        """SnapStart: init is done (take the snapshot); answer once restored."""
        with self._cond:
            generation = self._generation
            if self.ready_at is None:
                self.ready_at = time.monotonic()
            self._cond.notify_all()
            while not self.restored and generation == self._generation and not self._closed:
                self._cond.wait()
            if generation != self._generation or not self.restored:
                return error_response(500, "InternalServerError", "Internal Server Error",
                                      caller="runtime")
        return json_response(200, {}, caller="runtime")

    def post_restore_error(self, request: ApiRequest) -> ApiResponse:
        """SnapStart: the runtime's after-restore hooks failed."""
        body, error_type = self._error_document(request)
        with self._cond:
            self.restore_error = {"errorType": error_type, "body": body}
            self._cond.notify_all()
        self._on_error(ErrorRecord("runtime", "function", "restore/error", error_type, body,
                                   time.time()))
        return json_response(202, {"status": "OK"}, caller="runtime")

    def _in_flight_for(self, request: ApiRequest) -> tuple[Invocation | None,
                                                           ApiResponse | None]:
        invocation = self._in_flight.get(request.params.get("request_id", ""))
        if invocation is not None and not invocation.finished:
            return invocation, None
        if not any(not i.finished for i in self._in_flight.values()):
            return None, error_response(
                403, "InvalidStateTransition",
                "State transition from Ready to InvocationResponse failed for runtime. "
                "Error: no invocation in progress", caller="runtime")
        return None, error_response(400, "InvalidRequestID", "Invalid request ID",
                                    caller="runtime")

    def _end_invocation(self, request: ApiRequest, *, response: bytes | None = None,
                        error: Any = None, error_type: str = "") -> ApiResponse | None:
        """Record how the in-flight invocation ended (its response, or an error); returns the
        error answer when no invocation is in flight for this request, else None."""
        with self._cond:
            invocation, failure = self._in_flight_for(request)
            if failure is not None:
                return failure
            assert invocation is not None
            invocation.finished_at = time.monotonic()
            if error is not None:
                invocation.error = error
                invocation.error_type = error_type
            else:
                invocation.response = response
            self._cond.notify_all()
        return None

    def response(self, request: ApiRequest) -> ApiResponse:
        if len(request.body) > MAX_RESPONSE_BYTES:
            failure = self._end_invocation(request, error={
                "errorMessage": "Response payload size exceeded maximum allowed payload "
                                f"size ({MAX_RESPONSE_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }, error_type="Function.ResponseSizeTooLarge")
            return failure or error_response(
                413, "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                caller="runtime")
        failure = self._end_invocation(request, response=request.body)
        return failure or json_response(202, {"status": "OK"}, caller="runtime")

    @staticmethod
    def _error_document(request: ApiRequest) -> tuple[Any, str]:
        try:
            body: Any = json.loads(request.body) if request.body else {}
        except ValueError:
            body = {"errorMessage": request.body.decode("utf-8", "replace")}
        error_type = request.header(HEADER_ERROR_TYPE)
        if not error_type and isinstance(body, dict):
            error_type = str(body.get("errorType") or "")
        return body, error_type or "Runtime.Unknown"

    def error(self, request: ApiRequest) -> ApiResponse:
        body, error_type = self._error_document(request)
        failure = self._end_invocation(request, error=body, error_type=error_type)
        if failure is not None:
            return failure
        self._on_error(ErrorRecord("runtime", "function", "invocation/error", error_type, body,
                                   time.time()))
        return json_response(202, {"status": "OK"}, caller="runtime")

    def post_init_error(self, request: ApiRequest) -> ApiResponse:
        body, error_type = self._error_document(request)
        with self._cond:
            if not self.in_init or self.init_error is not None:
                return error_response(
                    403, "InvalidStateTransition",
                    "State transition to InitError failed for runtime. Error: not in init",
                    caller="runtime")
            self.init_error = {"errorType": error_type, "body": body}
            self._cond.notify_all()
        self._on_error(ErrorRecord("runtime", "function", "init/error", error_type, body,
                                   time.time()))
        return json_response(202, {"status": "OK"}, caller="runtime")
