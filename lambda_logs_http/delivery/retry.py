"""When to try a failed batch again: exponential backoff with full jitter, and ``Retry-After``.

``RetryState`` is the policy's whole memory, as one immutable value (urllib3's ``Retry`` is the
model): each outcome returns a new state, so the worker never half-updates it and a test can
check a sequence of outcomes without clocks or sockets. ``backoff`` and ``parse_retry_after``
are pure functions. The main thread's flush bound is separate, so a long backoff never holds an
invocation — the batch simply waits for a later invocation or the shutdown window.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 5.0
# A receiver may ask for minutes; beyond this we try again anyway (and it may say so again).
MAX_RETRY_AFTER_SECONDS = 60.0


class RetryState:
    """When the next send may start: ``retry_at`` (our backoff, which a new invocation may cut
    short) and ``not_before`` (the receiver's ``Retry-After``, always honoured); clock values."""

    __slots__ = ("retry_at", "not_before")

    def __init__(self, retry_at: float = 0.0, not_before: float = 0.0) -> None:
        object.__setattr__(self, "retry_at", retry_at)
        object.__setattr__(self, "not_before", not_before)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("RetryState is immutable: use the methods that return a new one")

    def __repr__(self) -> str:
        return f"RetryState(retry_at={self.retry_at!r}, not_before={self.not_before!r})"

    @property
    def due(self) -> float:
        """The earliest clock value at which a send may start."""
        return max(self.retry_at, self.not_before)

    def allows(self, now: float) -> bool:
        return now >= self.retry_at and now >= self.not_before

    def after_failure(
        self,
        now: float,
        attempts: int,
        retry_after: float | None,
        rng: Callable[[], float] | None = None,
    ) -> RetryState:
        """The state after attempt number ``attempts`` of a batch failed; ``retry_after`` is the
        receiver's wait in seconds (``parse_retry_after``), or None when it asked for none."""
        not_before = self.not_before if retry_after is None else now + retry_after
        return RetryState(now + backoff(attempts, rng), not_before)

    def after_success(self) -> RetryState:
        return RetryState()

    def without_backoff(self) -> RetryState:
        """A new invocation deserves a fresh attempt: our backoff ends, a Retry-After stays."""
        return RetryState(0.0, self.not_before)


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
    if text.isascii() and text.isdigit():  # str.isdigit() also takes '³', which float() refuses
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
