"""The times the formats write (OTLP's and Loki's nanoseconds as text, HEC's and Datadog's
seconds and milliseconds) come from lookups kept per second and per millisecond: they must say
what the arithmetic says, the first time a second is seen and every time after, for any time
Lambda writes and for what a hostile push sends instead."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.records.encoders import base

# Seconds from before 1970 (negative) to far ahead, and around the epoch itself.
seconds = st.integers(-2_000_000_000, 32_503_680_000) | st.integers(-3, 3)


def iso(second: int, millis: int) -> str:
    days, rest = divmod(second, 86_400)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(days * 86_400 + rest))
    return f"{stamp}.{millis:03d}Z"


@settings(max_examples=400, deadline=None)
@given(second=seconds, millis=st.integers(0, 999))
def test_lambdas_times_read_the_same_from_the_caches_as_by_arithmetic(second: int, millis: int) -> None:
    text = iso(second, millis)
    ns = second * 1_000_000_000 + millis * 1_000_000
    for _ in range(2):  # the first time fills the caches, the second reads them
        assert base.epoch_ns(text) == ns
        assert base.epoch_ns_text(text) == str(ns)
        assert base.epoch_seconds_ms(text) == (second, f"{millis:03d}")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789-T:.Z+ x", max_size=30))
def test_any_other_text_reads_as_epoch_ns_or_now_reads_it(text: str) -> None:
    before = time.time_ns()
    for _ in range(2):
        got = int(base.epoch_ns_text(text))
        try:
            expected = base.epoch_ns(text)
        except (ValueError, IndexError):  # no time: now
            assert before <= got <= time.time_ns()
        else:
            assert got == expected
