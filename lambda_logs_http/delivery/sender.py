"""One batch in, one request out, and what its answer means.

``Sender`` builds the request for a batch (idempotency headers, gzip when configured, a timeout
that never outlasts the caller's deadline) and hands it to the transport; it knows nothing of
queues. ``FailureLog`` turns a streak of failed sends into one line, not one per attempt.
``split_too_large`` is what a 413 asks for: the batch as halves, or its single record truncated.
"""

from __future__ import annotations

from .. import log
from ..settings import hints
from .batching import Batch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Union

    from ..http.result import SendResult
    from ..http.transport import Transport
    from ..settings.model import Batching
    from .spill import SpilledBatch

    AnyBatch = Union[Batch, SpilledBatch]

# A record is never truncated below this (a 413 for less drops it instead).
MIN_TRUNCATED_BYTES = 1024


class Sent:
    """What became of one request: the transport's result and what it cost."""

    __slots__ = ("result", "elapsed", "raw_bytes", "sent_bytes")

    def __init__(self, result: SendResult, elapsed: float, raw_bytes: int, sent_bytes: int) -> None:
        self.result = result
        self.elapsed = elapsed  # seconds
        self.raw_bytes = raw_bytes  # the body before compression
        self.sent_bytes = sent_bytes


class Sender:
    """Sends batches through one transport (which owns the connection)."""

    def __init__(
        self,
        transport: Transport,
        batching: Batching,
        timeout_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self._gzip_level = batching.compression_level if batching.compression == "gzip" else 0
        self._timeout = timeout_seconds
        self._clock = clock

    def send(self, batch: AnyBatch, deadline: float | None) -> Sent:
        """Send ``batch`` once; ``deadline`` (a clock value, or None) bounds the request."""
        timeout = self._timeout
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self._clock()))
        framing = batch.framing
        body = batch.body()
        raw_bytes = len(body)
        # The same on every retry, so a receiver can drop a batch it already has.
        headers = {
            "Content-Type": framing.content_type,
            **dict(framing.request_headers),
            "Idempotency-Key": batch.batch_id,
            "X-Request-Id": batch.batch_id,
        }
        if self._gzip_level:
            from ..http.compression import gzip_bytes

            body = gzip_bytes(body, self._gzip_level)
            headers["Content-Encoding"] = "gzip"
        encoder = framing.encoder
        answer_limit = encoder.answer_limit(len(batch)) if encoder is not None else 0
        started = self._clock()
        if answer_limit:
            result = self.transport.send(body, headers, timeout, answer_limit=answer_limit)
        else:
            result = self.transport.send(body, headers, timeout)
        batch.attempts += 1
        if not result.ok and encoder is not None and result.status:
            # What the receiver's documented error answer means (HEC's code, Datadog's 413).
            meaning = encoder.explain(result.status, result.answer)
            if meaning:
                result.error += f" ({meaning})"
        return Sent(result, self._clock() - started, raw_bytes, len(body))

    def abort(self) -> None:
        self.transport.abort()

    def close(self) -> None:
        self.transport.close()


class FailureLog:
    """Logs the first failure of a kind, repeats only at debug level, and the recovery.

    A failure's kind is its ``(status, kind)`` (``SendResult.failure_key``), not its text: an
    answer that carries a request id or a time is the same failure each time.
    """

    def __init__(self) -> None:
        self._key: tuple[int, str] | None = None
        self._attempts = 0

    @property
    def failing(self) -> bool:
        """Whether the last send failed (until one succeeds)."""
        return self._key is not None

    def refused(self, result: SendResult, records: int) -> None:
        """The receiver refused a batch for good: it was dropped."""
        self._attempts += 1
        if self._first(result):
            log.error(
                f"receiver refused a batch of {records} records ({result.error}); "
                f"dropped{hints.for_failure(result.status, result.kind)} "
                "(repeats are logged at debug level)"
            )
        elif log.enabled(log.DEBUG):
            log.debug(f"receiver refused another batch of {records} records")

    def will_retry(self, result: SendResult, retry_in: float, elapsed: float, attempt: int) -> None:
        """A send failed and will be tried again in ``retry_in`` seconds."""
        self._attempts += 1
        if self._first(result):
            log.emit(
                log.ERROR if result.needs_fix else log.WARNING,
                f"send failed ({result.error}{hints.for_failure(result.status, result.kind)}); "
                f"records are kept and retried with backoff (next in {retry_in:.2f} s; repeats "
                "of this error are logged at debug level)",
            )
        elif log.enabled(log.DEBUG):
            log.debug(
                f"send failed again ({result.error}) after {elapsed * 1000:.0f} ms; "
                f"attempt {attempt}, retry in {retry_in:.2f} s"
            )

    def delivered(self) -> None:
        if self._key is not None:
            log.info(f"delivery resumed after {self._attempts} failed attempts")
        self._key, self._attempts = None, 0

    def _first(self, result: SendResult) -> bool:
        key = result.failure_key
        first = key != self._key
        self._key = key
        return first


def split_too_large(batch: AnyBatch, now: float) -> list[Batch]:
    """What to send instead of a batch refused with 413: its halves, or its one record
    truncated to half its size; [] when a single record is already too small to cut.

    The invocations the batch held go with the last replacement, so they are released only once
    everything they wait for is delivered.
    """
    entries, framing = batch.entries, batch.framing
    if len(entries) > 1:
        middle = len(entries) // 2
        halves = [Batch(now, entries[:middle], framing), Batch(now, entries[middle:], framing)]
    else:
        entry = entries[0] if entries else ""
        if len(entry) // 2 < MIN_TRUNCATED_BYTES:
            return []
        halves = [Batch(now, [framing.truncate(entry, len(entry) // 2)], framing)]
    halves[-1].marks = list(batch.marks)
    return halves
