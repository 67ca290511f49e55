"""Peak memory and time of a cold stitch (tables built from nothing, one frame stitched).

Each case runs in a fresh Python process (peak resident memory of its memory map: ``VmHWM``)
and repeats ``--repeat`` times; the report gives the peak and the median build+stitch time.
``--baseline PATH`` also runs another checkout's ``toolkit`` folder (e.g. ``git worktree add
/tmp/base main``) in the same run, for the ratio against today's code.

    python examples/stitch_memory.py --size 1920x3840 --baseline /tmp/base/toolkit --json mem.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import resource, sys, time
import numpy as np


def peak_mb():  # VmHWM: this memory map's peak (ru_maxrss survives exec on Linux: a parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


from panoedge.stitch import Stitcher
from panoedge.stitch.presets import generic_rig
h, w = {h}, {w}
rig = generic_rig(w, h)  # a side-by-side frame of the output's size: H x 2H
frame = np.random.default_rng(0).integers(0, 255, size=(h, w, 3), dtype=np.uint8)
base = peak_mb()
t = time.perf_counter()
out = Stitcher(rig, (h, w), device="cpu").stitch(frame)
dt = time.perf_counter() - t
print(peak_mb(), base, dt)
"""


def run_case(toolkit: Path, h: int, w: int) -> tuple[float, float, float]:
    env = dict(os.environ, PYTHONPATH=str(toolkit), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PANOEDGE_HOME=os.environ.get("PANOEDGE_HOME", "/tmp/panoedge_mem_home"))
    out = subprocess.run([sys.executable, "-c", CHILD.format(h=h, w=w)], env=env, capture_output=True, text=True,
                         check=True)
    peak, base, dt = (float(x) for x in out.stdout.split())
    return peak, base, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x3840")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's toolkit folder")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    h, w = (int(x) for x in a.size.lower().split("x"))
    cases = {"this": Path(__file__).resolve().parents[1] / "toolkit"}
    if a.baseline is not None:
        cases["baseline"] = a.baseline.resolve()
    rep = {"schema": "panoedge.bench/1", "command": " ".join(sys.argv), "size": [h, w], "repeat": a.repeat, "cases": {}}
    for name, tk in cases.items():
        runs = [run_case(tk, h, w) for _ in range(a.repeat)]
        rep["cases"][name] = {"peak_mb": max(r[0] for r in runs), "import_mb": max(r[1] for r in runs),
                              "cold_s": {"min": min(r[2] for r in runs), "median": statistics.median(r[2] for r in runs)}}
        c = rep["cases"][name]
        print(f"{name:9s} peak {c['peak_mb']:7.1f} MB (after imports {c['import_mb']:.1f} MB)  cold build+stitch "
              f"median {c['cold_s']['median']:.2f} s (min {c['cold_s']['min']:.2f})")
    if "baseline" in rep["cases"]:
        t, b = rep["cases"]["this"], rep["cases"]["baseline"]
        rep["ratios"] = {"this_over_baseline_time": t["cold_s"]["median"] / b["cold_s"]["median"],
                         "this_over_baseline_peak": t["peak_mb"] / b["peak_mb"]}
        print(f"time this/baseline {rep['ratios']['this_over_baseline_time']:.2f}, "
              f"peak this/baseline {rep['ratios']['this_over_baseline_peak']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
