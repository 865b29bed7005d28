from __future__ import annotations

import pytest

from lambda_logs_http.records.platform_events import render

RID = "459921b5-681c-4a96-beb0-81e0aa586026"


@pytest.mark.parametrize(
    ("event_type", "record", "level", "message"),
    [
        ("platform.start", {"requestId": RID, "version": "$LATEST"}, "INFO",
         f"START RequestId: {RID} Version: $LATEST"),
        ("platform.runtimeDone", {"requestId": RID, "status": "success"}, "INFO",
         f"END RequestId: {RID}"),
        ("platform.runtimeDone", {"requestId": RID, "status": "timeout"}, "ERROR",
         f"END RequestId: {RID}\tStatus: timeout"),
        ("platform.runtimeDone", {"requestId": RID, "status": "error", "errorType": "Runtime.X"},
         "ERROR", f"END RequestId: {RID}\tStatus: error\tError Type: Runtime.X"),
        ("platform.report", {"requestId": RID, "status": "success", "metrics": {
            "durationMs": 2599.4, "billedDurationMs": 2600, "memorySizeMB": 128,
            "maxMemoryUsedMB": 94, "initDurationMs": 549.04}}, "INFO",
         f"REPORT RequestId: {RID}\tDuration: 2599.40 ms\tBilled Duration: 2600 ms\t"
         "Memory Size: 128 MB\tMax Memory Used: 94 MB\tInit Duration: 549.04 ms"),
        ("platform.report", {"requestId": RID, "status": "failure", "metrics": {
            "durationMs": 1, "billedDurationMs": 1, "memorySizeMB": 128, "maxMemoryUsedMB": 9}},
         "ERROR", f"REPORT RequestId: {RID}\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"
         "Memory Size: 128 MB\tMax Memory Used: 9 MB\tStatus: failure"),
        # Lambda Managed Instances report durationMs only
        ("platform.report", {"requestId": RID, "status": "success", "metrics": {"durationMs": 3.25}},
         "INFO", f"REPORT RequestId: {RID}\tDuration: 3.25 ms"),
        ("platform.initStart", {"runtimeVersion": "python:3.12.v30", "phase": "init"}, "INFO",
         "INIT_START Runtime Version: python:3.12.v30"),
        ("platform.initReport", {"phase": "init", "status": "success",
                                 "metrics": {"durationMs": 12.5}}, "INFO",
         "INIT_REPORT Init Duration: 12.50 ms\tPhase: init"),
        ("platform.logsDropped", {"droppedBytes": 12345, "droppedRecords": 123, "reason": "slow"},
         "WARN", "LOGS_DROPPED Lambda dropped 123 records (12345 bytes): slow"),
        ("platform.extension", {"name": "x", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]},
         "INFO", "EXTENSION\tName: x\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"),
        ("platform.telemetrySubscription", {"name": "x", "state": "Subscribed",
                                            "types": ["function"]}, "INFO",
         "TELEMETRY\tName: x\tState: Subscribed\tTypes: [function]"),
        # SnapStart, as CloudWatch shows it
        ("platform.restoreStart", {"runtimeVersion": "python:3.12.v30",
                                   "runtimeVersionArn": "arn:aws:lambda:eu-west-1::runtime:x"},
         "INFO", "RESTORE_START Runtime Version: python:3.12.v30\t"
         "Runtime Version ARN: arn:aws:lambda:eu-west-1::runtime:x"),
        ("platform.restoreRuntimeDone", {"status": "success"}, "INFO", "RESTORE_RUNTIME_DONE"),
        ("platform.restoreRuntimeDone", {"status": "failure", "errorType": "Runtime.X"}, "ERROR",
         "RESTORE_RUNTIME_DONE\tStatus: failure\tError Type: Runtime.X"),
        ("platform.restoreReport", {"status": "success", "metrics": {"durationMs": 405.981}},
         "INFO", "RESTORE_REPORT Restore Duration: 405.98 ms"),
        ("platform.restoreReport", {"status": "timeout", "metrics": {"durationMs": 10000}},
         "ERROR", "RESTORE_REPORT Restore Duration: 10000.00 ms\tStatus: timeout"),
        ("platform.report", {"requestId": RID, "status": "success", "metrics": {
            "durationMs": 2.41, "billedDurationMs": 3, "memorySizeMB": 128, "maxMemoryUsedMB": 71,
            "restoreDurationMs": 316.54, "billedRestoreDurationMs": 172}}, "INFO",
         f"REPORT RequestId: {RID}\tDuration: 2.41 ms\tBilled Duration: 3 ms\t"
         "Memory Size: 128 MB\tMax Memory Used: 71 MB\tRestore Duration: 316.54 ms\t"
         "Billed Restore Duration: 172 ms"),
        ("platform.somethingNew", {"a": 1}, "INFO", 'platform.somethingNew {"a":1}'),
        ("platform.start", "not an object", "INFO", 'platform.start "not an object"'),
    ],
)
def test_render(event_type: str, record: object, level: str, message: str) -> None:
    rendered_level, rendered, _ = render(event_type, record)
    assert (rendered_level, rendered) == (level, message)


def test_request_id_is_returned() -> None:
    assert render("platform.start", {"requestId": RID})[2] == RID
    assert render("platform.initStart", {})[2] == ""
