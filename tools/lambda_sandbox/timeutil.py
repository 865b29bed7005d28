"""Timestamps in the forms Lambda uses, and the one mapping from monotonic to wall time.

Durations are measured with ``time.monotonic()`` (immune to clock steps); telemetry ``time``
fields and ``deadlineMs`` are wall-clock (epoch) values, as Lambda sends them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def epoch_ms(epoch_s: float | None = None) -> int:
    """Milliseconds since the epoch: the unit of ``deadlineMs`` and ``-Deadline-Ms`` headers."""
    return int((time.time() if epoch_s is None else epoch_s) * 1000)


def iso(epoch_s: float | None = None) -> str:
    """``2022-10-21T14:05:03.165Z``: UTC, millisecond precision, the telemetry ``time`` format."""
    t = time.time() if epoch_s is None else epoch_s
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def wall_from_monotonic(mono: float) -> float:
    """The epoch time that corresponds to a ``time.monotonic()`` reading taken in this process."""
    return time.time() - (time.monotonic() - mono)


def ms_between(start: float, end: float) -> float:
    """Milliseconds between two monotonic readings, rounded to 0.001 ms as Lambda reports them."""
    return round((end - start) * 1000.0, 3)
