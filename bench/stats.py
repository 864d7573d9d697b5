"""Median with min and max over repeated runs, and the markdown table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def spread(values: Iterable[float]) -> dict:
    """{"median", "min", "max", "n"} of the values (None when there are none)."""
    data = [float(v) for v in values if v is not None]
    if not data:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(data), "min": min(data), "max": max(data), "n": len(data)}


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100) of the values."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    rank = max(1, min(len(data), math.ceil(pct / 100 * len(data))))
    return data[rank - 1]


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def fmt_spread(s: dict, digits: int = 1) -> str:
    """`median (min–max)`."""
    if not s or s.get("median") is None:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
