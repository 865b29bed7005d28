"""``HTTP_FORMAT=splunk_hec``: Splunk HTTP Event Collector events, for
``/services/collector/event``.

A body is event objects one after the other, with nothing between them (HEC's batch form).
Each event has ``time`` (epoch seconds with milliseconds, a number), ``host`` (the execution
environment's log stream when known, else the function's name), ``source``
(``lambda:<function>``), ``sourcetype`` (``aws:lambda``), ``event`` and ``fields``.

``event`` is the line's text; a structured record (a JSON log line's object, a platform event's)
is the event object itself, led by ``message``, so Splunk extracts its fields at search time
without a string to parse. ``fields`` are HEC's indexed fields: a flat object of strings (HEC
refuses nested values in them), holding the level, the log type, the function's context, the
invocation's request, tenant and trace, the cold start, and ``HTTP_EXTRA_FIELDS``.

The token goes in ``Authorization: Splunk <token>`` (``HTTP_AUTH_TYPE=splunk``). HEC's error
answers carry a ``code``; its meaning is named in the failure's log line.
"""

from __future__ import annotations

import json

from .base import Encoder, check_object, epoch_seconds_ms, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..record import EntryContext, Record

SOURCETYPE = "aws:lambda"
_COLD_START = ',"cold_start":"true"'  # HEC's fields are strings
ENTRY_KEYS = frozenset({"time", "host", "source", "sourcetype", "event", "fields"})
# HEC's documented status codes ("Troubleshoot HTTP Event Collector": "Possible error codes"),
# with what to do where there is something to do.
HEC_CODES = {
    1: "token disabled: enable the HEC token in Splunk",
    2: "token is required: set HTTP_AUTH_TYPE=splunk and HTTP_AUTH_CREDENTIALS",
    3: "invalid authorization: set HTTP_AUTH_TYPE=splunk (Authorization: Splunk <token>)",
    4: "invalid token: check HTTP_AUTH_CREDENTIALS",
    5: "no data",
    6: "invalid data format",
    7: "incorrect index: the token may not write to the index it is given",
    8: "internal server error",
    9: "server is busy",
    10: "data channel is missing: indexer acknowledgement is on for this token; turn it off "
    "for this token (this extension does not poll acknowledgements)",
    11: "invalid data channel",
    12: "event field is required",
    13: "event field cannot be blank",
    14: "ACK is disabled",
    15: "error in handling indexed fields",
    16: "query string authorization is not enabled",
    17: "HEC is healthy",
    18: "HEC is unhealthy, queues are full",
    19: "HEC is unhealthy, ack service unavailable",
    20: "HEC is unhealthy, queues are full, ack service unavailable",
}


class SplunkHecEncoder(Encoder):
    name = "splunk_hec"
    content_type = "application/json"
    head = ""
    separator = ""
    tail = ""

    def __init__(self, context: EntryContext) -> None:
        super().__init__(context)
        host = context.instance or context.function_name
        self._meta_json = (
            f',"host":{quote(host)},"source":{quote("lambda:" + context.function_name)}'
            f',"sourcetype":"{SOURCETYPE}","event":'
        )
        fields = (
            f',"function_name":{quote(context.function_name)}'
            f',"function_version":{quote(context.function_version)}'
            f',"aws_region":{quote(context.aws_region)}'
            f',"architecture":{quote(context.architecture)}'
        )
        if context.function_memory_size:
            fields += f',"function_memory_size":"{int(context.function_memory_size)}"'
        if context.account_id:
            fields += f',"account_id":{quote(context.account_id)}'
        if context.extension_version:
            fields += f',"extension_version":{quote(context.extension_version)}'
        for name, value in context.extra_fields.items():
            text = value if isinstance(value, str) else json.dumps(value)
            fields += f",{quote(name)}:{quote(text)}"
        self._context_fields = fields

    def entry(self, record: Record) -> str:
        whole, millis = epoch_seconds_ms(record.time)
        if whole < 0:  # before 1970 (a hostile time): HEC takes no negative time
            whole, millis = 0, "000"
        fields = record.fields
        message = record.message
        if fields is not None:
            event = self.object_with_message(message, fields)
        elif message and not message.isspace():
            event = quote(message)
        else:
            # HEC refuses a blank event (code 13), and the whole request with it.
            event = '{"message":' + quote(message) + "}"
        # One f-string: each += would copy the whole entry again.
        return (
            f'{{"time":{whole}.{millis}{self._meta_json}{event}'
            f',"fields":{{"level":"{record.level}","log_type":"{record.log_type}"'
            f"{self._context_fields}{self.invocation(record)}"
            f"{_COLD_START if record.cold_start else ''}}}}}"
        )

    # -- the batch side -----------------------------------------------------------------------

    def shrink(self, entry: Any) -> tuple[Any, Any]:
        event = entry.get("event")
        if isinstance(event, dict):
            entry["event"] = {"message": event.get("message", "")}
            return entry["event"], "message"
        return entry, "event"

    def check_entry(self, entry: Any) -> str:
        problem = check_object(entry, ENTRY_KEYS)
        if problem:
            return problem
        event = entry.get("event")
        if not (isinstance(event, dict) or (isinstance(event, str) and event)):
            return "an entry has no event"
        time = entry.get("time")
        if type(time) not in (int, float):
            return "an entry's time is not a number"
        fields = entry.get("fields")
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            return "an entry's fields are not an object of strings"
        return ""

    def explain(self, status: int, answer: bytes) -> str:
        """HEC's error answer (``{"text": …, "code": N}``, with ``invalid-event-number`` for
        an event it could not read) in words."""
        try:
            body = json.loads(answer.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            return ""
        if not isinstance(body, dict) or type(body.get("code")) is not int:
            return ""
        code = body["code"]
        meaning = HEC_CODES.get(code) or str(body.get("text", ""))[:120]
        text = f"HEC code {code}: {meaning}"
        number = body.get("invalid-event-number")
        if type(number) is int:
            text += f" (event #{number} of the batch)"
        return text


ENCODER = SplunkHecEncoder
