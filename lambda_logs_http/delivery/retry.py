"""When to try a failed batch again: exponential backoff with full jitter, and ``Retry-After``.

Pure functions, so the policy is testable without clocks or sockets. The worker applies them;
the main thread's flush bound is separate, so a long backoff never holds an invocation — the
batch simply waits for a later invocation or the shutdown window.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 5.0
# A receiver may ask for minutes; beyond this we try again anyway (and it may say so again).
MAX_RETRY_AFTER_SECONDS = 60.0


def backoff(attempt: int, rng: Callable[[], float] | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter, capped.

    Full jitter (a uniform draw below the exponential bound) spreads retries from many
    functions hitting one recovering receiver, instead of synchronising them.
    """
    if rng is None:
        import random  # only once a send has failed

        rng = random.random
    return rng() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** min(attempt, 16)))


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    None when absent or unparseable; clamped to 0..MAX_RETRY_AFTER_SECONDS.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        from email.utils import parsedate_to_datetime  # rare: only for HTTP-date values

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now_epoch
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
