"""Depth-guided plane check of pseudo labels: floor and ceiling must lie on their planes.

A perspective teacher labels what *looks* like floor as floor: the seat of a chair, a table top
and the bottom of a wall seen steeply from above all get the floor's label, and the top of a
wall near the ceiling gets the ceiling's. A levelled panorama sees the whole floor and the whole
ceiling at once, and the teacher's own depth (range ``r`` along each pixel's ray) puts every
pixel at a height: ``r sin(lat)`` above the camera (CONVENTIONS.md: latitude positive up). On a
horizontal plane that height is one number per image, so a pixel labelled floor whose height
disagrees with the floor's is not floor. Per image and per plane group (:data:`GROUND` classes
below the horizon, :data:`OVERHEAD` classes above it):

1. the plane's distance ``h`` from the camera is the solid-angle-weighted median of
   ``|r sin(lat)|`` over the pixels the group holds with probability ``>= conf``;
2. each pixel's relative disagreement ``e = |h - |r sin(lat)|| / h`` turns into a likelihood
   ``exp(-max(0, e - tol) / sigma)`` (1 within the tolerance ``tol`` of the teacher's depth
   error, then decaying), 0 on the wrong side of the horizon;
3. the group's class probabilities are multiplied by it and each pixel renormalised, so the
   mass moves to the teacher's next choices (chair, table, wall) rather than to a guess.

The relative disagreement is unchanged by a global depth scale, so relative-depth teachers work
as well as metric ones. Pixels without valid depth, and images where a group has too few
confident pixels, are left as they are. This assumes levelled panoramas (the stitcher's
``--level``/IMU option, or a rig mounted upright), as robot cameras and the synthetic world give.
In the spirit of DepthG (depth guides the segmentation), but as an explicit 360° geometric prior.
"""

from __future__ import annotations

import torch

from panoedge.distill.pixl import weighted_quantile
from panoedge.geometry.torch_ops import erp_area_weights, erp_lonlat_grid

__all__ = ["GROUND", "OVERHEAD", "plane_groups", "refine_planes"]

GROUND = ("floor", "ground", "road", "sidewalk", "terrain", "grass", "parking", "rug", "carpet")
"""Class names (lower case) that lie on the ground plane."""
OVERHEAD = ("ceiling",)
"""Class names (lower case) that lie on a horizontal plane above the camera."""


def plane_groups(classes) -> list[tuple[int, list[int]]]:
    """``[(side, class ids)]`` for the ground (side ``+1``: below the camera) and overhead
    (side ``-1``) groups found in ``classes``; empty groups are left out."""
    names = [str(c).strip().lower() for c in classes]
    out = []
    for side, group in ((1, GROUND), (-1, OVERHEAD)):
        ids = [i for i, n in enumerate(names) if n in group]
        if ids:
            out.append((side, ids))
    return out


def refine_planes(probs: torch.Tensor, depth: torch.Tensor, classes, conf: float = 0.7, tol: float = 0.2,
                  sigma: float = 0.3, min_frac: float = 0.002) -> tuple[torch.Tensor, dict]:
    """Pseudo labels ``probs`` ``(N, K, H, W)`` (summing to 1) checked against the planes of ``depth``
    ``(N, H, W)`` (range; <= 0 or non-finite = unknown); see the module docstring.

    Returns ``(probs, stats)``: the refined labels (dtype of ``probs``) and ``{"images",
    "planes_found", "moved"}``: how many (image, plane) pairs were estimated, and the
    solid-angle-weighted fraction of probability mass that moved, per group name.
    A group needs confident pixels over ``min_frac`` of the image's solid angle.
    """
    n, k, h, w = probs.shape
    if depth.shape != (n, h, w):
        raise ValueError(f"depth of shape {tuple(depth.shape)} for labels of shape {tuple(probs.shape)}")
    groups = plane_groups(classes)
    lat = erp_lonlat_grid(h, w)[1]
    sin_lat, below = torch.sin(lat), lat < 0
    area = erp_area_weights(h, w).expand(h, w)
    stats = {"images": n, "planes_found": {"ground": 0, "overhead": 0}, "moved": {"ground": 0.0, "overhead": 0.0}}
    out = probs.clone()
    total_area = float(area.sum()) * n
    for i in range(n):
        r = depth[i].float()
        known = torch.isfinite(r) & (r > 0)
        height = torch.where(known, r, torch.zeros_like(r)) * sin_lat  # metres above the camera
        p = out[i].float()
        for side, ids in groups:
            name = "ground" if side > 0 else "overhead"
            right_side = below if side > 0 else ~below
            dist = side * -height  # distance below (ground) or above (overhead) the camera
            sure = (p[ids].sum(0) >= conf) & known & right_side & (dist > 0)
            if float(area[sure].sum()) < min_frac * float(area.sum()):
                continue
            plane = float(weighted_quantile(dist[sure], area[sure], 0.5))
            err = (plane - dist).abs() / max(plane, 1e-6)
            like = torch.exp(-(err - tol).clamp_min(0.0) / sigma)
            like = torch.where(right_side, like, torch.zeros_like(like))
            like = torch.where(known, like, torch.ones_like(like))
            before = p[ids].sum(0)
            p[ids] = p[ids] * like
            stats["planes_found"][name] += 1
            stats["moved"][name] += float((area * (before - p[ids].sum(0))).sum()) / total_area
        s = p.sum(0, keepdim=True)
        out[i] = torch.where(s > 1e-6, p / s.clamp_min(1e-6), probs[i].float()).to(probs.dtype)
    return out, stats
