"""Request bodies read the way each vendor's server reads them: parsed, then checked against
the limits it documents. Used by the unit tests on encoders' bodies and by the capture receiver
(``checking_receiver --body-check NAME``) that stands in for a server we cannot install here.

Each check returns what the server would have taken from the body, or raises ``BodyRefused``
with the reason its server would answer 400 with.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable


class BodyRefused(ValueError):
    """What the vendor's server would refuse the body for (its 400 answer)."""


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BodyRefused(f"not JSON: {exc}") from None


# -- NDJSON (ndjson.org spec 1.0: one JSON text per line, lines end in \n) --------------------


def ndjson(body: bytes) -> list[Any]:
    """The values of an NDJSON body, one per line."""
    text = body.decode("utf-8")
    if not text.endswith("\n"):
        raise BodyRefused("the last line does not end in a newline")
    values = []
    for number, line in enumerate(text[:-1].split("\n"), 1):
        try:
            values.append(json.loads(line))
        except ValueError as exc:
            raise BodyRefused(f"line {number} is not JSON: {exc}") from None
    return values


# -- OTLP/HTTP JSON (opentelemetry-proto, the collector's /v1/logs) ---------------------------

_HEX_ID = {"traceId": 32, "spanId": 16}


def otlp(body: bytes) -> Any:
    """The ``ExportLogsServiceRequest`` an OTLP/HTTP receiver decodes from a JSON body.

    Parsed by protobuf's own JSON parser (unknown fields and wrong types refused), after the
    one exception the OTLP JSON mapping makes: ``traceId``/``spanId`` are hex, not base64. They
    are checked here and set as bytes on the message.
    """
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    document = _loads(body)
    ids: list[dict[str, bytes]] = []
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for log_record in scope_logs.get("logRecords", []):
                found = {}
                for name, digits in _HEX_ID.items():
                    value = log_record.pop(name, None)
                    if value is None or value == "":
                        continue
                    if not (
                        isinstance(value, str)
                        and len(value) == digits
                        and re.fullmatch("[0-9a-fA-F]+", value)
                    ):
                        raise BodyRefused(f"{name} {value!r} is not {digits} hex digits")
                    found[name] = bytes.fromhex(value)
                ids.append(found)
    try:
        message = json_format.ParseDict(document, ExportLogsServiceRequest())
    except json_format.ParseError as exc:
        raise BodyRefused(f"not an ExportLogsServiceRequest: {exc}") from None
    index = 0
    for resource_logs in message.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                for name, value in ids[index].items():
                    setattr(log_record, "trace_id" if name == "traceId" else "span_id", value)
                index += 1
    return message


def otlp_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` message as the Python value it holds."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {item.key: otlp_value(item.value) for item in value.kvlist_value.values}
    if kind == "array_value":
        return [otlp_value(item) for item in value.array_value.values]
    return getattr(value, kind)


def otlp_attributes(attributes: Any) -> dict[str, Any]:
    return {item.key: otlp_value(item.value) for item in attributes}


# -- Loki push API (JSON body), with Loki's default limits ------------------------------------

# pkg/validation/limits.go defaults: max_line_size 256KB, max_label_names_per_series 15,
# max_label_name_length 1024, max_label_value_length 2048, reject_old_samples_max_age 1w,
# creation_grace_period 10m; label names as Prometheus' ([a-zA-Z_][a-zA-Z0-9_]*, no "__").
LOKI_MAX_LINE_BYTES = 256_000
LOKI_MAX_LABELS = 15
LOKI_MAX_NAME_CHARS = 1024
LOKI_MAX_VALUE_CHARS = 2048
LOKI_OLDEST_NS = 7 * 24 * 3600 * 10**9
LOKI_GRACE_NS = 10 * 60 * 10**9
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def loki(
    body: bytes, now_ns: int | None = None
) -> list[tuple[dict[str, str], int, str, dict[str, str]]]:
    """The lines a Loki distributor takes from a push: (labels, ns, line, structured metadata)."""
    now = time.time_ns() if now_ns is None else now_ns
    document = _loads(body)
    streams = document.get("streams") if isinstance(document, dict) else None
    if not isinstance(streams, list) or set(document) - {"streams"}:
        raise BodyRefused('a push is {"streams": [...]}')
    lines = []
    for stream in streams:
        if not isinstance(stream, dict) or set(stream) - {"stream", "values"}:
            raise BodyRefused('a stream is {"stream": {...}, "values": [...]}')
        labels = stream.get("stream")
        if not isinstance(labels, dict) or not labels:
            raise BodyRefused("a stream has no labels")
        if len(labels) > LOKI_MAX_LABELS:
            raise BodyRefused(f"stream has {len(labels)} labels, more than {LOKI_MAX_LABELS}")
        for name, value in labels.items():
            _check_name(name, "label")
            if not isinstance(value, str):
                raise BodyRefused(f"label {name} is not a string")
            if len(value) > LOKI_MAX_VALUE_CHARS:
                raise BodyRefused(f"label {name}'s value is longer than {LOKI_MAX_VALUE_CHARS}")
        values = stream.get("values")
        if not isinstance(values, list) or not values:
            raise BodyRefused("a stream has no values")
        for value in values:
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise BodyRefused('a value is ["<ns>", "<line>"(, {metadata})]')
            stamp, line = value[0], value[1]
            if not (isinstance(stamp, str) and stamp.isascii() and stamp.isdigit()):
                raise BodyRefused(f"timestamp {stamp!r} is not nanoseconds as a string")
            if not isinstance(line, str):
                raise BodyRefused("a line is not a string")
            if len(line.encode("utf-8", "surrogatepass")) > LOKI_MAX_LINE_BYTES:
                raise BodyRefused(f"line too long (max_line_size {LOKI_MAX_LINE_BYTES})")
            ns = int(stamp)
            if ns < now - LOKI_OLDEST_NS or ns > now + LOKI_GRACE_NS:
                raise BodyRefused(f"timestamp {ns} is too old or too new")
            metadata: dict[str, str] = {}
            if len(value) == 3:
                if not isinstance(value[2], dict):
                    raise BodyRefused("structured metadata is not an object")
                for name, item in value[2].items():
                    _check_name(name, "structured metadata")
                    if not isinstance(item, str):
                        raise BodyRefused(f"structured metadata {name} is not a string")
                metadata = value[2]
            lines.append((labels, ns, line, metadata))
    return lines


def _check_name(name: str, what: str) -> None:
    if not (_LABEL_NAME.fullmatch(name) and not name.startswith("__")):
        raise BodyRefused(f"{what} name {name!r} is invalid")
    if len(name) > LOKI_MAX_NAME_CHARS:
        raise BodyRefused(f"{what} name {name[:20]!r}... is too long")


CHECKS: dict[str, Callable[[bytes], Any]] = {"ndjson": ndjson, "otlp": otlp, "loki": loki}
