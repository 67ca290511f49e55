"""``panoedge bench synth``: how fast the world renders an ERP with depth and labels.

Baseline measured in the same run: the same rays cast against a single ground plane (the
floor of any vectorised ray caster: ray set-up, one intersection, shading of every pixel's
output arrays), so the ratio shows what the scene's complexity costs.
"""

from __future__ import annotations

import os

import numpy as np

from panoedge.env import machine_info
from panoedge.timing import ratio, time_callable
from panoedge.synth.render import render_erp
from panoedge.synth.world import FAMILIES, make_world


def _plane_floor(h: int, w: int, position: np.ndarray) -> None:
    from panoedge.geometry import erp_rays

    d = erp_rays(h, w).reshape(-1, 3)
    dy = d[:, 1]
    t = np.where(dy > 1e-9, -position[1] / np.where(dy > 1e-9, dy, 1.0), np.inf).astype(np.float32)
    rgb = np.zeros((h * w, 3), np.uint8)
    rgb[np.isfinite(t)] = 128
    labels = np.where(np.isfinite(t), 1, 255).astype(np.uint8)
    return t, rgb, labels


def bench_synth(h: int = 512, w: int = 1024, seeds=(0, 1, 2), warmup: int = 1, repeat: int = 5) -> dict:
    """Median render time per family over a few worlds, and the single-plane floor."""
    cases = {}
    for family in FAMILIES:
        worlds = [make_world(family, s) for s in seeds]
        it = iter(range(10**9))
        cases[family] = time_callable(lambda: render_erp(worlds[next(it) % len(worlds)], h, w), warmup, repeat)
    pos = make_world("indoor", 0).default_camera()
    cases["single_plane"] = time_callable(lambda: _plane_floor(h, w, pos), warmup, repeat)
    return {
        "schema": "panoedge.bench/1",
        "machine": machine_info(backends_used=["numpy"]),
        "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "input": {"erp_hw": [h, w], "worlds_per_family": len(seeds)},
        "cases": cases,
        "ratios": {f"{f}_over_single_plane": ratio(cases, f, "single_plane") for f in FAMILIES},
    }
