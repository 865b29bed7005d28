"""How a line a process wrote becomes the ``record`` of a ``function``/``extension`` event.

Lambda's rules, as the sandbox applies them:

* Log format **Text**: the record is the raw text as a string, trailing newline included
  (``"[INFO]\\t2024-01-15T10:30:00.000Z\\t<requestId>\\tmessage\\n"``).
* Log format **JSON**: text that parses as a JSON object is delivered as that object (this is
  how awslambdaric's JSON logger output arrives); anything else, e.g. a ``print()``, stays a
  string. Text that is not strictly JSON (``NaN``, ``Infinity``, as Python's ``json.dumps``
  writes them) stays a string too. A JSON object Python cannot hold as a value — nested
  deeper than its decoder goes, an integer too long for ``int``, a number beyond ``float``
  (``1e999``) — is delivered as it was written (:class:`RawJSON`), as Lambda's own parser
  would.
* stdout/stderr are split into lines; a telemetry-fd frame is one record even when it spans
  several lines (a ``logger.exception`` traceback is one record, as in Lambda's managed runtimes).
"""

from __future__ import annotations

import json
from typing import Any


class RawJSON(str):
    """A record that is JSON text to put into the push as it is (see the module docstring)."""


class _NotJSON(Exception):
    pass


def _refuse(name: str) -> object:
    raise _NotJSON(name)


def to_record(text: str, log_format: str) -> Any:
    """The telemetry ``record`` for one line or frame of process output."""
    if log_format == "JSON":
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                parsed = json.loads(stripped, parse_constant=_refuse)
            except (_NotJSON, json.JSONDecodeError):
                return text
            except (RecursionError, ValueError):  # valid JSON: too deep, or a too-long integer
                return RawJSON(stripped)
            if isinstance(parsed, dict):
                try:
                    json.dumps(parsed, allow_nan=False)
                except (RecursionError, ValueError):  # 1e999 read as inf; deep once encoded
                    return RawJSON(stripped)
                return parsed
    return text


def encode_event(event: dict[str, Any]) -> bytes:
    """One telemetry event as the push carries it (a :class:`RawJSON` record as written)."""
    record = event["record"]
    if isinstance(record, RawJSON):
        head = json.dumps({k: v for k, v in event.items() if k != "record"},
                          separators=(",", ":"), ensure_ascii=False)
        return f'{head[:-1]},"record":{record}}}'.encode()
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate (from a "\udcff" escape): keep it escaped
        return json.dumps(event, separators=(",", ":")).encode()


def strip_newline(text: str) -> str:
    """``text`` without one trailing ``\\n`` (and the ``\\r`` before it), for captured lines."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
