"""``panoedge bench synth``: how fast the world renders an ERP with depth and labels.

Baseline measured in the same run: the same rays cast against a single ground plane (the
floor of any vectorised ray caster: ray set-up, one intersection, shading of every pixel's
output arrays), so the ratio shows what the scene's complexity costs.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np

from panoedge.env import machine_info
from panoedge.io import IGNORE
from panoedge.results import Record, Result, json_field
from panoedge.synth.render import render_erp
from panoedge.synth.world import FAMILIES, make_world
from panoedge.timing import format_cases, ratio, time_callable

__all__ = ["BENCH_SEEDS", "SynthBench", "bench_synth"]

BENCH_SEEDS = (0, 1, 2)
"""World seeds per family: a few layouts, so one easy or hard world does not decide the median."""
WARMUP = 1
"""Untimed renders per case (the first call pays imports and allocations)."""
REPEAT = 5
"""Timed renders per case (the median of these is reported)."""
BASELINE = "single_plane"
"""Name of the floor case every family is compared with."""
PLANE_GREY = 128
"""RGB value of the floor case's hit pixels (any constant: only the time matters)."""
RAY_EPS = 1e-9
"""Ray y components at or below this do not meet the ground plane (looking level or up)."""


def _plane_floor(h: int, w: int, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(range, rgb, labels)`` per ray of an ``h x w`` ERP cast against the plane ``y = 0``."""
    from panoedge.geometry import erp_rays

    d = erp_rays(h, w).reshape(-1, 3)
    dy = d[:, 1]
    down = dy > RAY_EPS
    t = np.where(down, -position[1] / np.where(down, dy, 1.0), np.inf).astype(np.float32)
    rgb = np.zeros((h * w, 3), np.uint8)
    rgb[np.isfinite(t)] = PLANE_GREY
    labels = np.where(np.isfinite(t), 1, IGNORE).astype(np.uint8)
    return t, rgb, labels


@dataclass(frozen=True)
class Threads(Record):
    """The thread settings the run saw (NumPy's BLAS follows ``OMP_NUM_THREADS``)."""

    omp_num_threads: str | None = json_field(key="OMP_NUM_THREADS")


@dataclass(frozen=True)
class SynthBenchInput(Record):
    erp_hw: tuple[int, int]
    worlds_per_family: int


@dataclass(frozen=True)
class SynthBench(Result):
    """``panoedge bench synth``: render time per family and the single-plane floor (CONVENTIONS.md
    bench shape: ``cases`` are :func:`panoedge.timing.time_callable` blocks)."""

    SCHEMA = "panoedge.bench/1"

    machine: dict
    threads: Threads
    input: SynthBenchInput
    cases: dict
    ratios: dict[str, float]
    warmup: int = json_field(json=False, default=WARMUP)
    repeat: int = json_field(json=False, default=REPEAT)

    def format(self) -> str:
        m = self.machine
        h, w = self.input.erp_hw
        lines = [f"{m['cpu']}, {m['cores']} cores, OMP_NUM_THREADS={self.threads.omp_num_threads}, numpy "
                 f"{m['versions'].get('numpy')}; ERP {h}x{w}, warm-up {self.warmup}, repeat {self.repeat}",
                 format_cases(self.cases)]
        lines += [f"{k}: {v:.2f}" for k, v in self.ratios.items()]
        return "\n".join(lines)


def bench_synth(h: int = 512, w: int = 1024, seeds=BENCH_SEEDS, warmup: int = WARMUP,
                repeat: int = REPEAT) -> SynthBench:
    """Median render time per family over a few worlds, and the single-plane floor."""
    cases = {}
    for family in FAMILIES:
        worlds = [make_world(family, s) for s in seeds]
        turn = itertools.cycle(worlds)  # each call renders the next world
        cases[family] = time_callable(lambda: render_erp(next(turn), h, w), warmup=warmup, repeat=repeat)
    pos = make_world("indoor", 0).default_camera()
    cases[BASELINE] = time_callable(lambda: _plane_floor(h, w, pos), warmup=warmup, repeat=repeat)
    return SynthBench(
        machine=machine_info(backends_used=["numpy"]),
        threads=Threads(omp_num_threads=os.environ.get("OMP_NUM_THREADS")),
        input=SynthBenchInput(erp_hw=(h, w), worlds_per_family=len(seeds)),
        cases=cases,
        ratios={f"{f}_over_{BASELINE}": ratio(cases, f, BASELINE) for f in FAMILIES},
        warmup=warmup,
        repeat=repeat,
    )
