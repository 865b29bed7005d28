"""Small statistics helpers: medians and tail percentiles of a handful of samples.

Kept dependency-free (no numpy) so the bench runs in the dev venv as is. Percentiles use linear
interpolation between closest ranks (numpy's default), so p99 of 30 samples is close to the max:
the tables say how many samples each figure comes from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, p99, min, max and count: what every timing row reports."""
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p99": percentile(values, 99),
        "min": float(min(values)) if values else None,
        "max": float(max(values)) if values else None,
    }


def fmt_ms(value: float | None, digits: int = 1) -> str:
    """``12.3`` style milliseconds for tables; ``-`` for a missing value."""
    return "-" if value is None else f"{value:.{digits}f}"
