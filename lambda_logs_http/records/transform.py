"""One Telemetry API event in, one encoded payload entry out.

An entry is built as JSON text directly: the fields that are the same for every record (function
name, version, memory, region, architecture) are encoded once, and the per-record strings go
through the C string encoder. That is several times faster than building a dict and dumping it,
and this runs once per log line. Output is ASCII-only JSON (non-ASCII escaped), so any text —
including the lone surrogates ``json.loads`` lets through — always encodes.
"""

from __future__ import annotations

import json
import os
from json.encoder import encode_basestring_ascii as _quote

from .. import log
from ..lambda_api.events import EXTENSION, FUNCTION, RUNTIME_DONE, START, UNKNOWN_PLATFORM
from . import levels, platform_events
from .timestamps import utc_now_iso

SOURCE = "lambda"
_OWN_LINE_PREFIX = log.PREFIX


def architecture(machine: str | None = None) -> str:
    """``x86_64`` or ``arm64`` (the names Lambda uses), from the kernel's machine name."""
    machine = machine or os.uname().machine
    return "arm64" if machine in ("aarch64", "arm64", "armv8l") else machine


class EntryContext:
    """The fields every entry repeats: where the logs come from."""

    __slots__ = (
        "function_name", "function_version", "function_memory_size", "aws_region", "architecture",
    )  # fmt: skip

    def __init__(
        self,
        function_name: str,
        function_version: str,
        function_memory_size: int | None,
        aws_region: str,
        architecture: str,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.function_memory_size = function_memory_size
        self.aws_region = aws_region
        self.architecture = architecture


class Transformer:
    """Turns Telemetry events into payload entries (JSON text, one per event)."""

    def __init__(self, context: EntryContext, attribute_requests: bool = True) -> None:
        """``attribute_requests``: give function lines that name no request the id of the
        invocation in progress. Right on on-demand Lambda, which runs one invocation at a time
        and sends ``platform.start`` before and ``platform.runtimeDone`` after its output; wrong
        on Managed Instances, where invocations overlap (pass False there)."""
        self._attribute_requests = attribute_requests
        self._current_request_id = ""
        self._context_json = (
            f',"source":{_quote(SOURCE)}'
            f',"function_name":{_quote(context.function_name)}'
            f',"function_version":{_quote(context.function_version)}'
            f',"function_memory_size":{json.dumps(context.function_memory_size)}'
            f',"aws_region":{_quote(context.aws_region)}'
            f',"architecture":{_quote(context.architecture)}'
        )
        self._dump = json.JSONEncoder(separators=(",", ":"), default=str).encode

    def encode(self, event: dict[str, object]) -> str | None:
        """The entry for ``event`` as JSON, or None for events that are not forwarded.

        Skipped: the extension's own ``[EXTENSION]`` lines, which come back to us as
        ``extension`` records (forwarding them would let every debug line cause another).
        """
        event_type = event.get("type")
        record = event.get("record")
        if event_type in (FUNCTION, EXTENSION):
            log_type = event_type
            if type(record) is str:
                if log_type == EXTENSION and record.startswith(_OWN_LINE_PREFIX):
                    return None
                level, message, request_id, fields = levels.parse_text(record)
            elif isinstance(record, dict):
                level, message, request_id, fields = levels.parse_fields(record)
            else:
                level, message, request_id, fields = (
                    levels.DEFAULT_LEVEL, self._dump(record), "", None,
                )  # fmt: skip
            if not request_id and log_type == FUNCTION:
                request_id = self._current_request_id
        else:
            log_type = "platform"
            name = event_type if isinstance(event_type, str) else UNKNOWN_PLATFORM
            level, message, request_id = platform_events.render(name, record)
            fields = record if isinstance(record, dict) else None
            if self._attribute_requests:
                if name == START:
                    self._current_request_id = request_id
                elif name == RUNTIME_DONE:
                    self._current_request_id = ""
        timestamp = event.get("time")
        if not isinstance(timestamp, str):
            timestamp = utc_now_iso()
        entry = (
            f'{{"timestamp":{_quote(timestamp)},"level":"{level}","message":{_quote(message)}'
            f'{self._context_json},"log_type":"{log_type}"'
        )
        if request_id:
            entry += f',"request_id":{_quote(request_id)}'
        if fields is not None:
            entry += f',"record":{self._dump(fields)}'
        return entry + "}"

    def drop_report(self, reason: str, records: int) -> str:
        """An entry telling the receiver that ``records`` were lost, and why.

        Shaped like Lambda's own ``platform.logsDropped`` report so one alert can watch both.
        """
        fields = {"droppedRecords": records, "reason": reason, "source": "lambda-logs-http"}
        message = f"LOGS_DROPPED lambda-logs-http dropped {records} records: {reason}"
        return (
            f'{{"timestamp":"{utc_now_iso()}","level":"WARN","message":{_quote(message)}'
            f'{self._context_json},"log_type":"extension","record":{self._dump(fields)}}}'
        )
