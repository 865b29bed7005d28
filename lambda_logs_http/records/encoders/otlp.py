"""``HTTP_FORMAT=otlp``: OTLP/HTTP JSON logs, as an OpenTelemetry collector's ``/v1/logs`` takes
them (``opentelemetry-proto``'s ``ExportLogsServiceRequest`` in the protobuf JSON mapping).

One request holds one ``resourceLogs`` — the function, described by the semantic conventions'
resource attributes (``service.name``, ``cloud.*``, ``faas.*``, ``host.arch``, and
``HTTP_EXTRA_FIELDS``) — with one ``scopeLogs`` (this extension) whose ``logRecords`` are the
entries. A record carries its times (``timeUnixNano``, ``observedTimeUnixNano``: decimal
strings, as the mapping writes 64-bit integers), its severity, its body — the message, or for a
JSON-format line the function's own object as a ``kvlistValue`` — and attributes: the
invocation (``faas.invocation_id``, ``faas.coldstart``), ``log.type``, for a platform event its
record flattened under ``aws.lambda.`` (the report's metrics as numbers). The invocation's X-Ray
trace becomes ``traceId``/``spanId`` in hex, as OTLP JSON writes them.

The resource and scope are the request's head, written once; an invocation's attributes and
ids once per invocation.
"""

from __future__ import annotations

import json
from time import time_ns

from .. import jsonsafe
from .base import (
    SEVERITY_NUMBERS,
    AnswerReport,
    Encoder,
    check_object,
    epoch_ns_text,
    quote,
    w3c_span_id,
    w3c_trace_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

SCOPE_NAME = "lambda-logs-http"
# host.arch's values (semantic conventions) for Lambda's architectures.
HOST_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
LOG_RECORD_KEYS = frozenset({
    "timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body",
    "attributes", "droppedAttributesCount", "flags", "traceId", "spanId", "eventName",
})  # fmt: skip
_INT64 = (-(1 << 63), 1 << 63)
# How deep a value nests as OTLP structure; deeper, it is a string of its JSON text. Each level
# costs three protobuf messages (AnyValue, KeyValueList, KeyValue) and four JSON levels, under
# a request's own five and seven: protobuf's JSON parser stops at 100 messages, serde_json
# (Rust receivers) at 128 levels, so 20 levels leaves a margin under both.
_MAX_DEPTH = 20
_PLATFORM_PREFIX = "aws.lambda."
# A success answer is an ExportLogsServiceResponse: "{}", or a partialSuccess naming how many
# records were rejected and why (a short message); more than this is not read.
ANSWER_LIMIT = 16_384
_SHOWN_CHARS = 300


def any_value(value: Any, depth: int = 1) -> str:
    """``value`` as an OTLP ``AnyValue`` in JSON. Raises (``ValueError``) on NaN or an
    integer too long for decimal text, as the fast path does: the sanitized retry writes them
    as strings. Nested deeper than ``jsonsafe.MAX_DEPTH``: a string of its JSON text."""
    kind = type(value)
    if kind is str:
        return '{"stringValue":' + quote(value) + "}"
    if kind is bool:
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if kind is int:
        if _INT64[0] <= value < _INT64[1]:
            return '{"intValue":"' + str(value) + '"}'
        return '{"stringValue":"' + str(value) + '"}'  # beyond int64: its digits
    if kind is float:
        if value - value != 0.0:
            raise ValueError("NaN and the infinities are not JSON")
        return '{"doubleValue":' + repr(value) + "}"
    if value is None:
        return "{}"
    if isinstance(value, (dict, list, tuple)) and depth > _MAX_DEPTH:
        return '{"stringValue":' + quote(jsonsafe.text_of(value)) + "}"
    if isinstance(value, dict):
        return '{"kvlistValue":{"values":[' + key_values(value, depth + 1) + "]}}"
    if isinstance(value, (list, tuple)):
        inner = ",".join([any_value(item, depth + 1) for item in value])
        return '{"arrayValue":{"values":[' + inner + "]}}"
    return '{"stringValue":' + quote(str(value)) + "}"


def key_values(mapping: dict[str, Any], depth: int = 1) -> str:
    """``mapping`` as the comma-separated ``KeyValue`` objects of an OTLP list."""
    return ",".join(
        ['{"key":' + quote(key) + ',"value":' + any_value(item, depth) + "}"
         for key, item in mapping.items()]
    )  # fmt: skip


def attribute(key: str, value: Any) -> str:
    return '{"key":' + quote(key) + ',"value":' + any_value(value) + "}"


def flattened(record: dict[str, Any], prefix: str, out: list[str], depth: int = 1) -> None:
    """A platform event's record as attributes ``<prefix><key>``, its objects flattened with
    dots (``aws.lambda.metrics.durationMs``: the report's metrics are numbers)."""
    for key, value in record.items():
        name = prefix + str(key)
        if isinstance(value, dict) and value and depth < _MAX_DEPTH:
            flattened(value, name + ".", out, depth + 1)
        else:
            out.append('{"key":' + quote(name) + ',"value":' + any_value(value, depth) + "}")


class OtlpEncoder(Encoder):
    name = "otlp"
    content_type = "application/json"
    separator = ","
    tail = "]}]}]}"

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        resource: dict[str, Any] = {
            "service.name": context.service_name or context.function_name,
            "cloud.provider": "aws",
            "cloud.platform": "aws_lambda",
        }
        if context.aws_region:
            resource["cloud.region"] = context.aws_region
        if context.account_id:
            resource["cloud.account.id"] = context.account_id
        resource["faas.name"] = context.function_name
        if context.function_version:
            resource["faas.version"] = context.function_version
        if context.function_memory_size:
            resource["faas.max_memory"] = context.function_memory_size * 1024 * 1024
        if context.instance:
            resource["faas.instance"] = context.instance
        resource["host.arch"] = HOST_ARCH.get(context.architecture, context.architecture)
        resource.update(context.extra_fields)  # the user's word wins
        scope = '{"name":' + quote(SCOPE_NAME)
        if context.extension_version:
            scope += ',"version":' + quote(context.extension_version)
        self.head = (
            '{"resourceLogs":[{"resource":{"attributes":[' + key_values(resource) + "]},"
            '"scopeLogs":[{"scope":' + scope + '},"logRecords":['
        )  # fmt: skip
        self._log_types: dict[str, str] = {}
        self._severities: dict[str, str] = {}  # level -> its severity fields
        self._last: tuple[tuple[Any, ...], tuple[str, str]] = ((), ("", ""))

    def entry(self, record: Record) -> str:
        severity = self._severities.get(record.level)
        if severity is None:
            level = record.level
            severity = self._severities[level] = (
                f'","severityNumber":{SEVERITY_NUMBERS.get(level, 9)},"severityText":"{level}"'
            )
        fields = record.fields
        kind = record.log_type
        platform = kind == "platform"
        if fields is None or platform:
            body = '{"stringValue":' + quote(record.message) + "}"
        else:
            values = key_values(fields, 2)
            if "message" not in fields:
                lead = '{"key":"message","value":{"stringValue":' + quote(record.message) + "}}"
                values = lead + ("," + values if values else "")
            body = '{"kvlistValue":{"values":[' + values + "]}}"
        # The invocation's part: the same as the line before's, most of the time. Read and
        # replaced as one tuple, and a function of its key alone: safe from either thread
        # (drop reports are written on the sender's).
        key = (record.request_id, record.tenant_id, record.trace_id, record.span_id,
               record.cold_start)  # fmt: skip
        last = self._last
        if key == last[0]:
            attributes, ids = last[1]
        else:
            attributes, ids = found = self._invocation(record)
            self._last = (key, found)
        log_type = self._log_types.get(kind)
        if log_type is None:
            log_type = self._log_types[kind] = attribute("log.type", kind)
        if platform:
            out = [log_type, attribute(_PLATFORM_PREFIX + "event_type", record.event_type)]
            if fields:
                flattened({k: v for k, v in fields.items() if k != "requestId"},
                          _PLATFORM_PREFIX, out)  # fmt: skip
            log_type = ",".join(out)
        return (
            f'{{"timeUnixNano":"{epoch_ns_text(record.time)}","observedTimeUnixNano":"'
            f'{time_ns()}{severity},"body":{body},"attributes":[{attributes}{log_type}]{ids}}}'
        )

    def _invocation(self, record: Record) -> tuple[str, str]:
        """The invocation's attributes (each followed by a comma) and its trace ids."""
        request_id = record.request_id
        key = (record.tenant_id, record.trace_id, record.span_id, record.cold_start)
        found = self.cached(request_id, key)
        if found is not None:
            return found  # type: ignore[return-value]
        attributes = ""
        if request_id:
            attributes += attribute("faas.invocation_id", request_id) + ","
        if record.cold_start:
            attributes += attribute("faas.coldstart", True) + ","
        if record.tenant_id:
            attributes += attribute("aws.lambda.tenant_id", record.tenant_id) + ","
        ids = ""
        trace_id = w3c_trace_id(record.trace_id)
        if trace_id:
            ids = f',"traceId":"{trace_id}"'
            span_id = w3c_span_id(record.span_id)
            if span_id:
                ids += f',"spanId":"{span_id}"'
        return self.remember(request_id, key, (attributes, ids))  # type: ignore[return-value]

    # -- the batch side -----------------------------------------------------------------------

    def shrink(self, entry: Any) -> tuple[Any, Any]:
        body = entry.get("body")
        message = ""
        if isinstance(body, dict):
            if isinstance(body.get("stringValue"), str):
                message = body["stringValue"]
            else:
                values = body.get("kvlistValue", {}).get("values", [])
                for item in values:
                    if isinstance(item, dict) and item.get("key") == "message":
                        message = item.get("value", {}).get("stringValue", "")
                        break
                else:
                    message = json.dumps(body)
        entry["body"] = {"stringValue": message if isinstance(message, str) else ""}
        entry["attributes"] = [
            item for item in entry.get("attributes", [])
            if not str(item.get("key", "")).startswith(_PLATFORM_PREFIX + "metrics")
        ]  # fmt: skip
        return entry["body"], "stringValue"

    def answer_limit(self, records: int) -> int:
        return ANSWER_LIMIT

    def read_answer(self, answer: bytes, records: int) -> AnswerReport | None:
        """OTLP/HTTP's partial success: a 200 whose ``partialSuccess.rejectedLogRecords`` says
        how many records the receiver dropped for good (the specification: not to be retried).
        It does not say which: the count is what is accounted for (the last entries' indices
        stand for them)."""
        partial = _json_object(answer).get("partialSuccess")
        if not isinstance(partial, dict):
            return None
        try:
            rejected = int(partial.get("rejectedLogRecords") or 0)
        except (TypeError, ValueError):
            return None
        if rejected <= 0:
            return None
        report = AnswerReport()
        report.rejected = list(range(max(0, records - rejected), records))
        message = partial.get("errorMessage")
        report.first_error = "OTLP partial success: " + (
            str(message)[:_SHOWN_CHARS] if message else f"{rejected} log records rejected"
        )
        return report

    def explain(self, status: int, answer: bytes) -> str:
        """OTLP/HTTP's error answer is a ``google.rpc.Status``: its ``message`` says why."""
        message = _json_object(answer).get("message")
        return str(message)[:_SHOWN_CHARS] if isinstance(message, str) and message else ""

    def check_entry(self, entry: Any) -> str:
        problem = check_object(entry, LOG_RECORD_KEYS)
        if problem:
            return problem
        stamp = entry.get("timeUnixNano")
        if not (isinstance(stamp, str) and stamp.isdigit() and stamp.isascii()):
            return "an entry's timeUnixNano is not a decimal string"
        if type(entry.get("severityNumber")) is not int or not isinstance(entry.get("body"), dict):
            return "an entry lacks its severityNumber or body"
        if not isinstance(entry.get("attributes", []), list):
            return "an entry's attributes are not a list"
        return ""


def _json_object(answer: bytes) -> dict[str, Any]:
    """An answer's JSON object; {} when it is not one (a proxy's HTML, a cut answer)."""
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


ENCODER = OtlpEncoder
