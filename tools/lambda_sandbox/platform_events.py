"""Builders for the ``record`` of each ``platform.*`` telemetry event, in Lambda's shapes.

Shapes follow the Telemetry API schema reference and captures of real events (see
shared/lambda-api.md); optional keys are left out rather than set to ``null``.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

from .timeutil import iso

LOGS_DROPPED_REASON = (
    "Consumer seems to have fallen behind as it has not acknowledged receipt of logs."
)


@dataclass(frozen=True)
class Tracing:
    """An X-Ray trace context: ``value`` is the ``X-Amzn-Trace-Id`` header value."""

    value: str
    span_id: str

    @classmethod
    def new(cls) -> Tracing:
        root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        parent = secrets.token_hex(8)
        return cls(f"Root={root};Parent={parent};Sampled=1", secrets.token_hex(8))

    def for_extension(self) -> dict[str, str]:
        """The ``tracing`` member of an INVOKE event."""
        return {"type": "X-Amzn-Trace-Id", "value": self.value}

    def for_platform(self) -> dict[str, str]:
        """The ``tracing`` member of ``platform.start`` / ``platform.runtimeDone``."""
        return {"spanId": self.span_id, "type": "X-Amzn-Trace-Id", "value": self.value}


def _with_error(record: dict[str, Any], status: str, error_type: str | None) -> dict[str, Any]:
    record["status"] = status
    if status != "success" and error_type:
        record["errorType"] = error_type
    return record


def init_start(*, initialization_type: str, phase: str, runtime_version: str,
               runtime_version_arn: str, function_name: str,
               function_version: str) -> dict[str, Any]:
    return {
        "initializationType": initialization_type,
        "phase": phase,
        "runtimeVersion": runtime_version,
        "runtimeVersionArn": runtime_version_arn,
        "functionName": function_name,
        "functionVersion": function_version,
    }


def init_runtime_done(*, initialization_type: str, phase: str, status: str,
                      error_type: str | None = None) -> dict[str, Any]:
    return _with_error({"initializationType": initialization_type, "phase": phase},
                       status, error_type)


def init_report(*, initialization_type: str, phase: str, status: str, duration_ms: float,
                error_type: str | None = None) -> dict[str, Any]:
    record = {
        "initializationType": initialization_type,
        "phase": phase,
        "metrics": {"durationMs": round(duration_ms, 3)},
    }
    return _with_error(record, status, error_type)


def start(*, request_id: str, version: str, tracing: Tracing,
          tenant_id: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"requestId": request_id, "version": version,
                              "tracing": tracing.for_platform()}
    if tenant_id is not None:  # tenant isolation: start and report name the tenant
        record["tenantId"] = tenant_id
    return record


def runtime_done(*, request_id: str, status: str, error_type: str | None, tracing: Tracing,
                 duration_ms: float, produced_bytes: int | None, response_start: float | None,
                 response_latency_ms: float | None,
                 response_duration_ms: float | None) -> dict[str, Any]:
    """``response_start`` is the epoch time the response began; spans only exist with one."""
    record: dict[str, Any] = {"requestId": request_id}
    _with_error(record, status, error_type)
    record["tracing"] = tracing.for_platform()
    if response_start is not None and response_latency_ms is not None:
        invoke_start = response_start - response_latency_ms / 1000.0
        record["spans"] = [
            {"name": "responseLatency", "start": iso(invoke_start),
             "durationMs": round(response_latency_ms, 3)},
            {"name": "responseDuration", "start": iso(response_start),
             "durationMs": round(response_duration_ms or 0.0, 3)},
        ]
    metrics: dict[str, Any] = {"durationMs": round(duration_ms, 3)}
    if produced_bytes is not None:
        metrics["producedBytes"] = produced_bytes
    record["metrics"] = metrics
    return record


def report(*, request_id: str, status: str, error_type: str | None, duration_ms: float,
           memory_size_mb: int, max_memory_used_mb: int,
           init_duration_ms: float | None,
           restore_duration_ms: float | None = None,
           tenant_id: str | None = None) -> dict[str, Any]:
    """The first report after a SnapStart restore carries the restore's duration (and its
    billed part) instead of an init duration."""
    metrics: dict[str, Any] = {
        "durationMs": round(duration_ms, 3),
        "billedDurationMs": max(1, math.ceil(duration_ms)),
        "memorySizeMB": memory_size_mb,
        "maxMemoryUsedMB": max_memory_used_mb,
    }
    if init_duration_ms is not None:
        metrics["initDurationMs"] = round(init_duration_ms, 3)
    if restore_duration_ms is not None:
        metrics["restoreDurationMs"] = round(restore_duration_ms, 3)
        metrics["billedRestoreDurationMs"] = max(1, math.ceil(restore_duration_ms))
    record: dict[str, Any] = {"requestId": request_id, "metrics": metrics}
    if tenant_id is not None:
        record["tenantId"] = tenant_id
    return _with_error(record, status, error_type)


def restore_start(*, runtime_version: str, runtime_version_arn: str, function_name: str,
                  function_version: str) -> dict[str, Any]:
    return {
        "runtimeVersion": runtime_version,
        "runtimeVersionArn": runtime_version_arn,
        "functionName": function_name,
        "functionVersion": function_version,
    }


def restore_runtime_done(*, status: str, error_type: str | None = None) -> dict[str, Any]:
    return _with_error({}, status, error_type)


def restore_report(*, status: str, duration_ms: float,
                   error_type: str | None = None) -> dict[str, Any]:
    return _with_error({"metrics": {"durationMs": round(duration_ms, 3)}}, status, error_type)


def extension(*, name: str, state: str, events: list[str],
              error_type: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "state": state, "events": list(events)}
    if error_type:
        record["errorType"] = error_type
    return record


def telemetry_subscription(*, name: str, state: str, types: list[str]) -> dict[str, Any]:
    return {"name": name, "state": state, "types": list(types)}


def logs_dropped(*, dropped_bytes: int, dropped_records: int,
                 reason: str = LOGS_DROPPED_REASON) -> dict[str, Any]:
    return {"droppedBytes": dropped_bytes, "droppedRecords": dropped_records, "reason": reason}


def runtime_version(python: str) -> str:
    """A ``runtimeVersion`` in Lambda's ``python:3.12.v30`` shape for the given interpreter
    (its version is known without running it only when it is this interpreter or is named
    like ``python3.12``)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"python:{sys.version_info.major}.{sys.version_info.minor}.sandbox"
    digits = os.path.basename(python).replace("python", "")
    return f"python:{digits}.sandbox" if "." in digits else "python:sandbox"
