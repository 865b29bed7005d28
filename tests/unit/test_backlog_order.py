"""The backlog sends batches in the order they were made, across memory, disk and restarts.

The hard case is the batch in flight: it is the oldest in memory, it may not be spilled under
the sender, and newer batches go to disk while it is out. A failed attempt must not let the
disk's (newer) batches overtake it, nor may a later spill write it behind them, in this process
or the next. The store is a real directory; the sender is played by the test.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_logs_http.delivery.backlog import Backlog, Ledger
from lambda_logs_http.delivery.batching import Batch
from lambda_logs_http.delivery.spill import SpillStore
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.stats import Stats


def batch(n: int) -> Batch:
    """A batch of one seed entry whose message is ``n``: about 100 bytes."""
    fields = {"timestamp": "2024-01-15T10:30:00.000Z", "level": "INFO", "message": str(n),
              "source": "lambda", "log_type": "function"}  # fmt: skip
    return Batch(0.0, [json.dumps(fields, separators=(",", ":"))])


def numbers(head: object) -> list[int]:
    """The messages of a batch checked out of the backlog (in memory or read from disk)."""
    body = head.body("t")  # type: ignore[attr-defined]
    return [int(entry["message"]) for entry in json.loads(body)["logs"]]


def backlog_at(directory: Path, memory_bytes: int = 250) -> tuple[Backlog, Stats]:
    stats = Stats()
    ledger = Ledger(stats, InvocationProgress())
    store = SpillStore(str(directory), 1 << 20, ledger.dropped_records)
    store.open()
    return Backlog(store, memory_bytes, ledger), stats


def send_all(backlog: Backlog) -> list[int]:
    sent: list[int] = []
    while (head := backlog.checkout()) is not None:
        sent += numbers(head)
        backlog.settle(head, remove=True)
    return sent


def test_a_failed_attempt_keeps_the_batch_in_flight_ahead_of_those_spilled_meanwhile(
    tmp_path: Path,
) -> None:
    backlog, stats = backlog_at(tmp_path)
    backlog.add(batch(0), may_spill=True)
    head = backlog.checkout()
    assert head is not None and numbers(head) == [0]
    for n in range(1, 6):  # arrive during the attempt; over the cap, the older ones spill
        backlog.add(batch(n), may_spill=True)
    assert stats.spilled > 0
    backlog.settle(head, remove=False)  # the receiver said 503
    for n in range(6, 9):  # arrive during the backoff: 0 may not be spilled behind the disk
        backlog.add(batch(n), may_spill=True)
    assert send_all(backlog) == list(range(9))


def test_at_stop_the_batch_older_than_the_disk_is_written_ahead_of_it(tmp_path: Path) -> None:
    backlog, _ = backlog_at(tmp_path)
    backlog.add(batch(0), may_spill=True)
    head = backlog.checkout()
    assert head is not None
    for n in range(1, 6):
        backlog.add(batch(n), may_spill=True)
    backlog.settle(head, remove=False)
    backlog.keep_on_disk()  # SHUTDOWN with the receiver still down
    restarted, _ = backlog_at(tmp_path)  # the next extension process in this environment
    restarted.add(batch(6), may_spill=True)
    assert send_all(restarted) == list(range(7))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["add", "add", "add", "checkout", "fail", "deliver", "restart"]),
                max_size=60))  # fmt: skip
def test_whatever_happens_batches_go_out_in_the_order_they_were_made(
    tmp_path_factory: object, steps: list[str]
) -> None:
    directory = tmp_path_factory.mktemp("spill")  # type: ignore[attr-defined]
    backlog, _ = backlog_at(directory)
    made = 0
    sent: list[int] = []
    head = None
    for step in steps:
        if step == "add":
            backlog.add(batch(made), may_spill=True)
            made += 1
        elif step == "checkout" and head is None:
            head = backlog.checkout()
        elif step in ("fail", "deliver") and head is not None:
            if step == "deliver":
                sent += numbers(head)
            backlog.settle(head, remove=step == "deliver")
            head = None
        elif step == "restart":
            if head is not None:
                backlog.settle(head, remove=False)
                head = None
            backlog.keep_on_disk()
            backlog, _ = backlog_at(directory)
    if head is not None:
        backlog.settle(head, remove=False)
    sent += send_all(backlog)
    assert sent == list(range(made))  # nothing lost, nothing twice, the order kept
