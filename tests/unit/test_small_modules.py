"""log, stats and the Telemetry subscription body: small modules, each with one job."""

from __future__ import annotations

import io
import json

import pytest

from lambda_logs_http import log
from lambda_logs_http.lambda_api import telemetry
from lambda_logs_http.stats import Stats


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    log.set_stream(stream)
    log.set_level(log.INFO)
    yield stream
    log.set_level(log.INFO)
    import sys

    log.set_stream(sys.stdout)


def test_log_lines_are_prefixed_levelled_and_one_line_each(captured: io.StringIO) -> None:
    log.debug("hidden")
    log.warning("two\nlines")
    log.set_level(log.DEBUG)
    log.debug("shown")
    assert captured.getvalue().splitlines() == [
        "[EXTENSION] WARNING two | lines",
        "[EXTENSION] DEBUG shown",
    ]


def test_log_survives_a_closed_stream(captured: io.StringIO) -> None:
    captured.close()
    log.error("nowhere to go")  # a closed stdout must not take the extension down
    working = io.StringIO()
    log.set_stream(working)
    log.error("still logging")
    assert working.getvalue() == "[EXTENSION] ERROR still logging\n"


def test_stats_summary_adds_up() -> None:
    stats = Stats()
    stats.add("received", 10)
    stats.add("delivered", 7)
    stats.add("retried", 2)
    stats.drop("http_400", 2)
    stats.drop("shutdown", 1)
    stats.drop("nothing", 0)
    assert stats.dropped_total() == 3
    assert stats.summary() == (
        "received=10 delivered=7 retried=2 dropped=3 (http_400=2, shutdown=1) spilled=0 on_disk=0 truncated=0"
        " skipped=0 filtered=0 batches=0"
    )


def test_subscription_body() -> None:
    body = json.loads(telemetry.subscription_body(
        types=("platform", "function"), max_items=1000, max_bytes=262144, timeout_ms=25, port=4243,
    ))
    assert body == {
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/"},
    }
