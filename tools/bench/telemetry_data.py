"""Realistic Telemetry API pushes and receiver bodies, built once, before any clock starts.

A push is what Lambda POSTs to the listener: a JSON array of up to 1,000 events
``{"time", "type": "function", "record": "[INFO]\\t<time>\\t<request id>\\t<message>\\n"}`` — the
Python runtime's Text format, the most common input. Messages vary in length and level (mostly
INFO, some WARNING/ERROR, the odd non-ASCII character and JSON-looking line) so the transform's
branches and the encoder's escaping see what production sees. Every function record carries
``MARKER`` once, in its message: the fast receiver counts records by counting that token,
whatever the output format, so a variant that changes the format stays one table row.

Pushes are cycled from a small set of distinct bodies: building a million unique records
would cost the bench seconds and hundreds of MB without changing what the extension does.
"""

from __future__ import annotations

import json
import time
import uuid

MARKER = b"bench-rec"
RECORDS_PER_PUSH = 1000
# More than the pushes the extension remembers to recognise one Lambda sends again (32): a
# stream that repeated a push within that window would be taken for Lambda's re-sends.
DISTINCT_PUSHES = 40

_MESSAGES = (
    ("INFO", "bench-rec {i} GET /api/v1/orders/{i} 200 12.{m}ms user=u-{u} region=eu-west-1"),
    ("INFO", "bench-rec {i} processed order {i} for customer c-{u}: status=ok amount={m}.50 EUR "
             "items=3 warehouse=DUB-2 carrier=dhl tracking=JJD000{i}"),
    ("DEBUG", "bench-rec {i} cache hit key=session:{u} ttl=300"),
    ("INFO", 'bench-rec {i} {{"event":"checkout","cart":{m},"ok":true}}'),
    ("WARNING", "bench-rec {i} slow downstream call to payments-api took 1{m}3 ms "
                "(budget 1000 ms)"),
    ("INFO", "bench-rec {i} Zahlung bestätigt für Kunde c-{u} — Betrag {m},00 €"),
    ("ERROR", "bench-rec {i} failed to publish event to queue: ConnectionResetError(104, "
              "'Connection reset by peer') after 3 attempts; will retry"),
    ("INFO", "bench-rec {i} ok"),
)


# Filtering and redaction together, leaving none of the bench's records out (the throughput
# row checks that every record arrives): their cost, without the savings of a filter that
# matches. The throughput row ``filter_redact`` and ``encode_cost``'s mode ``all`` set it. The
# user pattern starts with a literal, as context-anchored redaction patterns do: ``re`` finds
# candidates for it at memchr speed. One that starts with a class (``\b\d{3}-…``) is tried at
# every position: ~30,000 instructions on a 130-character line (docs/design.md).
FILTER_REDACT_ENV = {
    "HTTP_MIN_LEVEL": "DEBUG",
    "HTTP_EXCLUDE_PATTERN": "healthcheck|ELB-HealthChecker",
    "HTTP_REDACT_PATTERNS": r'["ssn=\\d{3}-\\d{2}-\\d{4}"]',
}


def iso(epoch: float) -> str:
    """Lambda's time format: ISO 8601, UTC, milliseconds, ``Z``."""
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
            + f".{int(epoch * 1000) % 1000:03d}Z")


def function_events(request_id: str, count: int, start_index: int = 0,
                    epoch: float = 1_700_000_000.0) -> list[dict[str, str]]:
    """``count`` function events as the Python runtime's Text format produces them."""
    events = []
    for n in range(start_index, start_index + count):
        level, template = _MESSAGES[n % len(_MESSAGES)]
        stamp = iso(epoch + n / 1000)
        message = template.format(i=n, m=n % 97, u=f"{n * 7919 % 100000:05d}")
        record = f"[{level}]\t{stamp}\t{request_id}\t{message}\n"
        events.append({"time": stamp, "type": "function", "record": record})
    return events


def encode(events: list[dict[str, object]]) -> bytes:
    """A push body, encoded the way Lambda sends it (compact JSON)."""
    return json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def function_pushes(request_id: str) -> list[bytes]:
    """``DISTINCT_PUSHES`` bodies of ``RECORDS_PER_PUSH`` function records each."""
    return [encode(function_events(request_id, RECORDS_PER_PUSH, k * RECORDS_PER_PUSH))
            for k in range(DISTINCT_PUSHES)]


def tiny_pushes(request_id: str, events_per_push: int) -> list[bytes]:
    """``DISTINCT_PUSHES`` bodies of ``events_per_push`` tiny function records (~40 bytes each):
    the push shape that costs the most memory per byte once parsed."""
    bodies = []
    for k in range(DISTINCT_PUSHES):
        first = k * events_per_push
        events = [{"time": iso(1_700_000_000.0 + (first + n) / 1000), "type": "function",
                   "record": f"bench-rec {first + n}\n"} for n in range(events_per_push)]
        bodies.append(encode(events))
    return bodies


def platform_start(request_id: str) -> bytes:
    return encode([{"time": iso(time.time()), "type": "platform.start",
                    "record": {"requestId": request_id, "version": "$LATEST"}}])


def platform_runtime_done(request_id: str) -> bytes:
    return encode([{"time": iso(time.time()), "type": "platform.runtimeDone",
                    "record": {"requestId": request_id, "status": "success",
                               "metrics": {"durationMs": 1000.0, "producedBytes": 2}}}])


def new_request_id() -> str:
    return str(uuid.uuid4())


def output_body(entries: int, request_id: str) -> bytes:
    """A body shaped like the extension's default payload, for timing the receiver alone."""
    context = ('"source":"lambda","function_name":"bench","function_version":"$LATEST",'
               '"function_memory_size":1024,"aws_region":"us-east-1","architecture":"x86_64"')
    parts = []
    for n in range(entries):
        level, template = _MESSAGES[n % len(_MESSAGES)]
        message = json.dumps(template.format(i=n, m=n % 97, u=f"{n:05d}"))
        parts.append(f'{{"timestamp":"2024-01-15T10:30:00.000Z","level":"{level}",'
                     f'"message":{message},{context},"log_type":"function",'
                     f'"request_id":"{request_id}"}}')
    return ('{"logs":[' + ",".join(parts) + '],"source":"aws-lambda-extension",'
            '"timestamp":"2024-01-15T10:30:00.150Z"}').encode()
