"""``platform.*`` Telemetry events rendered as the lines users know from CloudWatch.

``START RequestId: … Version: …``, ``END RequestId: …``, ``REPORT RequestId: … Duration: … ms``
and so on, so a log backend reads like the CloudWatch console. The structured record travels
along in the entry's ``record`` field, so dashboards can use the numbers without parsing text.
A status other than success makes the line ERROR; records lost by Lambda make it WARN.
"""

from __future__ import annotations

from ..lambda_api import events
from . import jsonsafe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Record = Mapping[str, object]


def render(event_type: str, record: object) -> tuple[str, str, str]:
    """``(level, message, request_id)`` for one platform event."""
    if not isinstance(record, dict):
        return "INFO", f"{event_type} {_compact(record)}", ""
    renderer = _RENDERERS.get(event_type)
    message = renderer(record) if renderer else f"{event_type} {_compact(record)}"
    request_id = record.get("requestId")
    return _level(event_type, record), message, request_id if isinstance(request_id, str) else ""


def _level(event_type: str, record: Record) -> str:
    if event_type == events.LOGS_DROPPED:
        return "WARN"
    status = record.get("status")
    if status is not None and status != "success":
        return "ERROR"
    if record.get("errorType"):
        return "ERROR"
    return "INFO"


def _status(record: Record) -> str:
    status = record.get("status")
    if status is None or status == "success":
        return ""
    error_type = record.get("errorType")
    return f"\tStatus: {status}" + (f"\tError Type: {error_type}" if error_type else "")


def _ms(value: object) -> str:
    if isinstance(value, (int, float)):
        try:
            return f"{value:.2f}"
        except (OverflowError, ValueError):  # an int beyond float's range
            pass
    return str(value)


def _metric(record: Record, name: str) -> object:
    metrics = record.get("metrics")
    return metrics.get(name) if isinstance(metrics, dict) else None


def _runtime_version(record: Record) -> str:
    line = f"Runtime Version: {record.get('runtimeVersion', '')}"
    arn = record.get("runtimeVersionArn")
    return line + (f"\tRuntime Version ARN: {arn}" if arn else "")


def _start(record: Record) -> str:
    return f"START RequestId: {record.get('requestId', '')} Version: {record.get('version', '')}"


def _runtime_done(record: Record) -> str:
    return f"END RequestId: {record.get('requestId', '')}" + _status(record)


def _report(record: Record) -> str:
    parts = [f"REPORT RequestId: {record.get('requestId', '')}"]
    # Lambda Managed Instances report only durationMs: show the metrics that are present.
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        for label, metric, unit, fractional in _REPORT_METRICS:
            value = metrics.get(metric)
            if value is not None:
                parts.append(f"{label}: {_ms(value) if fractional else value} {unit}")
    return "\t".join(parts) + _status(record)


# (label, metric, unit, shown with two decimals): billed durations are whole milliseconds.
_REPORT_METRICS = (
    ("Duration", "durationMs", "ms", True),
    ("Billed Duration", "billedDurationMs", "ms", False),
    ("Memory Size", "memorySizeMB", "MB", False),
    ("Max Memory Used", "maxMemoryUsedMB", "MB", False),
    ("Init Duration", "initDurationMs", "ms", True),
    # SnapStart: the restore is billed with the first invocation after it.
    ("Restore Duration", "restoreDurationMs", "ms", True),
    ("Billed Restore Duration", "billedRestoreDurationMs", "ms", False),
)


def _init_start(record: Record) -> str:
    return f"INIT_START {_runtime_version(record)}"


def _init_runtime_done(record: Record) -> str:
    return f"INIT_RUNTIME_DONE Phase: {record.get('phase', 'init')}" + _status(record)


def _init_report(record: Record) -> str:
    return (
        f"INIT_REPORT Init Duration: {_ms(_metric(record, 'durationMs'))} ms"
        f"\tPhase: {record.get('phase', 'init')}" + _status(record)
    )


def _restore_start(record: Record) -> str:
    return f"RESTORE_START {_runtime_version(record)}"


def _restore_runtime_done(record: Record) -> str:
    return "RESTORE_RUNTIME_DONE" + _status(record)


def _restore_report(record: Record) -> str:
    return f"RESTORE_REPORT Restore Duration: {_ms(_metric(record, 'durationMs'))} ms" + _status(
        record
    )


def _extension(record: Record) -> str:
    events = record.get("events")
    listed = ", ".join(map(str, events)) if isinstance(events, list) else ""
    line = f"EXTENSION\tName: {record.get('name', '')}\tState: {record.get('state', '')}"
    error_type = record.get("errorType")
    return line + f"\tEvents: [{listed}]" + (f"\tError Type: {error_type}" if error_type else "")


def _subscription(record: Record) -> str:
    types = record.get("types")
    listed = ", ".join(map(str, types)) if isinstance(types, list) else ""
    return (
        f"TELEMETRY\tName: {record.get('name', '')}\tState: {record.get('state', '')}"
        f"\tTypes: [{listed}]"
    )


def _logs_dropped(record: Record) -> str:
    return (
        f"LOGS_DROPPED Lambda dropped {record.get('droppedRecords', '?')} records "
        f"({record.get('droppedBytes', '?')} bytes): {record.get('reason', '')}"
    )


def _compact(value: object) -> str:
    return jsonsafe.dumps(value)


_RENDERERS: dict[str, Callable[[Record], str]] = {
    events.INIT_START: _init_start,
    events.INIT_RUNTIME_DONE: _init_runtime_done,
    events.INIT_REPORT: _init_report,
    events.START: _start,
    events.RUNTIME_DONE: _runtime_done,
    events.REPORT: _report,
    events.RESTORE_START: _restore_start,
    events.RESTORE_RUNTIME_DONE: _restore_runtime_done,
    events.RESTORE_REPORT: _restore_report,
    events.EXTENSION_STATE: _extension,
    events.TELEMETRY_SUBSCRIPTION: _subscription,
    events.LOGS_DROPPED: _logs_dropped,
}
