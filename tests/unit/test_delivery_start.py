"""Delivery starts once init has ended (``Extension.open_gate``); when it cannot, the
extension says so in one line and counts every record it then receives, on a real listener."""

from __future__ import annotations

import http.client
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambda_logs_http import log
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.lifecycle import Extension
from lambda_logs_http.listener.server import TelemetryListener
from lambda_logs_http.stats import Stats


def push(marker: str) -> bytes:
    return json.dumps([{"time": "t", "type": "function", "record": f"{marker}-{n}"}
                       for n in range(3)]).encode()


def post(listener: TelemetryListener, body: bytes) -> int:
    connection = http.client.HTTPConnection(listener.host, listener.port, timeout=5)
    try:
        connection.request("POST", "/", body=body)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    log.set_stream(sys.stdout)


class NeverStarts:
    """A worker whose thread cannot be started (as when no thread can be created)."""

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def extension(listener: TelemetryListener, stats: Stats,
              start_delivery: Callable[[], Any]) -> Extension:
    # open_gate needs neither the settings nor the Extensions API client
    ext = Extension(None, None, listener, start_delivery, stats)  # type: ignore[arg-type]
    listener.bind()
    listener.defer_pushes(on_full=ext.open_gate)
    listener.start()
    assert listener.wait_serving(5)
    return ext


@pytest.mark.parametrize("failure", ["building", "starting"])
def test_a_delivery_that_cannot_start_is_reported_and_what_comes_is_counted(
    failure: str, output: io.StringIO
) -> None:
    stats = Stats()
    listener = TelemetryListener(0, None, None, stats)
    queued: list[object] = []

    def start_delivery() -> Any:
        if failure == "building":
            raise ImportError("no module named 'json'")
        # Connected first, as app.build does, then the worker's thread fails to start.
        listener.deliver_to(lambda events, size: queued.append(events) or True,
                            InvocationProgress())
        return NeverStarts(), InvocationProgress()

    ext = extension(listener, stats, start_delivery)
    try:
        assert post(listener, push("during-init")) == 200  # kept unparsed until the gate
        ext.open_gate()
        assert ext.worker is None and ext.progress is None
        assert post(listener, push("after-init")) == 200  # Lambda must not retry it forever
        wait_until(lambda: stats.dropped.get("not_started", 0) == 6)
        ext.open_gate()  # once only: no second attempt, no second line
    finally:
        listener.stop()
    assert queued == []  # nothing went to the worker that never ran
    assert stats.dropped == {"not_started": 6} and stats.received == 0
    errors = [line for line in output.getvalue().splitlines() if "could not start delivery" in line]
    assert len(errors) == 1 and "logs will NOT be forwarded" in errors[0], output.getvalue()
    assert "dropped=6 (not_started=6)" in stats.summary()
