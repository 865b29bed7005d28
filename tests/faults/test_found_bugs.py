"""Minimal reproductions of the extension bugs the fault matrix found (they fail until fixed).

Each test isolates one bug below the sandbox — the worker with the real transport against a real
receiver — so the cause is obvious and the test runs in seconds. The matching matrix scenario
shows the same bug end to end.
"""

from __future__ import annotations

import io
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_logs_http import log
from lambda_logs_http.delivery.worker import DeliveryWorker
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.model import Settings
from tests.support.fixtures import BASIC_AUTH
from tests.support.nginx import Nginx
from tests.support.tls import TlsMaterial
from tests.support.workers import started_worker
from tools.lambda_sandbox.receiver import Receiver


def worker_for(settings: Settings, progress: InvocationProgress | None = None) -> DeliveryWorker:
    """A started worker with the real HTTP transport, as the extension builds it."""
    return started_worker(settings, progress)


def push(number: int, records: int = 1000, request_id: str = "") -> list[dict[str, object]]:
    """One Telemetry push as the listener hands it over: ``records`` function lines, and a
    runtimeDone when ``request_id`` is given."""
    events: list[dict[str, object]] = [
        {"time": "2024-01-15T10:30:00.000Z", "type": "function",
         "record": f"push {number} line {i} " + "x" * 60 + "\n"}
        for i in range(records)
    ]
    if request_id:
        events.append({"time": "2024-01-15T10:30:00.000Z", "type": "platform.runtimeDone",
                       "record": {"requestId": request_id, "status": "success"}})
    return events


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """The extension's log lines, written here instead of stdout for the test's duration."""
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        yield stream
    finally:
        log.set_stream(sys.stdout)


@pytest.mark.timeout(90)
def test_memory_stays_bounded_while_a_slow_receiver_answers(
    receiver: Receiver, tmp_path: Path
) -> None:
    """BUG (worker.py, ``_run``/``_send_due``): with a receiver that is slow but answers 2xx,
    ``_send_due`` sends every ready and spilled batch back to back before the loop takes the next
    push off ``self._queue``. Pushes pile up in that queue as parsed dicts — bounded by count
    (``_MAX_QUEUED_PUSHES`` = 10,000 pushes of up to 1,000 records), not by
    ``HTTP_MAX_BUFFER_BYTES`` — so they never reach the batcher, never spill, and memory grows
    with the backlog. End to end (scenario 09): 138-206 MB peak RSS, ``spilled=0``, with an
    8 MiB cap. Expected: memory held stays near the cap, the rest spilled to disk (or refused).
    """
    receiver.script([{"delay": 0.5, "times": 100_000}])
    config = load({"HTTP_ENDPOINT": receiver.url, "HTTP_SPILL_DIR": str(tmp_path / "spill"),
                   "HTTP_MAX_BATCH_BYTES": "65536", "HTTP_MAX_BUFFER_BYTES": "262144"})
    tracemalloc.start()
    worker = worker_for(config)
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for number in range(100):  # 100,000 records, in pushes of 1,000 as Lambda sends them
            worker.submit(push(number))
        limit = 8 << 20  # 32 times the cap: room for a bounded queue, a batch and buffers
        deadline = time.monotonic() + 10
        held = tracemalloc.get_traced_memory()[0] - baseline
        while held > limit and time.monotonic() < deadline:
            time.sleep(0.25)
            held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
        receiver.script([])  # fast again, so the backlog drains and the thread can stop
        worker.stop(30)
    assert held <= limit, (
        f"the worker holds {held / 2**20:.0f} MiB with HTTP_MAX_BUFFER_BYTES=256 KiB "
        f"while a slow receiver answers")


@pytest.mark.timeout(60)
def test_an_untrusted_certificate_is_one_clear_error(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, tmp_path: Path,
    captured_log: io.StringIO,
) -> None:
    """BUG (worker.py ``_send``, transport.py ``_connection_error``): certificate verification
    failure is classified like a transient network error (``retryable=True``), so every attempt
    prints the generic ``WARNING send failed (TLS certificate verification failed …; set
    HTTP_CA_BUNDLE …) … retry N in … s`` line: one per backoff retry, and again in every
    invocation (each runtimeDone cuts the backoff short) — 5 to 7 warnings in 3 invocations end to
    end (scenario 08), and never an ERROR, although nothing can be delivered until the configuration
    changes. Expected: one ``[EXTENSION] ERROR`` line naming HTTP_CA_BUNDLE; repeats quieter.
    (Failing closed and keeping the records both work: the scenario checks them.)
    """
    progress = InvocationProgress()
    config = load({
        "HTTP_ENDPOINT": nginx_tls_receiver.url, "HTTP_SPILL_DIR": str(tmp_path / "spill"),
        "HTTP_CA_BUNDLE": str(tls_material.other_ca_file), "HTTP_AUTH_TYPE": "basic",
        "HTTP_AUTH_USERNAME": BASIC_AUTH[0], "HTTP_AUTH_CREDENTIALS": BASIC_AUTH[1],
    })
    worker = worker_for(config, progress)
    try:
        for n in range(3):  # three invocations, each waiting out a 0.5 s flush budget
            worker.submit(push(n, records=5, request_id=f"r-{n}"))
            progress.wait(f"r-{n}", time.monotonic() + 0.5, 0.5)
    finally:
        worker.stop(5)
    lines = captured_log.getvalue().splitlines()
    naming = [line for line in lines if "HTTP_CA_BUNDLE" in line]
    assert len(naming) == 1 and naming[0].startswith("[EXTENSION] ERROR"), naming
