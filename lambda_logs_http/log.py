"""The extension's own log lines.

They go to stdout, which Lambda sends to CloudWatch (and, as ``extension`` records, back to our
own Telemetry subscription, where ``transform`` recognises the prefix and skips them so a debug
line never turns into a batch that logs another debug line). ``logging`` is not used: it costs
several milliseconds to import on every cold start, and a prefix plus a level is all we need.
"""

from __future__ import annotations

import _thread
import sys

PREFIX = "[EXTENSION]"

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "warn": WARNING, "error": ERROR}
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}

_lock = _thread.allocate_lock()  # not threading: it is not imported before registering
_threshold = INFO
_stream = sys.stdout


def set_level(level: int) -> None:
    """Show lines at ``level`` and above (one of DEBUG, INFO, WARNING, ERROR)."""
    global _threshold
    _threshold = level


def set_stream(stream: object) -> None:
    """Redirect output (tests); the stream needs ``write`` and ``flush``."""
    global _stream
    _stream = stream


def enabled(level: int) -> bool:
    """Whether a line at ``level`` would be shown: lets callers skip building costly messages."""
    return level >= _threshold


def emit(level: int, message: str) -> None:
    """Write one line; newlines inside ``message`` are folded so each call stays one record."""
    if level < _threshold:
        return
    if "\n" in message:
        message = message.replace("\n", " | ")
    line = f"{PREFIX} {_NAMES.get(level, 'INFO')} {message}\n"
    with _lock:
        try:
            _stream.write(line)  # type: ignore[attr-defined]
            _stream.flush()  # type: ignore[attr-defined]
        except (OSError, ValueError):
            pass  # a closed stdout must never take the extension down


def debug(message: str) -> None:
    emit(DEBUG, message)


def info(message: str) -> None:
    emit(INFO, message)


def warning(message: str) -> None:
    emit(WARNING, message)


def error(message: str) -> None:
    emit(ERROR, message)
