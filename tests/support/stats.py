"""Percentiles as the benchmarks and the fault tests report them."""

from __future__ import annotations


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with fewer than 100 samples, p99 is the largest one."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(round(pct / 100.0 * len(ordered) + 0.4999)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return percentile(values, 50)
