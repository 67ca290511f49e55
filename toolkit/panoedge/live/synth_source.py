"""``synth://FAMILY``: a dual-fisheye camera moving through the synthetic world, with ground truth.

``synth://indoor?fps=30&n=32&size=1024x2048&seed=0&gt=512x1024&loop=1&workers=2``

- ``FAMILY``: ``indoor`` or ``outdoor`` (one world built from ``seed``).
- ``size``: the dual-fisheye frame ``HxW`` (``W = 2 H``, the side-by-side layout of
  :func:`panoedge.synth.rig_render.synthetic_rig`); ``gt``: the ground-truth ERP size
  (default ``H/2 x H``).
- ``n`` frames along a closed loop around the world's default camera spot (the camera turns
  with the path and sways by a couple of degrees, as on a robot), rendered once with
  :func:`render_rig_frame` (per-lens exposure, white balance, vignetting, noise), cached under
  ``$PANOEDGE_HOME/live/<key>/`` and replayed from memory.
- ``fps``: the replay rate (``0``: as fast as the pipeline takes frames); ``loop=0`` ends after
  ``n`` frames. Paced like a camera: the frame shown at tick ``k`` is ``k mod n``, so frames the
  pipeline is too slow for are skipped, not delayed. ``workers``: render processes (first use).

Each frame carries ``truth``: ``labels`` (uint8, 255 = ignore) and ``depth`` (float32 range, m)
at the ``gt`` size, so the pipeline can measure live accuracy; :meth:`SynthSource.erp_rgb`
gives the ground-truth ERP colour image for the offline comparison.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from panoedge.errors import UsageError, unknown_name
from panoedge.live.stream import Captured, Pacer, Source, SourceEnded
from panoedge.live.uri import check_params, param_bool, param_float, register_source, split_uri

SCHEMA = "panoedge.live.synth/1"
KEYS = ("fps", "n", "size", "seed", "gt", "loop", "workers")
FAMILIES = ("indoor", "outdoor")


def camera_path(world, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rig centres ``(n, 3)`` and rig-to-world rotations ``(n, 3, 3)`` on a closed loop.

    The loop is a circle around the world's default camera spot, as wide as free space allows
    (every point keeps the world's clearance); the camera looks along the path with a slow
    pitch/roll sway of up to 2 degrees.
    """
    from panoedge.geometry import rotation_from_ypr

    centre = world.default_camera()
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    for radius in (1.5, 1.0, 0.7, 0.5, 0.3, 0.15, 0.0):
        pts = centre + radius * np.stack([np.cos(a + phase), np.zeros(n), np.sin(a + phase)], 1)
        if world.is_free(pts).all():
            break
    yaw = -(a + phase)  # heading along the circle's tangent
    sway = np.deg2rad(2.0)
    rots = np.stack([rotation_from_ypr(float(y), float(sway * np.sin(3 * t)), float(sway * np.cos(2 * t)))
                     for y, t in zip(yaw, a)])
    return pts, rots


@lru_cache(maxsize=2)
def _scene(family: str, seed: int, n: int):
    """The world and camera loop of a source, built once per process."""
    from panoedge.synth.world import make_world

    world = make_world(family, seed)
    return world, *camera_path(world, n, seed)


def _render_one(args) -> dict:
    """Render frame ``i`` (also in worker processes): the fisheye frame and the ERP ground truth."""
    from panoedge.synth.rig_render import SensorEffects, render_rig_frame, synthetic_rig

    family, seed, n, frame_h, gt_hw, i = args
    world, pts, rots = _scene(family, seed, n)
    rig = synthetic_rig(frame_h, seed=seed)
    effects = SensorEffects.random(np.random.default_rng([seed, 1]))  # the camera's fixed lens mismatch
    rf = render_rig_frame(world, rig, position=pts[i], R_rig=rots[i], effects=effects, erp_hw=gt_hw,
                          rng=np.random.default_rng([seed, 2, i]))
    return {"frame": rf.frame, "rgb": rf.erp.rgb, "labels": rf.erp.labels, "depth": rf.erp.depth}


@register_source("synth")
class SynthSource(Source):
    """Replays a cached synthetic camera loop (see the module docstring for the URI)."""

    scheme = "synth"

    def __init__(self, uri: str):
        super().__init__(uri)
        from panoedge.geometry import check_erp_size, parse_hw

        _, family, params = split_uri(uri)
        check_params(uri, params, KEYS)
        if family not in FAMILIES:
            raise unknown_name("synth:// family", family, FAMILIES)
        self.family = family
        self.fps = param_float(uri, params, "fps", default=30.0, lo=0.0, hi=1000.0)
        self.live = self.fps > 0
        self.n = int(param_float(uri, params, "n", default=32, lo=1, hi=100000))
        self.seed = int(param_float(uri, params, "seed", default=0, lo=0, hi=2**31))
        fh, fw = parse_hw(params.get("size", "1024x2048"), f"{uri}: size")
        if fw != 2 * fh or fh < 32:
            raise UsageError(f"{uri}: size={fh}x{fw}: a side-by-side dual-fisheye frame is H x 2H with H >= 32")
        self.frame_hw = (fh, fw)
        self.gt_hw = check_erp_size(*parse_hw(params.get("gt", f"{fh // 2}x{fh}"), f"{uri}: gt"), what=f"{uri}: gt")
        self.loop = param_bool(uri, params, "loop", default=True)
        default_workers = 1 if fh < 512 else min(os.cpu_count() or 1, self.n)
        self.workers = int(param_float(uri, params, "workers", default=default_workers, lo=1, hi=64))
        from panoedge.synth.rig_render import synthetic_rig

        self.rig = synthetic_rig(fh, seed=self.seed)
        self.frames: list[np.ndarray] = []
        self.truth: list[dict] = []
        self._pacer: Pacer | None = None
        self._i = 0

    # -- cache ----------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        from panoedge.home import content_key

        return content_key(SCHEMA, self.family, self.seed, self.n, self.frame_hw, self.gt_hw)

    @property
    def cache_path(self) -> Path:
        from panoedge.home import cache_dir

        return cache_dir("live", self.key)

    def _render_cache(self) -> Path:
        from panoedge.progress import tqdm

        from panoedge.home import atomic_dir, write_json
        from panoedge.io import write_depth, write_labels, write_rgb
        from panoedge.stitch.rig import save_rig
        from panoedge.synth.world import class_colors, class_names

        jobs = [(self.family, self.seed, self.n, self.frame_hw[0], self.gt_hw, i) for i in range(self.n)]
        with atomic_dir(self.cache_path, overwrite=True) as tmp:
            def write(i: int, r: dict) -> None:
                write_rgb(tmp / f"frame_{i:05d}.png", r["frame"])
                write_rgb(tmp / f"erp_{i:05d}.png", r["rgb"])
                write_labels(tmp / f"labels_{i:05d}.png", r["labels"])
                write_depth(tmp / f"depth_{i:05d}.png", r["depth"])

            desc = f"render synth://{self.family} ({self.n} frames {self.frame_hw[0]}x{self.frame_hw[1]})"
            if self.workers > 1:
                from panoedge.parallel import pool_map, process_pool

                with process_pool(self.workers) as pool:
                    for i, r in enumerate(tqdm(pool_map(pool, _render_one, jobs), total=self.n, desc=desc, leave=False)):
                        write(i, r)
            else:
                for i, job in enumerate(tqdm(jobs, desc=desc, leave=False)):
                    write(i, _render_one(job))
            save_rig(self.rig, tmp / "rig.yaml")
            write_json(tmp / "meta.json", {"schema": SCHEMA, "family": self.family, "seed": self.seed, "n": self.n,
                                           "frame_hw": list(self.frame_hw), "gt_hw": list(self.gt_hw),
                                           "classes": list(class_names(self.family)),
                                           "colors": class_colors(self.family).tolist()})
        return self.cache_path

    def prepare(self) -> None:
        """Render the loop on first use (cached), then load every frame and its truth into memory."""
        from panoedge.io import read_depth, read_labels, read_rgb

        if self.frames:
            return
        path = self.cache_path
        if not (path / "meta.json").is_file():
            self._render_cache()
        for i in range(self.n):
            frame = read_rgb(path / f"frame_{i:05d}.png")
            frame.setflags(write=False)
            self.frames.append(frame)
            self.truth.append({"labels": read_labels(path / f"labels_{i:05d}.png"),
                               "depth": read_depth(path / f"depth_{i:05d}.png")})

    def erp_rgb(self, i: int) -> np.ndarray:
        """The ground-truth ERP colour image of frame ``i`` (for offline evaluation)."""
        from panoedge.io import read_rgb

        return read_rgb(self.cache_path / f"erp_{i:05d}.png")

    def meta(self) -> dict:
        from panoedge.safe_load import load_json

        return load_json(self.cache_path / "meta.json")

    # -- Source ---------------------------------------------------------------------------------

    def open(self) -> None:
        self.prepare()
        self._pacer = Pacer(self.fps) if self.fps > 0 else None
        self._i = 0

    def read(self) -> Captured | None:
        import time

        missed = 0
        if self._pacer is not None:
            t, k, missed = self._pacer.wait(self.stop_event)
        else:
            t, k = time.perf_counter(), self._i
            self._i += 1
        if not self.loop and k >= self.n:
            raise SourceEnded(self.uri)
        i = k % self.n
        return Captured(image=self.frames[i], t_capture=t, index=i, truth=self.truth[i], missed=missed)

    def describe(self) -> dict:
        return {**super().describe(), "family": self.family, "seed": self.seed, "n": self.n,
                "frame_hw": list(self.frame_hw), "gt_hw": list(self.gt_hw), "loop": self.loop,
                "cache": str(self.cache_path)}
