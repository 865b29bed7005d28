"""What an entry carries beyond its record: the invocation's trace, and the one entry that says an
invocation timed out or crashed.

* ``trace(tracing)``: the X-Ray trace id and span id of an invocation, from the ``tracing`` of
  its INVOKE event (the main thread sees those) or of its ``platform.start``/``runtimeDone``.
* ``Alerts``: a timed-out, crashed or failed invocation is said so by Lambda up to three times
  (``platform.runtimeDone``, ``platform.report``, the SHUTDOWN event that resets the
  environment) and by none of them in the words people search for. The first of them makes one
  ``ERROR`` entry ("Task timed out after 3.00 seconds"); the others add nothing.
* ``ShutdownNotice``: how the main thread hands a SHUTDOWN's reason to the worker, through the
  inbox like a push, behind every push the listener took in before it stopped.
* ``extra_fields(text)``: ``HTTP_EXTRA_FIELDS`` parsed and checked (on the worker thread: ``json``
  is not imported before register).

Runs on the worker thread, except ``ShutdownNotice.make`` (the main thread, at SHUTDOWN).
"""

from __future__ import annotations

from ..lambda_api.events import REPORT, RUNTIME_DONE
from ..settings.names import HTTP_EXTRA_FIELDS
from ..settings.parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    Scalar = str | int | float | bool

# An X-Ray trace id is 35 characters (1-8 hex-24 hex), a segment id 16: anything much longer in
# a push is not one, and is not repeated into every entry.
_MAX_TRACE_ID = 64
_MAX_SPAN_ID = 32
_MAX_TRACING_VALUE = 256
NO_TRACE = ("", "")
# The statuses Lambda gives an invocation that did not end well.
FAILED = ("timeout", "error", "failure")
# SHUTDOWN reasons that end an invocation (spindown is the normal end of an environment).
SHUTDOWN_FAILED = ("timeout", "failure")
SHUTDOWN_NOTICE = "lambda-logs-http.shutdown"
SOURCE = "lambda-logs-http"
# Request ids an alert was written for, remembered (a report arrives during the next invocation;
# on Managed Instances several run at once).
_REMEMBERED = 64
# HTTP_EXTRA_FIELDS bounds: repeated in every entry, so kept small.
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_NAME_CHARS = 64
MAX_EXTRA_VALUE_CHARS = 256


def trace(tracing: object) -> tuple[str, str]:
    """``(trace_id, span_id)`` of a ``tracing`` member (``{"type": "X-Amzn-Trace-Id", "value":
    "Root=1-…;Parent=…;Sampled=1"}``): the ``Root`` as X-Ray writes it and the ``Parent``
    segment (the function's own code runs under it: ``_X_AMZN_TRACE_ID`` names it too);
    ``("", "")`` when there is none. A ``spanId`` stands in for a missing ``Parent``."""
    if not isinstance(tracing, dict):
        return NO_TRACE
    value = tracing.get("value")
    if not isinstance(value, str) or not value or len(value) > _MAX_TRACING_VALUE:
        return NO_TRACE
    trace_id = span_id = ""
    for part in value.split(";"):
        key, _, item = part.partition("=")
        key = key.strip()
        if key == "Root":
            trace_id = item.strip()
        elif key == "Parent":
            span_id = item.strip()
    if not span_id:
        span = tracing.get("spanId")
        span_id = span if isinstance(span, str) else ""
    if len(trace_id) > _MAX_TRACE_ID or not trace_id.isascii():
        trace_id = ""
    if len(span_id) > _MAX_SPAN_ID or not span_id.isascii():
        span_id = ""
    return trace_id, span_id


class ShutdownNotice(dict):  # type: ignore[type-arg]
    """A SHUTDOWN's reason on its way to the worker, shaped like an event. Its class is what
    marks it: no push can make one (``json`` makes plain dicts), so no push can forge it."""

    @classmethod
    def make(cls, reason: str, request_id: str, time: str) -> ShutdownNotice:
        return cls(
            time=time,
            type=SHUTDOWN_NOTICE,
            record={"shutdownReason": reason, "requestId": request_id},
        )


class Alert:
    """One synthetic entry's content: an ``ERROR`` that says how an invocation ended."""

    __slots__ = ("request_id", "message", "fields")

    def __init__(self, request_id: str, message: str, fields: dict[str, object]) -> None:
        self.request_id = request_id
        self.message = message
        self.fields = fields


class Alerts:
    """Decides which events make an alert: the first that says an invocation failed."""

    def __init__(self) -> None:
        self._alerted: dict[str, None] = {}
        # Requests Lambda said ended well: a SHUTDOWN that follows is not theirs to carry.
        self._succeeded: dict[str, None] = {}
        self._last_status = ""  # of the last alert made

    def from_event(self, event_type: str, record: Mapping[str, object]) -> Alert | None:
        """For ``platform.runtimeDone`` / ``platform.report`` whose status is not success."""
        status = record.get("status")
        request_id = record.get("requestId")
        request_id = request_id if isinstance(request_id, str) else ""
        if status not in FAILED:
            if status == "success" and request_id:
                _remember(self._succeeded, request_id)
            return None
        if not self._first(request_id):
            return None
        error_type = record.get("errorType")
        error_type = error_type if isinstance(error_type, str) else ""
        metrics = record.get("metrics")
        duration = _milliseconds(metrics.get("durationMs") if isinstance(metrics, dict) else None)
        self._last_status = str(status)
        message = _message(str(status), error_type, duration)
        fields: dict[str, object] = {
            "requestId": request_id, "status": status, "errorType": error_type,
            "durationMs": duration, "reportedBy": event_type, "source": SOURCE,
        }  # fmt: skip
        return Alert(request_id, _with_request(request_id, message), fields)

    def from_shutdown(self, record: Mapping[str, object]) -> Alert | None:
        """For a SHUTDOWN whose reason is ``timeout`` or ``failure``: the invocation in progress
        (``requestId``, "" when none was) ended with the environment."""
        reason = record.get("shutdownReason")
        if reason not in SHUTDOWN_FAILED:
            return None
        request_id = record.get("requestId")
        request_id = request_id if isinstance(request_id, str) else ""
        if request_id in self._succeeded:
            # The last invocation ended well (an extension failed after it, say): the
            # environment's end is said, but not put on that request.
            request_id = ""
        if not request_id and self._last_status == reason:
            # No invocation to put it on (Managed Instances send no INVOKE), and a record
            # already said why the environment ends: the alert is made.
            return None
        if not self._first(request_id):
            return None
        self._last_status = str(reason)
        if not request_id:  # no invocation in progress, or it had ended well
            message = f"Lambda shut the execution environment down ({reason})"
        elif reason == "timeout":
            message = "Task timed out: Lambda shut the execution environment down (timeout)"
        else:
            message = "Invocation failed: Lambda shut the execution environment down (failure)"
        fields: dict[str, object] = {
            "requestId": request_id, "status": reason, "errorType": "", "durationMs": None,
            "reportedBy": "SHUTDOWN", "source": SOURCE,
        }  # fmt: skip
        return Alert(request_id, _with_request(request_id, message), fields)

    def _first(self, request_id: str) -> bool:
        """Whether no alert was made for ``request_id`` yet (and remember it). An event naming
        no request always makes one: there is nothing to tell two of them apart by."""
        if not request_id:
            return True
        if request_id in self._alerted:
            return False
        _remember(self._alerted, request_id)
        return True


def _remember(requests: dict[str, None], request_id: str) -> None:
    if len(requests) >= _REMEMBERED and request_id not in requests:
        del requests[next(iter(requests))]
    requests[request_id] = None


ALERTING = (RUNTIME_DONE, REPORT)


def _milliseconds(value: object) -> float | None:
    """A duration as a finite number (a push's NaN, infinities or huge integers: None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return value if 0 <= number < 1e12 else None  # NaN fails both comparisons


def _message(status: str, error_type: str, duration_ms: float | None) -> str:
    if status == "timeout":
        if duration_ms is None:
            return "Task timed out"
        return f"Task timed out after {duration_ms / 1000:.2f} seconds"
    what = "Invocation failed" if status == "failure" else "Invocation error"
    text = f"{what} ({error_type})" if error_type else what
    return text + (f" after {duration_ms:.2f} ms" if duration_ms is not None else "")


def _with_request(request_id: str, message: str) -> str:
    return f"RequestId: {request_id} Error: {message}" if request_id else f"Error: {message}"


def extra_fields(text: str, reserved: frozenset[str] | set[str]) -> dict[str, Scalar]:
    """``HTTP_EXTRA_FIELDS``' JSON object, checked: at most ``MAX_EXTRA_FIELDS`` fields, names
    non-empty strings of at most ``MAX_EXTRA_NAME_CHARS`` that are not among ``reserved`` (the
    entry's own keys), values strings (at most ``MAX_EXTRA_VALUE_CHARS``), numbers or
    booleans. ``ConfigError`` naming the variable otherwise; ``{}`` for ""."""
    if not text.strip():
        return {}
    import json

    def refuse(why: str) -> ConfigError:
        return ConfigError(HTTP_EXTRA_FIELDS, why)

    def constant(name: str) -> object:
        raise refuse(f"{name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=constant)
    except ConfigError:
        raise
    except (ValueError, RecursionError) as exc:
        raise refuse(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
        raise refuse(f'must be a JSON object such as {{"env": "prod"}}, got {kind}')
    if len(value) > MAX_EXTRA_FIELDS:
        raise refuse(f"has {len(value)} fields; at most {MAX_EXTRA_FIELDS}")
    fields: dict[str, Scalar] = {}
    for name, item in value.items():
        if not name.strip():
            raise refuse("a field name is empty")
        if len(name) > MAX_EXTRA_NAME_CHARS:
            raise refuse(f"the field name {name[:20]!r}... is longer than {MAX_EXTRA_NAME_CHARS}")
        if name in reserved:
            raise refuse(f"{name!r} is a key every entry has already; choose another name")
        if isinstance(item, str):
            if len(item) > MAX_EXTRA_VALUE_CHARS:
                raise refuse(f"{name!r} is longer than {MAX_EXTRA_VALUE_CHARS} characters")
        elif isinstance(item, bool) or (isinstance(item, (int, float)) and abs(item) < 1e300):
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**53:
                raise refuse(f"{name!r}: integers beyond 2**53 are not exact in JSON readers")
        else:
            kind = "null" if item is None else type(item).__name__
            raise refuse(f"{name!r} must be a string, number or boolean, got {kind}")
        fields[name] = item
    return fields
