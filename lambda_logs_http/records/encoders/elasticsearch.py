"""``HTTP_FORMAT=elasticsearch``: an Elasticsearch / OpenSearch ``_bulk`` body.

Each record is one document after a ``{"create":{}}`` action line (``create`` is the one action
data streams take; the index or data stream is named by the URL, ``/<index>/_bulk``), every
line ends with a newline, the body's last one included, as ``_bulk`` requires. The document is
ECS-shaped, with ECS's dotted names: ``@timestamp``, ``log.level``, ``message``,
``service.name``, ``faas.*`` (``faas.execution`` is the request id, ``faas.coldstart``),
``cloud.*``, ``trace.id``/``span.id`` (the X-Ray ids as W3C hex), ``agent.*``; the
OpenTelemetry names where ECS has none (``faas.max_memory`` in bytes, ``faas.instance``), and
``aws.lambda.*`` for what only Lambda has (the log type, the tenant). ``HTTP_EXTRA_FIELDS`` go
in ``labels``, a structured record (a JSON log line's object, a platform event's) in ``record``
as an object.

A ``_bulk`` answer is 200 even when documents failed: it is read (``filter_path`` keeps it to
each item's status and error, some 25 bytes per document) and an item refused with 429 or a
5xx (a full queue, a shard not ready) is sent again, one refused otherwise (a mapping conflict:
sending it again can only fail again) is dropped and counted.
"""

from __future__ import annotations

import json

from ..timestamps import utc_now_iso
from .base import (
    SEVERITY_NUMBERS,
    AnswerReport,
    Encoder,
    check_object,
    epoch_ns,
    quote,
    w3c_span_id,
    w3c_trace_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

ECS_VERSION = "8.11.0"
AGENT_NAME = "lambda-logs-http"
ACTION = '{"create":{}}'
_COLD_START = ',"faas.coldstart":true'
# Each item's status and error only: the answer stays small, its items in the documents' order.
FILTER_PATH = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"
# What is read of a 2xx answer: each item filtered is ~25 bytes, one with an error a few
# hundred (the reason quotes a field); an unfiltered one (a proxy that drops the query) ~200.
_ANSWER_BASE_BYTES = 4096
_ANSWER_BYTES_PER_ITEM = 512
_MAX_ANSWER_BYTES = 16 << 20
_MAX_ERROR_CHARS = 200
# ES documents 429 (es_rejected_execution_exception) and 5xx item failures as transient.
_RETRY_STATUSES = frozenset({408, 429})
# ECS's level words: lower case (as the ECS logging libraries write them).
LEVELS = {name: quote(name.lower()) for name in SEVERITY_NUMBERS}
TEXT_KEYS = ("@timestamp", "log.level", "message")
ENTRY_KEYS = frozenset({
    "@timestamp", "log.level", "message", "ecs.version", "agent.name", "agent.version",
    "service.name", "faas.name", "faas.version", "faas.max_memory", "faas.instance",
    "cloud.provider", "cloud.service.name", "cloud.region", "cloud.account.id",
    "host.architecture", "labels", "aws.lambda.log_type", "event.action", "faas.execution",
    "aws.lambda.tenant_id", "trace.id", "span.id", "faas.coldstart", "record",
})  # fmt: skip


class ElasticsearchEncoder(Encoder):
    name = "elasticsearch"
    content_type = "application/x-ndjson"
    query = FILTER_PATH
    head = ACTION + "\n"
    separator = "\n" + ACTION + "\n"
    tail = "\n"

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        memory = context.function_memory_size
        text = (
            f',"ecs.version":"{ECS_VERSION}","agent.name":"{AGENT_NAME}"'
            + (f',"agent.version":{quote(context.extension_version)}'
               if context.extension_version else "")
            + f',"service.name":{quote(context.service_name)}'
            f',"faas.name":{quote(context.function_name)}'
            f',"faas.version":{quote(context.function_version)}'
            + (f',"faas.max_memory":{memory * 1024 * 1024}' if memory else "")
            + (f',"faas.instance":{quote(context.instance)}' if context.instance else "")
            + ',"cloud.provider":"aws","cloud.service.name":"lambda"'
            f',"cloud.region":{quote(context.aws_region)}'
            + (f',"cloud.account.id":{quote(context.account_id)}' if context.account_id else "")
            + f',"host.architecture":{quote(context.architecture)}'
        )  # fmt: skip
        if context.extra_fields:
            text += ',"labels":' + json.dumps(
                context.extra_fields, ensure_ascii=True, separators=(",", ":")
            )
        self._context_json = text + ',"aws.lambda.log_type":'

    def entry(self, record: Record) -> str:
        stamp = record.time
        if len(stamp) != 24 or stamp[10] != "T" or stamp[23] != "Z":  # not Lambda's own form
            stamp = _date(stamp)
        log_type = record.log_type
        action = f',"event.action":{quote(record.event_type)}' if log_type == "platform" else ""
        fields = record.fields
        structured = "" if fields is None else f',"record":{self.fields_json(fields)}'
        # One f-string: each += would copy the whole entry again.
        return (
            f'{{"@timestamp":{quote(stamp)},"log.level":{LEVELS[record.level]}'
            f',"message":{quote(record.message)}{self._context_json}"{log_type}"{action}'
            f"{self.invocation(record)}{_COLD_START if record.cold_start else ''}{structured}}}"
        )

    # -- the batch side -----------------------------------------------------------------------

    def check_entry(self, entry: Any) -> str:
        problem = check_object(entry, ENTRY_KEYS, TEXT_KEYS)
        if problem:
            return problem
        if "labels" in entry and not isinstance(entry["labels"], dict):
            return "an entry's labels are not an object"
        return ""

    def invocation_json(self, request_id: str, tenant_id: str, trace_id: str, span_id: str) -> str:
        return _invocation_json(request_id, tenant_id, trace_id, span_id)

    def answer_limit(self, records: int) -> int:
        return min(_MAX_ANSWER_BYTES, _ANSWER_BASE_BYTES + _ANSWER_BYTES_PER_ITEM * records)

    def read_answer(self, answer: bytes, records: int) -> AnswerReport | None:
        """The ``_bulk`` answer's items, by position: retry those refused with 429/5xx, drop
        the others refused. An answer cut at our bound is read up to its last whole item."""
        return read_bulk_answer(answer, records)

    def explain(self, status: int, answer: bytes) -> str:
        """An Elasticsearch error answer (``{"error":{"type","reason"},"status"}``) in words,
        with what to do about the common ones."""
        error = _error_of(answer)
        if not error:
            return ""
        kind, reason = error
        text = f"{kind}: {reason}" if reason else kind
        if "index is missing" in reason:
            text += "; name the index or data stream in HTTP_ENDPOINT: https://<host>/<index>/_bulk"
        elif kind == "security_exception":
            text += "; check HTTP_AUTH_TYPE and the credentials' privileges on the index"
        return text


def _date(text: str) -> str:
    """``text`` if it is an ISO 8601 time, else now: a ``@timestamp`` Elasticsearch cannot read
    as a date would have the document refused for good (a mapping error)."""
    try:
        epoch_ns(text)
    except (ValueError, IndexError):
        return utc_now_iso()
    # ES's strict_date_optional_time: a "T", and at most nanoseconds.
    return text if text[10] == "T" and len(text) <= 35 else utc_now_iso()


def read_bulk_answer(answer: bytes, records: int) -> AnswerReport | None:
    """What a ``_bulk`` answer says of a batch of ``records`` documents (None: all taken)."""
    text = answer.decode("utf-8", "replace")
    items: list[Any]
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, dict):
        if whole.get("errors") is False:
            return None
        found = whole.get("items")
        if not isinstance(found, list):
            return None  # not a _bulk answer (a proxy's, a stub's): nothing it says of items
        items = found
    else:
        # Cut at our bound: "errors" comes before the items, then the whole items before the cut.
        start = text.find('"items"')
        if start < 0 or '"errors":false' in text[:start].replace(" ", ""):
            return None
        items = _leading_items(text, start)
    report = AnswerReport()
    unreadable = 0
    for index, item in enumerate(items[:records]):
        status, error = _item(item)
        if 200 <= status < 300:
            continue
        if status == 0:
            unreadable += 1  # not an item as ES writes them: taken as delivered, and said
        elif status in _RETRY_STATUSES or status >= 500:
            report.retry.append(index)
            if not report.retry_error:
                report.retry_error = error or f"status {status}"
        else:
            report.rejected.append(index)
            if not report.first_error:
                report.first_error = error or f"status {status}"
    report.unchecked = max(0, records - len(items)) + unreadable
    return report


def _item(item: Any) -> tuple[int, str]:
    """An item's status and its error in words (``type: reason``), from ``{"<action>": {…}}``."""
    if not isinstance(item, dict) or len(item) != 1:
        return 0, ""
    (result,) = item.values()
    if not isinstance(result, dict):
        return 0, ""
    status = result.get("status")
    status = status if type(status) is int else 0
    error = result.get("error")
    if isinstance(error, dict):
        kind, reason = str(error.get("type", "")), str(error.get("reason", ""))
        words = f"{kind}: {reason}" if reason else kind
    elif isinstance(error, str):
        words = error
    else:
        words = ""
    return status, words[:_MAX_ERROR_CHARS]


def _leading_items(text: str, start: int) -> list[Any]:
    """The items an answer cut short holds whole, in order (``start``: where "items" is)."""
    index = text.find("[", start)
    if index < 0:
        return []
    decode = json.JSONDecoder().raw_decode
    items: list[Any] = []
    index += 1
    length = len(text)
    while index < length:
        while index < length and text[index] in " \t\r\n,":
            index += 1
        if index >= length or text[index] == "]":
            break
        try:
            item, index = decode(text, index)
        except (ValueError, RecursionError):
            break  # the cut
        items.append(item)
    return items


def _error_of(answer: bytes) -> tuple[str, str] | None:
    try:
        body = json.loads(answer.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("type", ""))[:80], str(error.get("reason", ""))[:_MAX_ERROR_CHARS]
    if isinstance(error, str):
        return error[:_MAX_ERROR_CHARS], ""
    return None


def _invocation_json(request_id: str, tenant_id: str, trace_id: str, span_id: str) -> str:
    text = ""
    if request_id:
        text += f',"faas.execution":{quote(request_id)}'
    if tenant_id:
        text += f',"aws.lambda.tenant_id":{quote(tenant_id)}'
    trace = w3c_trace_id(trace_id) if trace_id else ""
    if trace:
        text += f',"trace.id":"{trace}"'
        span = w3c_span_id(span_id) if span_id else ""
        if span:
            text += f',"span.id":"{span}"'
    return text


ENCODER = ElasticsearchEncoder
