"""How a line a process wrote becomes the ``record`` of a ``function``/``extension`` event.

Lambda's rules, as the sandbox applies them:

* Log format **Text**: the record is the raw text as a string, trailing newline included
  (``"[INFO]\\t2024-01-15T10:30:00.000Z\\t<requestId>\\tmessage\\n"``).
* Log format **JSON**: text that parses as a JSON object is delivered as that object (this is
  how awslambdaric's JSON logger output arrives); anything else, e.g. a ``print()``, stays a
  string.
* stdout/stderr are split into lines; a telemetry-fd frame is one record even when it spans
  several lines (a ``logger.exception`` traceback is one record, as in Lambda's managed runtimes).
"""

from __future__ import annotations

import json
from typing import Any


def to_record(text: str, log_format: str) -> Any:
    """The telemetry ``record`` for one line or frame of process output."""
    if log_format == "JSON":
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                return text
            if isinstance(parsed, dict):
                return parsed
    return text


def strip_newline(text: str) -> str:
    """``text`` without one trailing ``\\n`` (and the ``\\r`` before it), for captured lines."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
