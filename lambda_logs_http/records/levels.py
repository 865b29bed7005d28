"""Log level and request id from one log line, in the formats Lambda runtimes actually print.

Recognised, most specific first:

* Python runtime, Text format: ``[ERROR]\\t2024-01-15T10:30:00.000Z\\t<requestId>\\tmessage``
* Node.js runtime, Text format: ``2024-05-15T23:59:20.159Z\\t<requestId>\\tWARN\\tmessage``
* a JSON object printed as a line (custom runtimes, JSON loggers): its ``level``/``severity``
* a common prefix: ``[LEVEL] …``, ``LEVEL: …``/``Level: …`` (also ``WARNING:root:…``), ``LEVEL …``

A line matching none of them, or naming no known level, is INFO (as Lambda does).
"""

from __future__ import annotations

import json
import re

from . import jsonsafe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_LEVEL = "INFO"

# Every spelling we accept, mapped to the one we send. Lambda's own JSON logs use TRACE, DEBUG,
# INFO, WARN, ERROR, FATAL; Python's logging says WARNING and CRITICAL.
LEVEL_NAMES = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "ERR": "ERROR",
    "CRITICAL": "FATAL",
    "FATAL": "FATAL",
    "PANIC": "FATAL",
}

# "[LEVEL]" as the Python runtime writes it, for each spelling of LEVEL_NAMES.
_BRACKETED = {f"[{spelling}]": level for spelling, level in LEVEL_NAMES.items()}
# [word] in any case; word: in any case; or an upper-case word and a space.
_PREFIX = re.compile(r"[ \t]{0,8}(?:\[([A-Za-z]{3,8})\]|([A-Za-z]{3,8}):|([A-Z]{3,8})[ \t])")
_NO_REQUEST_ID = ("", "None", "null", "undefined")
# A JSON line's NaN/Infinity (Python's json.dumps writes them) become strings at once: the fields
# must encode as strict JSON later. Same speed as json.loads, which also uses one decoder.
_decode = json.JSONDecoder(parse_constant=jsonsafe.CONSTANTS.__getitem__).decode

# (level, message, request_id, structured fields or None): a tuple, not an object, because one
# is built for every log line and an instance costs measurably more.
Parsed = tuple


def normalize(level: object) -> str | None:
    """The canonical name for ``level``, or None if it names no level we know."""
    if isinstance(level, str):
        return LEVEL_NAMES.get(level) or LEVEL_NAMES.get(level.strip().upper())
    return None


def parse_text(line: str) -> Parsed:
    """``(level, message, request_id, None)`` of one text record (a line the runtime printed),
    or what ``parse_fields`` says of a line that is a JSON object."""
    # Both Lambda text formats have four tab-separated fields: one split recognises either,
    # several times faster than a regular expression (this runs for every line).
    parts = line.split("\t", 3)
    if len(parts) == 4:
        # The Python runtime's line, its level in one of our spellings: one dict lookup where
        # the general case below takes three slices (each costs a slice object in CPython).
        level = _BRACKETED.get(parts[0])
        if level is not None:
            text = parts[3].removesuffix("\n")  # _message, inlined: a call less per line
            if "\r" in text:
                text = _joined_lines(text)
            request_id = parts[2]
            return level, text, "" if request_id in _NO_REQUEST_ID else request_id, None
    return _parse_split(line, parts)


def _parse_split(line: str, parts: list[str]) -> Parsed:
    """``parse_text`` in general, from ``parts``: ``line`` split at its first three tabs."""
    if len(parts) == 4:
        first = parts[0]
        word = None
        if first[:1] == "[" and first[-1:] == "]":  # Python: [LEVEL] time request-id message
            word, request_id = first[1:-1], parts[2]
        elif first[:1].isdigit() and first[4:5] == "-":  # Node: time request-id LEVEL message
            word, request_id = parts[2], parts[1]
        if word is not None:
            level = LEVEL_NAMES.get(word) or LEVEL_NAMES.get(word.upper())
            if level:
                text = _message(parts[3])
                return level, text, "" if request_id in _NO_REQUEST_ID else request_id, None
    text = _message(line)
    if text[:1] == "{" and text[-1:] == "}":
        try:
            fields = _decode(text)
        except json.JSONDecodeError as error:
            # Not JSON (a printed Python dict, say) costs one failed parse, as it always did;
            # a raw control character in a string is JSON enough for the careful decoder.
            fields = _careful(text) if error.msg.startswith("Invalid control") else None
        except (ValueError, RecursionError):  # an integer too long for int(); too deep
            fields = _careful(text)
        if isinstance(fields, dict):
            return parse_fields(fields)
    match = _PREFIX.match(text)
    if match:
        word = match.group(1) or match.group(2) or match.group(3)
        return LEVEL_NAMES.get(word.upper(), DEFAULT_LEVEL), text, "", None
    return DEFAULT_LEVEL, text, "", None


def parse_fields(fields: Mapping[str, object]) -> Parsed:
    """``(level, message, request_id, fields)`` of a structured record (Lambda's JSON format)."""
    named = (
        fields.get("level") or fields.get("levelname") or fields.get("severity")
        or fields.get("log.level")
    )  # fmt: skip
    # Lambda's own spelling (INFO, WARN...) is found without a call; normalize does the rest.
    level = (
        (LEVEL_NAMES.get(named) if type(named) is str else None) or normalize(named)
        or DEFAULT_LEVEL
    )  # fmt: skip
    message = fields.get("message")
    if message is None:
        message = fields.get("msg")
    if message is None and "errorMessage" in fields:
        # Lambda's JSON record for an unhandled exception has no "message".
        error_type = fields.get("errorType")
        message = fields["errorMessage"]
        if error_type:
            message = f"{_text(error_type)}: {_text(message)}"
    if isinstance(message, str):
        text = message
    else:
        text = jsonsafe.dumps(fields if message is None else message)
    request_id = fields.get("requestId") or fields.get("request_id") or fields.get("aws_request_id")
    return level, text, request_id if isinstance(request_id, str) else "", fields


def _careful(text: str) -> object:
    try:
        return jsonsafe.loads(text)
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else jsonsafe.dumps(value)


def _message(text: str) -> str:
    text = text.removesuffix("\n")
    return _joined_lines(text) if "\r" in text else text


def _joined_lines(text: str) -> str:
    """The Python runtime joins a multi-line record (a traceback) with carriage returns."""
    return text.rstrip("\r").replace("\r\n", "\n").replace("\r", "\n")
