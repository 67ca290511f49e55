"""Timing helpers shared by every ``panoedge bench`` command (CONVENTIONS.md report shape)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def time_callable(fn: Callable[[], object], warmup: int = 2, repeat: int = 10) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    Returns a case block: ``{"fps", "latency_ms": {"min", "median", "p99"}, "warmup", "repeat"}``.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000.0
    med = float(np.median(ms))
    return {
        "fps": 1000.0 / med if med > 0 else float("inf"),
        "latency_ms": {"min": float(ms.min()), "median": med, "p99": float(np.percentile(ms, 99))},
        "warmup": warmup,
        "repeat": repeat,
    }


def ratio(cases: dict, a: str, b: str) -> float:
    """``time(a) / time(b)`` from the median latencies of two cases."""
    return cases[a]["latency_ms"]["median"] / cases[b]["latency_ms"]["median"]


def format_cases(cases: dict) -> str:
    """A short human table of benchmark cases."""
    lines = [f"{'case':<16} {'fps':>8} {'min ms':>9} {'median ms':>10} {'p99 ms':>9}"]
    for name, c in cases.items():
        lat = c["latency_ms"]
        lines.append(f"{name:<16} {c['fps']:>8.2f} {lat['min']:>9.1f} {lat['median']:>10.1f} {lat['p99']:>9.1f}")
    return "\n".join(lines)
