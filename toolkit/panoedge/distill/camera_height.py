"""Metric scale from the camera's height: a relative depth teacher made metric by the floor.

A robot knows how high its camera sits above the floor. Relative depth (range up to an unknown
scale, as :func:`panoedge.distill.tangent.fuse_depth` gives for relative and inverse-relative
teachers) back-projects the pixels the labels call ``floor`` to points on a plane, up to that same
scale; the plane's distance from the camera centre must be the camera height, so
``scale = camera_height_m / plane_distance``. A relative teacher's fused range is right up to
scale *and* a shift (the per-patch alignment leaves one), so both are solved from the floor:
per image, the floor's normal from a plane fit (area-weighted total least squares with residual
trimming: furniture feet, mislabelled rugs; taken level when it leans more than
:data:`MAX_TILT_DEG`), then every floor pixel's ``n . ((s r + t) ray) = h`` (rays as
CONVENTIONS.md) in least squares. Images without enough floor take the median of those with
one. Measured on the synthetic world, where the truth is known, by
``examples/measure_camera_height.py``.
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
MAX_TILT_DEG = 15.0
"""A fitted floor normal farther than this from the camera's vertical is not believed (a robot's
camera is mounted near level; a steep "floor" is mislabelled wall or furniture): the floor is
then taken level (normal along the camera's y)."""
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


def floor_scale(depth: np.ndarray, floor: np.ndarray, camera_height_m: float,
                shift: bool = True) -> tuple[tuple[float, float] | None, dict]:
    """Metric ``(scale, shift)`` of one relative range map ``(H, W)`` from the floor mask ``(H, W)``:
    metric range ``= scale * depth + shift``; ``(None, stats)`` where the floor is too small.

    The floor's normal ``n`` comes from the plane fit (or is taken level, see :data:`MAX_TILT_DEG`);
    every floor pixel then says ``n . ((scale * r + shift) * ray) = camera_height``, linear in
    ``scale`` and ``shift``: an area-weighted least-squares solve (trimmed like the plane) gives
    both, since the floor spans many ranges. ``shift=False`` fits the scale alone (for depth that
    is right up to scale only).
    """
    from panoedge.geometry import erp_area_weights, erp_rays

    h, w = depth.shape
    ok = floor & np.isfinite(depth) & (depth > 0)
    if ok.sum() < MIN_FLOOR_PIXELS:
        return None, {"floor_pixels": int(ok.sum())}
    rays = erp_rays(h, w)[ok]
    r = depth[ok].astype(np.float64)
    area = np.broadcast_to(erp_area_weights(h, w, np.float64), (h, w))[ok]
    n, _, _ = fit_plane(rays * r[:, None], area)
    if n[1] < 0:
        n = -n  # y points down: the floor lies along +n
    tilt = float(np.degrees(np.arccos(min(1.0, abs(n[1])))))  # 0: a level camera (floor normal along y)
    level = tilt > MAX_TILT_DEG
    if level:
        n = np.array([0.0, 1.0, 0.0])
    c = rays @ n
    keep = c > 0.05  # rays that reach the floor below the camera
    if keep.sum() < MIN_FLOOR_PIXELS:
        return None, {"floor_pixels": int(ok.sum()), "tilt_deg": tilt}
    cols = np.stack([r * c, c], 1) if shift else (r * c)[:, None]
    sel = keep.copy()
    for _ in range(TRIM_ROUNDS + 1):
        sw = np.sqrt(area[sel])
        sol = np.linalg.lstsq(cols[sel] * sw[:, None], np.full(int(sel.sum()), camera_height_m) * sw, rcond=None)[0]
        res = np.abs(cols @ sol - camera_height_m)
        sigma = 1.4826 * np.median(res[sel]) + 1e-9
        new = keep & (res <= TRIM_K * sigma)
        if new.sum() < MIN_FLOOR_PIXELS or (new == sel).all():
            break
        sel = new
    scale, off = float(sol[0]), (float(sol[1]) if shift else 0.0)
    if scale <= 0:
        return None, {"floor_pixels": int(ok.sum()), "tilt_deg": tilt, "scale": scale}
    return (scale, off), {"floor_pixels": int(ok.sum()), "inliers": int(sel.sum()), "tilt_deg": tilt,
                          "taken_level": level, "scale": scale, "shift_m": off}


def metric_from_camera_height(depth: torch.Tensor, probs: torch.Tensor, classes, camera_height_m: float):
    """Relative range ``(N, H, W)`` -> metric range, with the floor of ``probs`` ``(N, K, H, W)``.

    Per image ``scale * depth + shift`` (:func:`floor_scale`); images without a usable floor take
    the median scale and shift of the others. ``classes`` must name a ``floor`` class. Returns
    ``(depth in metres, stats)``; invalid pixels (0) stay 0.
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
    fallback = tuple(float(v) for v in np.median(np.array(found), 0))
    out = []
    for i, st in enumerate(scales):
        a, b = st if st is not None else fallback
        d = depth[i].float()
        out.append(torch.where(d > 0, (a * d + b).clamp_min(1e-3), torch.zeros_like(d)))
    out = torch.stack(out)
    stats = {"camera_height_m": camera_height_m, "images_with_floor": len(found), "images": len(scales),
             "images_taken_level": sum(bool(p.get("taken_level")) for p in per),
             "median_scale": fallback[0], "median_shift_m": fallback[1], "median_tilt_deg": float(np.median([p["tilt_deg"] for p in per if "tilt_deg" in p]))}
    return out, stats
