"""Reading a body the way Datadog's logs intake (``/api/v2/logs``) reads it, limits included.

A JSON array (or one object) of logs, UTF-8; at most 5 MB uncompressed, 1000 entries; each an
object whose reserved attributes (ddsource, ddtags, hostname, service, message, status) are
strings; ddtags comma-separated tags (``key:value``). A log above 1 MB is accepted but cut by
Datadog: here it is reported, since the extension cuts its entries below that itself.
"""

from __future__ import annotations

import json
from typing import Any

MAX_PAYLOAD_BYTES = 5_000_000
MAX_LOG_BYTES = 1_000_000
MAX_ENTRIES = 1000
RESERVED = ("ddsource", "ddtags", "hostname", "service", "message", "status")


class Refused(ValueError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.answer = json.dumps({"errors": [{"status": str(status), "detail": detail}]})


def read_logs(body: bytes) -> list[dict[str, Any]]:
    if len(body) > MAX_PAYLOAD_BYTES:
        raise Refused(413, f"payload of {len(body)} bytes, above 5MB")
    try:
        logs = json.loads(body.decode("utf-8"))
    except ValueError:
        raise Refused(400, "not JSON") from None
    if isinstance(logs, dict):
        logs = [logs]
    if not isinstance(logs, list) or not logs:
        raise Refused(400, "not an array of logs")
    if len(logs) > MAX_ENTRIES:
        raise Refused(400, f"{len(logs)} logs in one array, above 1000")
    for log in logs:
        if not isinstance(log, dict):
            raise Refused(400, "a log is not an object")
        for key in RESERVED:
            if key in log and not isinstance(log[key], str):
                raise Refused(400, f"{key} is not a string")
        if len(json.dumps(log, separators=(",", ":")).encode()) > MAX_LOG_BYTES:
            raise Refused(400, "a log above 1MB (Datadog would cut it)")
    return logs


def tags(log: dict[str, Any]) -> dict[str, str]:
    return dict(item.split(":", 1) for item in log["ddtags"].split(",") if item)
