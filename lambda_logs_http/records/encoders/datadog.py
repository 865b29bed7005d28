"""``HTTP_FORMAT=datadog``: the Datadog logs intake (v2, ``/api/v2/logs``), a JSON array of logs.

Each log has Datadog's reserved attributes — ``ddsource`` (``lambda``), ``ddtags``,
``hostname`` (the function's name), ``service`` (``OTEL_SERVICE_NAME`` or the function's name),
``message``, ``status`` (Datadog's words: ``debug``, ``info``, ``warning``, ``error``,
``critical``) and ``timestamp`` (epoch milliseconds) — then ``lambda`` (the log type and the
invocation's request, tenant, trace id and cold start) and, for a structured record (a JSON log
line's object, a platform event's), ``record`` as an object: attributes, never a string.

``ddtags`` names the function the way Datadog's own Lambda integration does (``functionname``,
``executedversion``, ``region``, ``account_id``, ``memorysize``, ``architecture``), then
``HTTP_EXTRA_FIELDS`` as ``name:value`` tags; a character a tag may not hold (a comma would
start another tag) becomes ``_``.

Datadog's limits per request (its API reference, "Send logs"): 5 MB uncompressed, 1000 logs,
1 MB per log. The batch limits are clamped to them and an entry is cut below 1 MB (Datadog would
cut it itself, but after counting it against the request's 5 MB). The key goes in the
``DD-API-KEY`` header: ``HTTP_AUTH_TYPE=apikey`` with ``HTTP_AUTH_HEADER_NAME=DD-API-KEY``.
"""

from __future__ import annotations

import json

from .base import Encoder, check_object, epoch_seconds_ms, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

SOURCE = "lambda"
MAX_BATCH_BYTES = 5_000_000
MAX_BATCH_RECORDS = 1000
MAX_ENTRY_BYTES = 1_000_000
_COLD_START = ',"cold_start":true'
STATUSES = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning",
            "ERROR": "error", "FATAL": "critical"}  # fmt: skip
ENTRY_KEYS = frozenset({"ddsource", "ddtags", "hostname", "service", "message", "status",
                        "timestamp", "lambda", "record"})  # fmt: skip
TEXT_KEYS = ("ddsource", "ddtags", "message", "status")
_TAG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:./")
# Datadog's documented answers ("Send logs": status codes), in words, with what to do.
_MEANINGS = {
    400: "bad request: the payload's format was refused",
    403: "permission issue, likely an invalid API key: set HTTP_AUTH_TYPE=apikey, "
         "HTTP_AUTH_HEADER_NAME=DD-API-KEY and the API key of this Datadog site",
    408: "request timeout",
    413: "payload too large: above 5 MB uncompressed",
    429: "too many requests",
}  # fmt: skip


def tag(text: str) -> str:
    """``text`` as a Datadog tag holds it: characters it may not hold become ``_``."""
    return "".join(c if c in _TAG_CHARACTERS else "_" for c in text)


class DatadogEncoder(Encoder):
    name = "datadog"
    content_type = "application/json"
    head = "["
    separator = ","
    tail = "]"
    max_entry_bytes = MAX_ENTRY_BYTES
    max_batch_bytes = MAX_BATCH_BYTES
    max_batch_records = MAX_BATCH_RECORDS

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        tags = [f"functionname:{tag(context.function_name)}",
                f"executedversion:{tag(context.function_version)}",
                f"region:{tag(context.aws_region)}"]  # fmt: skip
        if context.account_id:
            tags.append(f"account_id:{tag(context.account_id)}")
        if context.function_memory_size:
            tags.append(f"memorysize:{int(context.function_memory_size)}")
        tags.append(f"architecture:{tag(context.architecture)}")
        if context.extension_version:
            tags.append(f"extension_version:{tag(context.extension_version)}")
        for name, value in context.extra_fields.items():
            text = value if isinstance(value, str) else json.dumps(value)
            tags.append(f"{tag(name)}:{tag(text)}")
        self._head_json = (
            f'{{"ddsource":"{SOURCE}","ddtags":{quote(",".join(tags))}'
            f',"hostname":{quote(context.function_name)}'
            f',"service":{quote(context.service_name)},"message":'
        )

    def entry(self, record: Record) -> str:
        seconds, millis = epoch_seconds_ms(record.time)
        # The digits join (no arithmetic per line), except in 1970's first second or before.
        stamp = f"{seconds}{millis}" if seconds > 0 else str(seconds * 1000 + int(millis))
        fields = record.fields
        structured = "" if fields is None else f',"record":{self.fields_json(fields)}'
        # One f-string: each += would copy the whole entry again.
        return (
            f'{self._head_json}{quote(record.message)},"status":"{STATUSES[record.level]}"'
            f',"timestamp":{stamp},"lambda":{{"log_type":"{record.log_type}"'
            f"{self.invocation(record)}{_COLD_START if record.cold_start else ''}}}{structured}}}"
        )

    # -- the batch side -----------------------------------------------------------------------

    def check_entry(self, entry: Any) -> str:
        problem = check_object(entry, ENTRY_KEYS, TEXT_KEYS)
        if problem:
            return problem
        if "lambda" in entry and not isinstance(entry["lambda"], dict):
            return "an entry's lambda attribute is not an object"
        return ""

    def explain(self, status: int, answer: bytes) -> str:
        """Datadog's documented status codes in words, with its answer's first error."""
        meaning = _MEANINGS.get(status, "")
        detail = _first_error(answer)
        if detail:
            meaning = f"{meaning}; {detail}" if meaning else detail
        return meaning


def _first_error(answer: bytes) -> str:
    """The first of an answer's ``errors`` (Datadog's API error shape), "" if none."""
    try:
        body = json.loads(answer.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return ""
    first = errors[0]
    if isinstance(first, dict):
        parts = [str(first[k]) for k in ("title", "detail") if isinstance(first.get(k), str)]
        return ": ".join(parts)[:200]
    return str(first)[:200]


ENCODER = DatadogEncoder
