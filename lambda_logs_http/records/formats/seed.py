"""``HTTP_FORMAT=seed`` (the default): one JSON object per record, with the fields every entry
repeats (function, version, memory, region, architecture, the service name, and when known the
account, the extension's version, the log stream and ``HTTP_EXTRA_FIELDS``), inside the envelope
``{"logs":[…],"source":"aws-lambda-extension","timestamp":…}``.

An entry is built as JSON text directly: the repeated fields are encoded once, and the
per-record strings go through the C string encoder. That is several times faster than building
a dict and dumping it, and this runs once per log line.
"""

from __future__ import annotations

import json

from .base import Encoder, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..record import EntryContext, Record

SOURCE = "lambda"


class SeedEncoder(Encoder):
    name = "seed"
    content_type = "application/json"

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

    def entry(self, record: Record) -> str:
        entry = (
            f'{{"timestamp":{quote(record.time)},"level":"{record.level}"'
            f',"message":{quote(record.message)}{self._context_json}'
            f',"log_type":"{record.log_type}"'
        )
        if record.request_id:
            entry += f',"request_id":{quote(record.request_id)}'
        if record.tenant_id:
            entry += f',"tenant_id":{quote(record.tenant_id)}'
        if record.trace_id:
            entry += f',"trace_id":{quote(record.trace_id)}'
        if record.span_id:
            entry += f',"span_id":{quote(record.span_id)}'
        if record.cold_start:
            entry += ',"cold_start":true'
        fields = record.fields
        if fields is not None:
            entry += f',"record":{self.fields_json(fields)}'
        return entry + "}"


ENCODER = SeedEncoder
