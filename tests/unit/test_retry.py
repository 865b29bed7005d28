from __future__ import annotations

import pytest

from lambda_logs_http.delivery.retry import MAX_RETRY_AFTER_SECONDS, backoff, parse_retry_after

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 12 ", 12.0),
        ("100000", MAX_RETRY_AFTER_SECONDS),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\u00b3", None),  # "³".isdigit() is True; float("³") raises
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_backoff_grows_then_caps_with_full_jitter() -> None:
    assert backoff(1, rng=lambda: 1.0) == pytest.approx(0.2)
    assert backoff(2, rng=lambda: 1.0) == pytest.approx(0.4)
    assert backoff(30, rng=lambda: 1.0) == 5.0
    assert backoff(3, rng=lambda: 0.0) == 0.0
