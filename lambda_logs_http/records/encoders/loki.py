"""``HTTP_FORMAT=loki``: the JSON body of Loki's push API (``POST /loki/api/v1/push``).

Lines go into streams labelled by a small fixed set — ``service_name`` (the function, or
``OTEL_SERVICE_NAME``), ``level``, ``log_type``, ``region`` — so a function makes at most 18
streams, and never one per request (Loki's cost grows with the number of streams). What varies
per line goes in the line's structured metadata instead: the request id, the X-Ray trace id,
the tenant, the cold start, the account and this extension's version. ``HTTP_EXTRA_FIELDS``
become labels only when their name is in ``EXTRA_LABELS`` (static values that users filter
streams by), else structured metadata.

The line is the message; for a record that has structure (a JSON-format line, a platform
event) it is that object's JSON text, led by ``"message"`` when it has none — what Loki's
``| json`` parser reads back into fields.

Each entry is a stream of one line, ``{"stream":{…},"values":[["<ns>","<line>",{…}]]}``: the
batch merges the lines of one stream into one (``delivery.batching.Framing``), so a stream's
labels are sent once per request.
"""

from __future__ import annotations

from .. import jsonsafe
from .base import Encoder, epoch_ns_text, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

# Loki's default limits (pkg/validation/limits.go): a line of at most 256KB (humanize's KB:
# 256,000 bytes), label names up to 1,024 characters, values up to 2,048, at most 15 labels.
MAX_LINE_BYTES = 256_000
MAX_LABEL_VALUE_CHARS = 2048
LABELS = ("service_name", "level", "log_type", "region")
# HTTP_EXTRA_FIELDS that become stream labels: the names users give a deployment's static
# dimensions. Any other extra field is structured metadata (it would otherwise add streams).
EXTRA_LABELS = frozenset({"env", "environment", "stage", "team", "app", "cluster", "namespace"})
LEVEL_LABELS = {"TRACE": "trace", "DEBUG": "debug", "INFO": "info", "WARN": "warn",
                "ERROR": "error", "FATAL": "fatal"}  # fmt: skip
STREAM_KEYS = ("stream", "values")
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789")


def label_name(name: str) -> str:
    """``name`` as a Loki label (or structured metadata) name, ``[a-zA-Z_][a-zA-Z0-9_]*``:
    other characters become ``_``, as Loki's own OTLP ingestion does."""
    cleaned = "".join(c if c in _NAME_REST else "_" for c in name) or "_"
    return cleaned if cleaned[0] in _NAME_FIRST else "_" + cleaned


def _text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class LokiEncoder(Encoder):
    name = "loki"
    content_type = "application/json"
    head = '{"streams":['
    separator = ","
    tail = "]}"
    group_mark = ',"values":['
    group_tail = "]}"
    max_entry_bytes = MAX_LINE_BYTES

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        labels = {"service_name": context.service_name or context.function_name or "lambda"}
        if context.aws_region:
            labels["region"] = context.aws_region
        metadata: dict[str, str] = {}
        if context.account_id:
            metadata["account_id"] = context.account_id
        if context.extension_version:
            metadata["extension_version"] = context.extension_version
        for name, value in context.extra_fields.items():
            if name in EXTRA_LABELS:
                labels[name] = _text(value)[:MAX_LABEL_VALUE_CHARS]
            else:
                metadata[label_name(name)] = _text(value)
        # service_name first, then the per-line labels (level, log_type), then the rest.
        self._labels_before = '{"stream":{"service_name":' + quote(labels.pop("service_name"))
        self._labels_after = "".join(f",{quote(k)}:{quote(v)}" for k, v in labels.items())
        self._metadata = "".join(f",{quote(k)}:{quote(v)}" for k, v in metadata.items())
        self._streams: dict[tuple[str, str], str] = {}
        self._last: tuple[tuple[Any, ...], str] = ((), "")

    def entry(self, record: Record) -> str:
        stream_key = (record.level, record.log_type)
        stream = self._streams.get(stream_key)
        if stream is None:
            level = LEVEL_LABELS.get(record.level, "info")
            stream = self._streams[stream_key] = (
                f'{self._labels_before},"level":"{level}","log_type":{quote(record.log_type)}'
                f'{self._labels_after}}},"values":[["'
            )
        fields = record.fields
        line = record.message if fields is None else self.object_with_message(
            record.message, fields
        )  # fmt: skip
        # The line's metadata: the same as the line before's, most of the time. Read and
        # replaced as one tuple, and a function of its key alone: safe from either thread
        # (drop reports are written on the sender's).
        key = (record.request_id, record.tenant_id, record.trace_id, record.cold_start)
        last = self._last
        if key == last[0]:
            metadata = last[1]
        else:
            metadata = self._invocation(record) + self._metadata
            metadata = ",{" + metadata[1:] + "}" if metadata else ""
            self._last = (key, metadata)
        return f'{stream}{epoch_ns_text(record.time)}",{quote(line)}{metadata}]]}}'

    def _invocation(self, record: Record) -> str:
        request_id = record.request_id
        key = (record.tenant_id, record.trace_id, record.cold_start)
        found = self.cached(request_id, key)
        if found is not None:
            return found
        text = ""
        if request_id:
            text += f',"request_id":{quote(request_id)}'
        if record.trace_id:
            text += f',"trace_id":{quote(record.trace_id)}'
        if record.tenant_id:
            text += f',"tenant_id":{quote(record.tenant_id)}'
        if record.cold_start:
            text += ',"cold_start":"true"'
        return self.remember(request_id, key, text)

    # -- the batch side -----------------------------------------------------------------------

    def shrink(self, entry: Any) -> tuple[Any, Any]:
        value = entry["values"][0]
        line = value[1]
        if isinstance(line, str) and line.startswith("{"):
            # A structured record's line is its object: the structure goes, its message stays.
            try:
                decoded = jsonsafe.loads(line)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
                value[1] = decoded["message"]
        return value, 1

    def explain(self, status: int, answer: bytes) -> str:
        """Loki answers a refused push (400: a line too long or too old, a bad label; 429: a
        rate limit) with one line of text saying which limit."""
        text = answer.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:300] if text and not text.startswith("<") else ""

    def check_entry(self, entry: Any) -> str:
        if not isinstance(entry, dict) or tuple(entry) != STREAM_KEYS:
            return "an entry is not a Loki stream"
        stream, values = entry["stream"], entry["values"]
        if not isinstance(stream, dict) or not all(
            isinstance(v, str) and k == label_name(k) for k, v in stream.items()
        ):
            return "a stream's labels are not names and strings"
        if not (isinstance(values, list) and len(values) == 1 and isinstance(values[0], list)):
            return "a stream holds other than one line"
        value = values[0]
        if not (2 <= len(value) <= 3 and isinstance(value[0], str) and value[0].isdigit()
                and value[0].isascii() and isinstance(value[1], str)):  # fmt: skip
            return "a line is not [nanoseconds, text]"
        if len(value) == 3 and not (
            isinstance(value[2], dict) and all(isinstance(v, str) for v in value[2].values())
        ):
            return "a line's structured metadata is not strings"
        return ""


ENCODER = LokiEncoder
