"""Interleaved A/B measurement and the figure records the benchmarks write."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def interleave(baseline: Callable[[], float], candidate: Callable[[], float], rounds: int) -> dict[str, list[float]]:
    """Run baseline and candidate alternately (A B, then B A, ...) and return both series and their ratios.

    Each callable returns the quantity it measured (seconds, tokens/s, ...).
    Alternating the order cancels the drift of a noisy machine.
    """
    a: list[float] = []
    b: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            a.append(baseline())
            b.append(candidate())
        else:
            b.append(candidate())
            a.append(baseline())
    return {"baseline": a, "candidate": b, "ratio": [y / x for x, y in zip(a, b, strict=True)]}


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def figure(
    benchmark: Any,
    name: str,
    samples: list[float],
    *,
    unit: str,
    target: float,
    direction: str,
    item: int,
    **details: Any,
) -> dict[str, Any]:
    """Record one figure on the pytest-benchmark result (extra_info) and return it.

    direction: "le" (median must be at most target), "ge" (at least), "eq".
    """
    stats = summary(samples)
    median = stats["median"]
    met = {"le": median <= target, "ge": median >= target, "eq": median == target}[direction]
    record = {"name": name, "item": item, "unit": unit, "target": target, "direction": direction,
              **stats, "met": met, "samples": samples, "details": details}  # fmt: skip
    benchmark.extra_info.setdefault("figures", []).append(record)
    return record
