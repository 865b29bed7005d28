"""Which invocation's logs have been delivered: the rule behind "flush before freeze".

Lambda freezes the environment as soon as every extension has called ``/event/next``; whatever
is still in memory then waits, possibly forever. So after an INVOKE the main thread waits here
until the worker has delivered everything up to that request's ``platform.runtimeDone`` — the
record Lambda sends after all of the request's function output — or until a bound: the flush
budget counted from runtimeDone's arrival, and never later than the invocation's deadline.

It also carries what only the main thread sees of an invocation to the worker thread, which
writes the entries: the ``tracing`` of each INVOKE event (``note_invoke``, ``invoke_tracing``),
and which invocation came first (the environment's cold start).
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DELIVERED = "delivered"
BUDGET = "budget"
DEADLINE = "deadline"

_REMEMBERED = 64  # request ids kept; older ones can no longer be waited for
# Below this budget the waiter is woken when runtimeDone arrives; above it, it finds out on its
# own (see ``wait``).
_WAKE_ON_ARRIVAL_BELOW = 0.05


class InvocationProgress:
    """Shared by the listener (arrivals), the worker (deliveries) and the main thread (waits)."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._arrived: dict[str, float] = {}
        self._delivered: dict[str, None] = {}
        self._reports: dict[str, None] = {}
        self._report_count = 0  # every report that arrived, for wait_another_report
        self._wake_on_arrival = False
        self._waiting_for_report = False
        # The invocation the main thread waits for: never forgotten to make room, so any number
        # of forged or unknown runtimeDone events cannot push it out.
        self._current = ""
        self._tracing: dict[str, object] = {}  # request id -> its INVOKE's tracing member
        self.first_invoke = ""  # the first INVOKE's request id (written once, by the main thread)

    def note_invoke(self, request_id: str, tracing: object) -> None:
        """The main thread received INVOKE for ``request_id``; ``tracing`` is its X-Ray member
        (None when absent). Remembered for the last ``_REMEMBERED`` invocations: the worker
        looks it up once per invocation (a report arrives during the next one)."""
        with self._cond:
            if not self.first_invoke:
                self.first_invoke = request_id
            if tracing is not None:
                self._tracing[request_id] = tracing
                _trim(self._tracing, "")

    def invoke_tracing(self, request_id: str) -> object:
        """The ``tracing`` member of ``request_id``'s INVOKE event, None if unknown."""
        with self._cond:
            return self._tracing.get(request_id)

    def runtime_done_arrived(self, request_id: str) -> None:
        """The listener received ``platform.runtimeDone`` for ``request_id``.

        The waiter is not woken (unless its budget is tiny): this arrives just as the worker
        starts on the invocation's last records, and a thread that wakes only to wait again
        would take the GIL from it on the path the invocation waits for.
        """
        with self._cond:
            self._arrived.setdefault(request_id, self._clock())  # type: ignore[operator]
            _trim(self._arrived, self._current)
            if self._wake_on_arrival:
                self._cond.notify_all()

    def report_arrived(self, request_id: str) -> None:
        """The listener received ``platform.report`` for ``request_id``."""
        with self._cond:
            self._reports[request_id] = None
            self._report_count += 1
            _trim(self._reports, self._current)
            if self._waiting_for_report:  # only at shutdown; see runtime_done_arrived
                self._cond.notify_all()

    def wait_report(self, request_id: str, deadline: float) -> bool:
        """Wait until ``request_id``'s platform.report arrived or ``deadline``; say whether it did.

        Used at shutdown: Lambda emits the last invocation's report only after every extension
        called ``/event/next``, so it is the last record worth waiting for.
        """
        return self._wait_for_reports(lambda: request_id in self._reports, deadline)

    def reports_seen(self) -> int:
        """How many reports arrived so far (for ``wait_another_report``)."""
        with self._cond:
            return self._report_count

    def wait_another_report(self, seen: int, deadline: float) -> bool:
        """Wait until more than ``seen`` reports arrived, or ``deadline``; say whether one did.

        Used at a SHUTDOWN on Managed Instances, where no INVOKE names the invocation that
        failed: its report (which does) may still be on its way."""
        return self._wait_for_reports(lambda: self._report_count > seen, deadline)

    def _wait_for_reports(self, done: Callable[[], bool], deadline: float) -> bool:
        """Wait, woken by each report's arrival, until ``done()`` or ``deadline``."""
        with self._cond:
            self._waiting_for_report = True
            try:
                while not done():
                    remaining = deadline - self._clock()  # type: ignore[operator]
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._waiting_for_report = False

    def delivered(self, request_ids: list[str]) -> None:
        """The worker delivered (or accounted for) everything up to these runtimeDones."""
        if not request_ids:
            return
        with self._cond:
            for request_id in request_ids:
                self._delivered[request_id] = None
            _trim(self._delivered, self._current)
            self._cond.notify_all()

    def wait(self, request_id: str, deadline: float, budget: float) -> str:
        """Block until ``request_id`` is delivered or a bound is reached; say which.

        ``deadline`` is a clock value (the invocation's deadline minus a safety margin);
        ``budget`` is in seconds after runtimeDone arrived.

        Until runtimeDone's arrival is known, no single wait is longer than ``budget``: an
        arrival at A is then seen by A + ``budget`` at the latest, before the budget it starts
        can run out, so the arrival itself needs to wake no one.
        """
        with self._cond:
            self._current = request_id
            self._wake_on_arrival = budget < _WAKE_ON_ARRIVAL_BELOW
            while request_id not in self._delivered:
                limit = deadline
                arrived = self._arrived.get(request_id)
                if arrived is not None:
                    limit = min(limit, arrived + budget)
                remaining = limit - self._clock()  # type: ignore[operator]
                if remaining <= 0:
                    return DEADLINE if limit == deadline else BUDGET
                if arrived is None and not self._wake_on_arrival:
                    remaining = min(remaining, budget)
                self._cond.wait(remaining)
            return DELIVERED


def _trim(remembered: dict, keep: str) -> None:  # type: ignore[type-arg]
    """Forget the oldest entries beyond ``_REMEMBERED``, but never ``keep``."""
    while len(remembered) > _REMEMBERED:
        oldest = next(iter(remembered))
        value = remembered.pop(oldest)
        if oldest == keep:
            remembered[oldest] = value  # kept, as the newest: the next oldest goes instead
