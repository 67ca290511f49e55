"""Metric scale from the camera's height: a relative depth teacher made metric by the floor.

A robot knows how high its camera sits above the floor. Relative depth (range up to an unknown
scale, as :func:`panoedge.distill.tangent.fuse_depth` gives for relative and inverse-relative
teachers) back-projects the pixels the labels call ``floor`` to points on a plane, up to that same
scale; the plane's distance from the camera centre must be the camera height, so
``scale = camera_height_m / plane_distance``. Per image: points ``range * ray`` (rays as
CONVENTIONS.md), a plane fitted by area-weighted total least squares with residual trimming
(furniture feet, mislabelled rugs), then the scale. Images without enough floor take the median
scale of those with one. Measured on the synthetic world, where the truth is known, by
``scripts/measure_camera_height.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from panoedge.errors import UsageError

MIN_FLOOR_PIXELS = 200
"""Fewer confident floor pixels than this in an image: no plane is fitted there (its scale is the
median of the others)."""
FLOOR_CONF = 0.5
"""A pixel counts as floor where the floor probability is at least this."""
TRIM_ROUNDS, TRIM_K = 3, 2.5
"""Plane refits, each dropping points farther than ``TRIM_K`` robust sigmas (1.4826 MAD) from the plane."""


def fit_plane(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float, int]:
    """``(unit normal n, distance d >= 0, inliers)`` of the plane ``n . p = d`` through ``points`` ``(M, 3)``
    (weighted total least squares, trimmed :data:`TRIM_ROUNDS` times)."""
    keep = np.ones(len(points), bool)
    n, d = np.array([0.0, 1.0, 0.0]), 0.0
    for _ in range(TRIM_ROUNDS + 1):
        p, w = points[keep], weights[keep]
        c = (p * w[:, None]).sum(0) / w.sum()
        q = (p - c) * np.sqrt(w)[:, None]
        n = np.linalg.svd(q, full_matrices=False)[2][-1]
        d = float(n @ c)
        if d < 0:
            n, d = -n, -d
        r = np.abs(points @ n - d)
        sigma = 1.4826 * np.median(r[keep]) + 1e-9
        new = r <= TRIM_K * sigma
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return n, d, int(keep.sum())


def floor_scale(depth: np.ndarray, floor: np.ndarray, camera_height_m: float) -> tuple[float | None, dict]:
    """The metric scale of one relative range map ``(H, W)`` from the floor mask ``(H, W)``:
    ``(scale or None, stats)``; ``None`` where the floor is too small to fit."""
    from panoedge.geometry import erp_area_weights, erp_rays

    h, w = depth.shape
    ok = floor & np.isfinite(depth) & (depth > 0)
    if ok.sum() < MIN_FLOOR_PIXELS:
        return None, {"floor_pixels": int(ok.sum())}
    rays = erp_rays(h, w)[ok]
    pts = rays * depth[ok][:, None].astype(np.float64)
    area = np.broadcast_to(erp_area_weights(h, w, np.float64), (h, w))[ok]
    n, d, inl = fit_plane(pts, area)
    if d <= 0:
        return None, {"floor_pixels": int(ok.sum()), "plane_distance": d}
    tilt = float(np.degrees(np.arccos(min(1.0, abs(n[1])))))  # 0: a level camera (floor normal along y)
    return camera_height_m / d, {"floor_pixels": int(ok.sum()), "inliers": inl, "plane_distance": d,
                                 "tilt_deg": tilt, "scale": camera_height_m / d}


def metric_from_camera_height(depth: torch.Tensor, probs: torch.Tensor, classes, camera_height_m: float):
    """Relative range ``(N, H, W)`` -> metric range, with the floor of ``probs`` ``(N, K, H, W)``.

    ``classes`` must name a ``floor`` class. Returns ``(depth in metres, stats)``.
    """
    names = [" ".join(str(c).split()).lower() for c in classes]
    if "floor" not in names:
        raise UsageError(f"--camera-height needs a 'floor' class to fit the floor plane; the student's classes are "
                         f"{', '.join(classes)} (use a class map with floor, not --clusters)")
    k = names.index("floor")
    if camera_height_m <= 0:
        raise UsageError(f"--camera-height {camera_height_m}: must be positive (metres)")
    h, w = depth.shape[-2:]
    if probs.shape[-2:] != (h, w):
        raise UsageError(f"labels {tuple(probs.shape[-2:])} and depth {(h, w)} differ in size")
    scales, per = [], []
    for i in range(depth.shape[0]):
        p = probs[i].float()
        floor = ((p.argmax(0) == k) & (p[k] >= FLOOR_CONF)).numpy()
        s, st = floor_scale(depth[i].float().numpy(), floor, camera_height_m)
        scales.append(s)
        per.append(st)
    found = [s for s in scales if s is not None]
    if not found:
        raise UsageError("--camera-height: no image has enough floor (at least "
                         f"{MIN_FLOOR_PIXELS} confident floor pixels) to fit the floor plane")
    fallback = float(np.median(found))
    out = torch.stack([depth[i] * float(s if s is not None else fallback) for i, s in enumerate(scales)])
    stats = {"camera_height_m": camera_height_m, "images_with_floor": len(found), "images": len(scales),
             "median_scale": fallback, "median_tilt_deg": float(np.median([p["tilt_deg"] for p in per if "tilt_deg" in p]))}
    return out, stats
