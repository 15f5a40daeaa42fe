"""Figures and tables for the benches: percentiles (linear interpolation) and Markdown tables.

Usage::

    percentile([0.2, 0.3, 1.1], 95)                # 1.02
    Summary.of([0.2, 0.3, 1.1]).median             # 0.3
    print(markdown_table(["path", "p95 s"], [["warm", "0.41"]]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "markdown_table", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100 (got {q})")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    p99: float
    max: float
    min: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            n=len(values),
            median=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            max=max(values) if values else math.nan,
            min=min(values) if values else math.nan,
        )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; numbers right-aligned."""

    def aligned(column: int) -> str:
        numeric = bool(rows) and not isinstance(rows[0][column], str)
        return "--:" if numeric else ":--"

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligned(c) for c in range(len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)
