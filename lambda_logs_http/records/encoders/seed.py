"""``HTTP_FORMAT=seed`` (the default): one JSON object per record, with the fields every entry
repeats (function, version, memory, region, architecture, the service name, and when known the
account, the extension's version, the log stream and ``HTTP_EXTRA_FIELDS``), inside the envelope
``{"logs":[…],"source":"aws-lambda-extension","timestamp":…}``.

An entry is built as JSON text directly: the repeated fields are encoded once, the fields of an
invocation (its request, tenant and trace) once per invocation, and the per-record strings go
through the C string encoder. That is several times faster than building a dict and dumping
it, and this runs once per log line.
"""

from __future__ import annotations

import json

from ..record import ENTRY_KEYS
from .base import Encoder, check_object, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

SOURCE = "lambda"
ENVELOPE_SOURCE = "aws-lambda-extension"
# Those every entry has, as strings; with ENTRY_KEYS (every key an entry can have,
# HTTP_EXTRA_FIELDS' names aside: in records.record, beside what fills them), what a spilled
# batch's entries are checked against when read back.
ENTRY_TEXT_KEYS = ("timestamp", "level", "message", "log_type")
_COLD_START = ',"cold_start":true'


class SeedEncoder(Encoder):
    name = "seed"
    content_type = "application/json"
    head = '{"logs":['
    separator = ","
    writes_span_id = True
    tail = '],"source":"' + ENVELOPE_SOURCE + '","timestamp":"{stamp}"}'

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        context_json = (
            f',"source":{quote(SOURCE)}'
            f',"function_name":{quote(context.function_name)}'
            f',"function_version":{quote(context.function_version)}'
            f',"function_memory_size":{json.dumps(context.function_memory_size)}'
            f',"aws_region":{quote(context.aws_region)}'
            f',"architecture":{quote(context.architecture)}'
        )
        if context.account_id:
            context_json += f',"account_id":{quote(context.account_id)}'
        if context.extension_version:
            context_json += f',"extension_version":{quote(context.extension_version)}'
        if context.service_name:
            context_json += f',"service_name":{quote(context.service_name)}'
        if context.instance:
            context_json += f',"instance":{quote(context.instance)}'
        for name, value in context.extra_fields.items():
            context_json += f",{quote(name)}:{json.dumps(value, ensure_ascii=True)}"
        self._context_json = context_json
        # HTTP_EXTRA_FIELDS are top-level keys: a spilled entry may hold them.
        self._keys = ENTRY_KEYS | frozenset(context.extra_fields)

    def entry(self, record: Record) -> str:
        # One f-string: each += would copy the whole entry again.
        fields = record.fields
        structured = "" if fields is None else f',"record":{self.fields_json(fields)}'
        return (
            f'{{"timestamp":{quote(record.time)},"level":"{record.level}"'
            f',"message":{quote(record.message)}{self._context_json}'
            f',"log_type":"{record.log_type}"{self.invocation(record)}'
            f"{_COLD_START if record.cold_start else ''}{structured}}}"
        )

    def check_entry(self, entry: Any) -> str:
        return check(entry, self._keys)


def check(entry: Any, keys: frozenset[str] = ENTRY_KEYS) -> str:
    """Empty when ``entry`` is a seed entry whose keys are all in ``keys``; else what is wrong."""
    return check_object(entry, keys, ENTRY_TEXT_KEYS)


ENCODER = SeedEncoder
