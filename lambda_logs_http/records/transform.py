"""One Telemetry API event in, one encoded payload entry out.

An entry is built as JSON text directly: the fields that are the same for every record (function
name, version, memory, region, architecture) are encoded once, and the per-record strings go
through the C string encoder. That is several times faster than building a dict and dumping it,
and this runs once per log line. Output is ASCII-only JSON (non-ASCII escaped), so any text —
including the lone surrogates ``json.loads`` lets through — always encodes.

Every event encodes, whatever it holds: when the fast path refuses a value (nested too deep for
the C encoder, NaN or an infinity, an integer too long for decimal text, a key that is not a
string), the event is encoded again from ``jsonsafe.sanitize``'s copy of it, which always
encodes. A record nested deeper than ``jsonsafe.MAX_DEPTH`` that the C encoder did take is
capped the same way, since receivers' parsers are not as patient. An event that still fails
comes back as ``UNENCODABLE``, for the caller to count; it never raises, so it never takes the
rest of its push with it.
"""

from __future__ import annotations

import json
import os
from json.encoder import encode_basestring_ascii as _quote

from .. import log
from ..lambda_api.events import EXTENSION, FUNCTION, RUNTIME_DONE, START, UNKNOWN_PLATFORM
from . import jsonsafe, levels, platform_events
from .timestamps import utc_now_iso

SOURCE = "lambda"
_OWN_LINE_PREFIX = log.PREFIX
UNENCODABLE = ""
"""What ``encode`` returns for an event that could not be encoded at all: the caller counts it
as dropped (reason ``UNENCODABLE_REASON``). ``None`` means skipped on purpose."""
UNENCODABLE_REASON = "unencodable"
TENANT_KEY = "tenantId"
# Request id -> tenant id, for the invocations still producing entries (a report arrives during
# the next invocation; on Managed Instances several run at once).
_MAX_TENANTS = 64
_MAX_DEPTH = jsonsafe.MAX_DEPTH
# Built once: a tuple of two globals in the test would be built for every line. A tuple, not a
# set: a hostile push's "type" may be unhashable.
_LOG_TYPES = (FUNCTION, EXTENSION)


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
        # allow_nan=False: NaN and the infinities are not JSON; they make the fast path refuse,
        # and the sanitized retry writes them as strings. No circular check: values come from
        # json.loads (a cycle would end in RecursionError, and the retry handles it too).
        self._dump = json.JSONEncoder(
            separators=(",", ":"), allow_nan=False, check_circular=False, default=str
        ).encode
        self._tenants: dict[str, str] = {}
        self._warned_unencodable = False

    def encode(self, event: dict[str, object], _sanitized: bool = False) -> str | None:
        """The entry for ``event`` as JSON, None for events that are not forwarded, or
        ``UNENCODABLE``. Never raises.

        Skipped: the extension's own ``[EXTENSION]`` lines, which come back to us as
        ``extension`` records (forwarding them would let every debug line cause another).
        """
        try:
            event_type = event.get("type")
            record = event.get("record")
            if event_type in _LOG_TYPES:
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
            # Tenant isolation: the record's own tenantId, else its request's. A text line
            # with no tenant seen yet pays one check more than before tenants existed.
            if fields is not None:
                if self._tenants or TENANT_KEY in fields:
                    tenant_id = self._tenant(request_id, fields.get(TENANT_KEY))
                    if tenant_id:
                        entry += f',"tenant_id":{_quote(tenant_id)}'
                dumped = self._dump(fields)
                # Deeper than receivers parse? A flat record (most JSON-format lines) is cleared
                # by two scans at memchr speed; a nested one by two counts at C speed.
                if (dumped.find("{", 1) > 0 or "[" in dumped) and (
                    dumped.count("{") + dumped.count("[") > _MAX_DEPTH
                ):
                    dumped = jsonsafe.capped(dumped, fields)
                entry += f',"record":{dumped}'
            elif self._tenants and request_id:
                tenant_id = self._tenants.get(request_id)
                if tenant_id:
                    entry += f',"tenant_id":{_quote(tenant_id)}'
            return entry + "}"
        except Exception as exc:
            if _sanitized:
                return self._unencodable(exc)
        # Rare: a value the fast path refuses. Encode again, from a copy of the event that
        # always encodes and with the careful encoder for what parsing its text produces (a
        # text line holding JSON is parsed in there). One thread uses a transformer: swapping
        # the encoder for one call is safe.
        fast = self._dump
        self._dump = jsonsafe.dumps
        try:
            clean = jsonsafe.sanitize(event)
            if not isinstance(clean, dict):
                raise TypeError("an event that is not an object")
            return self.encode(clean, True)
        except Exception as exc:
            return self._unencodable(exc)
        finally:
            self._dump = fast

    def _tenant(self, request_id: str, tenant_id: object) -> str:
        """The tenant of this entry: its own ``tenantId`` (remembered for its request), else
        the one its request was seen with (tenant isolation: ``platform.start`` names it)."""
        if isinstance(tenant_id, str) and tenant_id:
            if request_id and self._tenants.get(request_id) != tenant_id:
                if len(self._tenants) >= _MAX_TENANTS:
                    del self._tenants[next(iter(self._tenants))]
                self._tenants[request_id] = tenant_id
            return tenant_id
        return self._tenants.get(request_id, "") if request_id else ""

    def _unencodable(self, exc: Exception) -> str:
        if not self._warned_unencodable:
            self._warned_unencodable = True
            # The type only: the text of the error could quote the record.
            log.warning(
                f"a record could not be encoded ({type(exc).__name__}): dropped and counted as "
                f"{UNENCODABLE_REASON} (later ones are counted in the shutdown summary)"
            )
        return UNENCODABLE

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
