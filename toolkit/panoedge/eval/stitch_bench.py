"""``panoedge bench stitch``: the full stitch against the bare ``cv2.remap`` floor, same run.

The frame is a synthetic dual-fisheye frame (``H x 2H``, side by side, vignetting, sensor
effects) rendered once. Per repeat, the two cases run back to back in alternating order, so
load from other processes hits both alike:

- ``remap_floor``: ONE fixed-point ``cv2.remap`` of the output-sized 3-channel frame (the
  stitcher's own main map): what any table-driven stitcher must pay;
- ``stitch``: :meth:`Stitcher.stitch` end to end (copy in, band sampling of both lenses,
  exposure estimation, vignetting and gains, feather blend, the main remap).

Ratio ``stitch_over_floor = median(stitch) / median(remap_floor)``. Tables are built before
timing (they are cached per rig and size); their build time is reported on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from panoedge.results import Result

SCHEMA = "panoedge.bench/1"

__all__ = ["SCHEMA", "StitchBenchResult", "bench_frame", "bench_stitch", "format_report"]


@dataclass(frozen=True)
class StitchBenchResult(Result):
    """``panoedge bench stitch``'s report (CONVENTIONS.md benchmark shape): per case ``fps`` and
    ``latency_ms`` (``min``, ``median``, ``p99``); ``ratios.stitch_over_floor``."""

    SCHEMA: ClassVar[str] = SCHEMA

    machine: dict
    backend: dict
    input: dict
    warmup: int
    repeat: int
    tables_build_s: float
    cases: dict
    ratios: dict

    def format(self) -> str:
        """A short human table."""
        m, b, i = self.machine, self.backend, self.input
        lines = [f"machine  {m['cpu']} ({m['cores']} cores), {b['device']}, OpenCV {b['opencv']} "
                 f"({b['opencv_threads']} threads)",
                 f"input    frame {i['frame_hw'][0]}x{i['frame_hw'][1]} -> ERP {i['output_hw'][0]}x{i['output_hw'][1]}, "
                 f"{i['blend']} band {i['band_deg']} deg ({100 * i['band_fraction']:.1f}% of pixels), "
                 f"exposure {'on' if i['exposure'] else 'off'}, vignetting {'on' if i['vignetting'] else 'off'}",
                 f"timing   {self.warmup} warm-up, {self.repeat} repeats (alternating); tables built in "
                 f"{self.tables_build_s:.2f} s",
                 f"{'case':<12} {'fps':>8} {'min ms':>8} {'median ms':>10} {'p99 ms':>8}"]
        for name, c in self.cases.items():
            lat = c["latency_ms"]
            lines.append(f"{name:<12} {c['fps']:>8.1f} {lat['min']:>8.2f} {lat['median']:>10.2f} {lat['p99']:>8.2f}")
        lines.append(f"stitch_over_floor {self.ratios['stitch_over_floor']:.3f}")
        return "\n".join(lines)


def bench_frame(frame_h: int, seed: int = 0):
    """``(rig, frame)``: a synthetic side-by-side rig of ``frame_h x 2 frame_h`` and one rendered frame."""
    from panoedge.synth.rig_render import SensorEffects, render_rig_frame, synthetic_rig
    from panoedge.synth.world import make_world

    rng = np.random.default_rng(seed)
    rig = synthetic_rig(frame_h, seed=seed)
    rf = render_rig_frame(make_world("indoor", seed), rig, effects=SensorEffects.random(rng), erp_hw=(8, 16), rng=rng)
    return rig, rf.frame


def _stats(times_s) -> dict:
    ms = np.asarray(times_s) * 1000.0
    med = float(np.median(ms))
    return {"fps": 1000.0 / med, "latency_ms": {"min": float(ms.min()), "median": med,
                                                 "p99": float(np.percentile(ms, 99))}}


def bench_stitch(out_hw=(960, 1920), repeat: int = 100, warmup: int = 10, blend: str = "feather",
                 band_deg: float = 5.0, exposure: bool = True, device: str = "cpu", seed: int = 0) -> StitchBenchResult:
    """Time the stitch and the remap floor (see the module docstring); a ``panoedge.bench/1`` report."""
    from panoedge.env import machine_info
    from panoedge.stitch.stitcher import Stitcher
    from panoedge.stitch.table_cache import TABLES

    h, w = out_hw
    rig, frame = bench_frame(h, seed)
    t0 = time.perf_counter()
    TABLES.clear()
    st = Stitcher(rig, (h, w), blend=blend, band_deg=band_deg, exposure=exposure, device=device)
    build_s = time.perf_counter() - t0
    t = st.tables()
    m1, m2 = t.main_maps

    def floor():
        return cv2.remap(frame, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def stitch():
        return st.stitch(frame)

    for _ in range(warmup):
        floor()
        stitch()
    times = {"stitch": [], "remap_floor": []}
    for k in range(repeat):
        order = (("stitch", stitch), ("remap_floor", floor)) if k % 2 else (("remap_floor", floor), ("stitch", stitch))
        for name, fn in order:
            a = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - a)
    cases = {name: _stats(v) for name, v in times.items()}
    ratio = cases["stitch"]["latency_ms"]["median"] / cases["remap_floor"]["latency_ms"]["median"]
    return StitchBenchResult(
        machine=machine_info(["cpu"] if st.device == "cpu" else ["torch"]),
        backend={"device": st.device, "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads()},
        input={"frame_hw": list(frame.shape[:2]), "output_hw": [h, w], "layout": rig.layout, "blend": blend,
               "band_deg": band_deg, "exposure": exposure, "vignetting": t.has_vignetting,
               "band_pixels": t.n_band, "band_fraction": t.n_band / (h * w)},
        warmup=warmup, repeat=repeat, tables_build_s=build_s,
        cases=cases,
        ratios={"stitch_over_floor": ratio},
    )


def format_report(rep: StitchBenchResult) -> str:
    """The old name of :meth:`StitchBenchResult.format`."""
    return rep.format()
