"""Reading a body the way Splunk's HTTP Event Collector reads ``/services/collector/event``.

Events are JSON objects one after the other (whitespace between them allowed); each must have a
non-blank ``event`` (code 12/13 otherwise); ``time`` is epoch seconds as a number or a numeric
string; ``fields`` (indexed fields) must be a flat object whose values are strings or arrays of
strings (code 15 otherwise). Any problem refuses the whole request (400), as HEC does, with
the code and the failing event's number.
"""

from __future__ import annotations

import json
from typing import Any


class Refused(ValueError):
    def __init__(self, code: int, text: str, number: int) -> None:
        super().__init__(f"HEC code {code}: {text} (event #{number})")
        self.answer = json.dumps({"text": text, "code": code, "invalid-event-number": number})


def read_events(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8")
    decode = json.JSONDecoder().raw_decode
    events: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if index >= len(text):
            break
        try:
            event, index = decode(text, index)
        except ValueError:
            raise Refused(6, "Invalid data format", len(events)) from None
        check(event, len(events))
        events.append(event)
    if not events:
        raise Refused(5, "No data", 0)
    return events


def check(event: Any, number: int) -> None:
    if not isinstance(event, dict):
        raise Refused(6, "Invalid data format", number)
    if "event" not in event:
        raise Refused(12, "Event field is required", number)
    value = event["event"]
    if value is None or (isinstance(value, str) and not value.strip()) or value == {}:
        raise Refused(13, "Event field cannot be blank", number)
    if "time" in event:
        time = event["time"]
        if isinstance(time, str):
            float(time)
        elif type(time) not in (int, float):
            raise Refused(6, "Invalid data format", number)
    fields = event.get("fields", {})
    if not isinstance(fields, dict):
        raise Refused(15, "Error in handling indexed fields", number)
    for item in fields.values():
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(v, str) for v in items):
            raise Refused(15, "Error in handling indexed fields", number)
