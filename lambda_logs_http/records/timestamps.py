"""Times as Lambda writes them: ISO 8601, UTC, milliseconds, ``Z``."""

from __future__ import annotations

import time


def utc_now_iso() -> str:
    """Now, as Lambda writes times: ``2024-01-15T10:30:00.000Z``."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
