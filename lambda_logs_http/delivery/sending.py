"""The sending side: the backlog's head, sent oldest first, until accounted for.

A failure that may succeed later keeps the batch at the head and is retried with backoff
(``retry``), never before a ``Retry-After``; a new invocation's runtimeDone cuts our backoff
short (``cut_backoff``). A 413 puts the batch's halves (or its truncated record) first, a
refusal drops and counts it, and after the next success the drops are reported to the receiver
in an entry of their own.

``SendLoop`` is the policy; the worker runs it on a thread of its own, so that a send that
hangs (a receiver that never answers, a connect that never completes) holds up nothing but
itself: pushes keep being taken in, and at shutdown the intake keeps everything — the batch in
flight included, as it stays in the backlog until settled — on disk.
"""

from __future__ import annotations

import time

from .. import log
from ..settings import hints
from .batching import SEED, Batch
from .intake import count_truncated
from .retry import RetryState, parse_retry_after
from .sender import MIN_TRUNCATED_BYTES, FailureLog, split_too_large

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Union

    from ..http.result import SendResult
    from ..records.encoders.base import AnswerReport
    from ..records.transform import Transformer
    from ..stats import Stats
    from .backlog import Backlog, Ledger
    from .batching import Batcher
    from .sender import Sender
    from .spill import SpilledBatch

    AnyBatch = Union[Batch, SpilledBatch]

# The drop reason of entries a 2xx answer refused for good (a ``_bulk`` mapping error).
BULK_REJECTED = "bulk_rejected"
# Refusal kinds logged one by one (then at debug level).
_LOGGED_KINDS = 16
# A send slower than this means the receiver, not our CPU, limits throughput: then batches
# beyond the memory cap go to disk. Otherwise spilling would only add work, so the intake stops
# taking pushes instead and the listener's backpressure slows Lambda down.
SLOW_SEND_SECONDS = 0.1


class SendLoop:
    """Sends the backlog's head; ``send_due`` runs on the sender thread, the other methods are
    safe from the intake's."""

    def __init__(
        self,
        sender: Sender,
        backlog: Backlog,
        ledger: Ledger,
        stats: Stats,
        transformer: Transformer,
        clock: Callable[[], float] = time.monotonic,
        now_epoch: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
    ) -> None:
        """``rng`` draws the backoff's jitter (default: ``random.random``)."""
        self.sender = sender
        self._backlog = backlog
        self._ledger = ledger
        self._stats = stats
        self._transformer = transformer
        self._clock = clock
        self._now_epoch = now_epoch
        self._rng = rng
        self._retry = RetryState()
        self._failures = FailureLog()
        self._slow_receiver = False  # the last send took SLOW_SEND_SECONDS or more
        self._refusals_logged: set[str] = set()  # kinds of entry refusals already logged
        self._retrying_entries = False  # in a streak of answers refusing entries for now
        self._sending_since: float | None = None  # a send in flight, since when
        self.batcher: Batcher | None = None  # the intake's: a 413 lowers its limit
        self.deadline: float | None = None  # at shutdown: no send may outlast it
        self._aborted = False
        # Called after each send: the intake may be holding pushes back until there is room, or
        # until the receiver turns out to be behind (see intake).
        self.on_progress: Callable[[], None] = lambda: None

    # -- safe from the intake's thread --------------------------------------------------------

    def cut_backoff(self) -> None:
        with self._backlog.changed:
            self._retry = self._retry.without_backoff()
            self._backlog.notify()

    def receiver_is_behind(self) -> bool:
        """Failing, slow, or in the middle of a send that is taking long."""
        since = self._sending_since
        in_long_send = since is not None and self._clock() - since >= SLOW_SEND_SECONDS
        return self._failures.failing or self._slow_receiver or in_long_send

    def time_until_behind(self) -> float | None:
        """Seconds until the send in flight counts as long (None: no send in flight)."""
        since = self._sending_since
        if since is None:
            return None
        return max(0.0, since + SLOW_SEND_SECONDS - self._clock())

    def abort(self) -> None:
        """End sending for good (shutdown): a send in flight fails now, and no other starts —
        what is left stays in the backlog, for the intake to keep on disk."""
        self._aborted = True
        self.deadline = self._clock()  # a send that starts anyway gets no time
        self.sender.abort()

    # -- the sender thread --------------------------------------------------------------------

    def wait_time(self) -> float | None:
        """Seconds until a send is due (0: now); None when there is nothing to send, or the
        shutdown deadline has passed."""
        now = self._clock()
        if self._aborted or not self._backlog:
            return None
        if self.deadline is not None and now >= self.deadline:
            return None
        return max(0.0, self._retry.due - now)

    def send_due(self) -> None:
        """Send what is due, oldest first, until the backlog is empty, a send fails, or the
        shutdown deadline."""
        while not self._aborted:
            now = self._clock()
            if not self._retry.allows(now):
                return
            if self.deadline is not None and now >= self.deadline:
                return
            head = self._backlog.checkout()
            if head is None:
                return
            settled = self._send(head)
            self.on_progress()  # room made, or the receiver is now known to be failing
            if not settled:
                return

    # -- policy -------------------------------------------------------------------------------

    def _send(self, batch: AnyBatch) -> bool:
        """Send ``batch`` (checked out); True when it is accounted for (delivered, split or
        dropped), False when it stays at the head for a later attempt."""
        self._sending_since = self._clock()
        try:
            sent = self.sender.send(batch, self.deadline)
        except BaseException:
            self._backlog.settle(batch, remove=False)
            raise
        finally:
            self._sending_since = None
        result = sent.result
        self._slow_receiver = sent.elapsed >= SLOW_SEND_SECONDS
        if batch.attempts > 1:
            self._stats.add("retried", len(batch))
        if result.ok:
            report = self._read_answer(batch, result)
            if report is not None:
                return self._partly_delivered(batch, report, sent.elapsed)
            self._backlog.settle(batch, remove=True)
            self._ledger.delivered(batch)
            with self._backlog.changed:  # cut_backoff, from the intake, writes it too
                self._retry = self._retry.after_success()
            self._queue_drop_reports()
            self._failures.delivered()
            if log.enabled(log.DEBUG):
                compressed = sent.sent_bytes != sent.raw_bytes
                gzipped = f" ({sent.sent_bytes} gzipped)" if compressed else ""
                log.debug(
                    f"sent batch {batch.batch_id}: {len(batch)} records, {sent.raw_bytes} bytes"
                    f"{gzipped}, HTTP {result.status} in {sent.elapsed * 1000:.1f} ms"
                )
            return True
        if result.status == 413:
            self._backlog.settle(batch, remove=True)
            self._too_large(batch)
            return True
        if not result.retryable:
            self._backlog.settle(batch, remove=True)
            self._ledger.dropped(batch, f"http_{result.status}" if result.status else "error")
            self._failures.refused(result, len(batch))
            return True
        self._backlog.settle(batch, remove=False)
        now = self._clock()
        wait = parse_retry_after(result.retry_after, self._now_epoch())
        with self._backlog.changed:
            self._retry = self._retry.after_failure(now, batch.attempts, wait, self._rng)
        self._failures.will_retry(result, self._retry.due - now, sent.elapsed, batch.attempts)
        return False

    def _read_answer(self, batch: AnyBatch, result: SendResult) -> AnswerReport | None:
        """What a 2xx answer says of the batch's entries, for a format whose answer says it
        (Elasticsearch's ``_bulk``); None when every entry was taken."""
        encoder = batch.framing.encoder
        if encoder is None or not result.answer or not encoder.answer_limit(len(batch)):
            return None
        try:
            report = encoder.read_answer(result.answer, len(batch))
        except Exception as exc:  # an answer we cannot read must not lose the batch
            log.warning(
                f"could not read the receiver's answer ({type(exc).__name__}); "
                "its entries are taken as delivered"
            )
            return None
        if report is not None and report.unchecked:
            log.warning(
                f"the receiver's answer covered {len(batch) - report.unchecked} of "
                f"{len(batch)} entries (it was longer than read): the rest are taken as delivered"
            )
        if report is None or not (report.retry or report.rejected):
            return None
        return report

    def _partly_delivered(self, batch: AnyBatch, report: AnswerReport, elapsed: float) -> bool:
        """A 2xx answer that refused some entries: those refused for now go again in a batch
        of their own (first in line, after a backoff, holding the batch's invocations), those
        refused for good are dropped and counted (``bulk_rejected``). True when nothing is
        left to retry."""
        entries, reports = batch.entries, batch.reports
        retry, rejected = set(report.retry), set(report.rejected)
        delivered = sum(
            1 for i in range(reports, len(entries)) if i not in retry and i not in rejected
        )
        lost = sum(1 for i in rejected if i >= reports)
        self._backlog.settle(batch, remove=True)
        self._ledger.partly_delivered(batch, delivered, release=not retry)
        if lost:
            self._ledger.dropped_records(BULK_REJECTED, lost)
            kind = report.first_error.split(":", 1)[0]
            if kind not in self._refusals_logged and len(self._refusals_logged) < _LOGGED_KINDS:
                self._refusals_logged.add(kind)
                log.error(
                    f"the receiver refused {len(rejected)} of {len(entries)} entries of a batch "
                    f"for good (first: {report.first_error}): dropped and counted as "
                    f"{BULK_REJECTED} (repeats of this kind are logged at debug level)"
                )
            elif log.enabled(log.DEBUG):
                log.debug(f"the receiver refused {len(rejected)} entries: {report.first_error}")
        if not retry:
            with self._backlog.changed:
                self._retry = self._retry.after_success()
            self._retrying_entries = False
            self._queue_drop_reports()
            self._failures.delivered()
            return True
        again = Batch(self._clock(), [entries[i] for i in sorted(retry)], batch.framing)
        again.marks = list(batch.marks)
        again.attempts = batch.attempts
        again.reports = sum(1 for i in retry if i < reports)
        self._backlog.put_front(again)
        now = self._clock()
        with self._backlog.changed:
            self._retry = self._retry.after_failure(now, again.attempts, None, self._rng)
        retry_in = self._retry.due - now
        if not self._retrying_entries:
            self._retrying_entries = True
            log.warning(
                f"the receiver refused {len(retry)} of {len(entries)} entries for now "
                f"({report.retry_error}): they are kept and sent again with backoff (next in "
                f"{retry_in:.2f} s; repeats are logged at debug level)"
            )
        elif log.enabled(log.DEBUG):
            log.debug(f"{len(retry)} entries refused for now again; retry in {retry_in:.2f} s")
        self._queue_drop_reports()
        return False

    def _too_large(self, batch: AnyBatch) -> None:
        """413: send the halves instead; a single record is truncated, then dropped."""
        replacements = split_too_large(batch, self._clock())
        if not replacements:
            self._ledger.dropped(batch, "too_large")
            log.error("receiver refused even a single small record (413): dropped it")
            return
        batcher = self.batcher
        if len(replacements) > 1 and batcher is not None:
            # The receiver's limit is below this batch: keep later batches under half of it
            # instead of having every one of them refused and split again.
            limit = max(4 * MIN_TRUNCATED_BYTES, batch.size // 2)
            if limit < batcher.max_bytes:
                batcher.max_bytes = limit
                log.warning(
                    f"receiver refused {batch.size} bytes (413): batches are now limited "
                    f"to {limit} bytes ({hints.BATCH_LIMIT})"
                )
        elif len(replacements) == 1:
            count_truncated(self._stats, 1, f"refused by the receiver (413) in {batch.size} bytes")
        self._backlog.put_front(*replacements)

    def _queue_drop_reports(self) -> None:
        """Put one report entry per reason of loss at the head of the line."""
        unreported = self._ledger.take_unreported()
        if not unreported:
            return
        entries = [self._transformer.drop_report(r, n) for r, n in unreported.items()]
        framing = self.batcher.framing if self.batcher is not None else SEED
        batch = Batch(self._clock(), entries, framing)
        batch.reports = len(entries)
        self._backlog.put_front(batch)
