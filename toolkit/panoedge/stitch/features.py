"""Feature matches between the two lenses inside their overlap, as raw lens pixel pairs.

Both lenses are projected into a *seam strip*: an ERP band of ``+-half_deg`` around the
seam circle, in a frame whose pole is the rig's mean optical axis, so the overlap is an
undistorted horizontal strip whatever the lenses' orientation. SIFT features of the two
projections are matched (Lowe's ratio test) and kept where both lie within ``gate_deg`` of
each other under the current rig. Each match is returned as the pixel position in each
lens's image (canvas coordinates): observations that do not depend on the rig, so an
optimiser can re-project them under any candidate parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from panoedge.geometry import angle_between, erp_pixel_to_lonlat, lonlat_to_ray, rotation_aligning
from panoedge.stitch.frames import check_frame
from panoedge.stitch.rig import Rig

BALANCE_POWER = 0.5
"""How far ``Matches.concat(balance=True)`` evens out frames: each frame's matches are weighted by
``(mean count / its count) ** BALANCE_POWER``; 1 makes every frame count the same, 0 weighs every
match the same. (Measured by tests/test_stitch_real.py's joint Insta360 rig and the 3 cm recovery tests.)"""


@dataclass
class Matches:
    """``uv0, uv1 (N, 2)``: matched pixel positions in lens 0 and lens 1 (canvas pixels);
    ``weight (N,)``: optional weight of each match in a solve (None: all 1)."""

    uv0: np.ndarray
    uv1: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.uv0.shape[0])

    @staticmethod
    def concat(items, balance: bool = False) -> "Matches":
        """One set of matches from several frames. ``balance``: weight each frame's matches so every
        frame counts the same in a solve (mean weight 1), so a frame rich in texture does not decide
        the rig for a scene with fewer matches."""
        items = list(items)
        if not items:
            return Matches(np.zeros((0, 2)), np.zeros((0, 2)))
        weight = None
        if balance:
            n = np.array([len(m) for m in items], dtype=np.float64)
            k = max(int(np.count_nonzero(n)), 1)
            w = {i: (n.sum() / (k * len(m))) ** BALANCE_POWER for i, m in enumerate(items) if len(m)}
            weight = np.concatenate([np.full(len(items[i]), v) for i, v in w.items()]) if w else np.zeros(0)
            weight = weight / weight.mean() if weight.size else weight
        return Matches(np.concatenate([m.uv0 for m in items]), np.concatenate([m.uv1 for m in items]), weight)


def seam_rotation(rig: Rig) -> np.ndarray:
    """Seam-frame-to-rig rotation: the seam frame's north pole (-y) is the rig's mean optical axis."""
    z = np.array([0.0, 0.0, 1.0])
    axis = rig.lenses[0].rotation @ z - rig.lenses[1].rotation @ z
    return rotation_aligning(np.array([0.0, -1.0, 0.0]), axis / np.linalg.norm(axis))


def strip_height(rig: Rig) -> int:
    """ERP height sampling the seam at twice lens 0's density (``2 pi f``; SIFT finds more there), 512..4096."""
    f = rig.canvas_camera(0).f_px
    return int(np.clip(np.round(np.pi * f) * 2, 512, 4096))


def canvas_of(rig: Rig, frame) -> np.ndarray:
    """The frame as one canvas image (the two files side by side for separate layouts)."""
    parts = check_frame(rig, frame)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def strip_rays(rig: Rig, h: int, half_deg: float) -> np.ndarray:
    """Rig-frame rays ``(rows, 2h, 3)`` of the seam strip of an ``h x 2h`` seam-frame ERP."""
    w = 2 * h
    rows = int(np.ceil(half_deg / 180.0 * h))
    v = np.arange(h // 2 - rows, h // 2 + rows, dtype=np.float64)
    u = np.arange(w, dtype=np.float64)
    lon, lat = erp_pixel_to_lonlat(u[None, :], v[:, None], h, w)
    rays = lonlat_to_ray(*np.broadcast_arrays(lon, lat))
    return rays @ seam_rotation(rig).T


def project_lens(rig: Rig, i: int, rays_rig: np.ndarray):
    """``(u, v, valid)`` of rig-frame rays in lens ``i``'s canvas pixels (inside its field and region)."""
    lens = rig.lenses[i]
    u, v, ok = rig.canvas_camera(i).project(rays_rig @ lens.rotation)
    x0, y0, x1, y1 = rig.lens_region(i)
    return u, v, ok & (u >= x0) & (u <= x1 - 1) & (v >= y0) & (v <= y1 - 1)


def lens_strips(rig: Rig, canvas: np.ndarray, h: int, half_deg: float):
    """Each lens remapped into the seam strip: ``[(gray uint8, valid mask)] * 2`` and the strip rays."""
    rays = strip_rays(rig, h, half_deg)
    out = []
    for i in range(2):
        u, v, ok = project_lens(rig, i, rays)
        img = cv2.remap(canvas, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        out.append((gray, ok))
    return out, rays


def _ray_at(rays: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Rays at sub-pixel strip positions (bilinear in the ray grid, renormalised)."""
    h, w = rays.shape[:2]
    maps = [cv2.remap(rays[..., k].astype(np.float32), xy[:, 0:1].astype(np.float32), xy[:, 1:2].astype(np.float32),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0] for k in range(3)]
    r = np.stack(maps, axis=1).astype(np.float64)
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def match_overlap(rig: Rig, frame, half_deg: float | None = None, gate_deg: float = 4.0, ratio: float = 0.8,
                  max_features: int = 6000, strip_h: int | None = None) -> Matches:
    """SIFT matches between the lenses of ``frame`` within the overlap (see the module docstring).

    ``half_deg``: half-height of the seam strip (default: half the overlap plus 2 degrees);
    ``gate_deg``: keep matches whose rays under ``rig`` are at most this far apart.
    """
    canvas = canvas_of(rig, frame)
    overlap = (rig.lenses[0].fov_deg + rig.lenses[1].fov_deg) / 2.0 - 180.0
    half = max(overlap / 2.0 + 2.0, 4.0) if half_deg is None else float(half_deg)
    h = strip_h or strip_height(rig)
    strips, rays = lens_strips(rig, canvas, h, half)
    sift = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=0.02)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 16))
    feats = []
    for g, ok in strips:
        mask = cv2.erode(ok.astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
        kp, desc = sift.detectAndCompute(clahe.apply(g), mask)
        feats.append((np.array([k.pt for k in kp], dtype=np.float64).reshape(-1, 2), desc))
    (p0, d0), (p1, d1) = feats
    if d0 is None or d1 is None or len(p0) < 2 or len(p1) < 2:
        return Matches.concat([])
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d0, d1, k=2)
    pairs = [(m[0].queryIdx, m[0].trainIdx) for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if not pairs:
        return Matches.concat([])
    i0, i1 = np.array(pairs).T
    r0, r1 = _ray_at(rays, p0[i0]), _ray_at(rays, p1[i1])
    keep = np.rad2deg(angle_between(r0, r1)) < gate_deg
    # One match per lens-0 feature and per lens-1 feature (drop ambiguous many-to-one pairs).
    keep &= np.bincount(i1, minlength=len(p1))[i1] == 1
    r0, r1 = r0[keep], r1[keep]
    u0, v0, _ = project_lens(rig, 0, r0)
    u1, v1, _ = project_lens(rig, 1, r1)
    return Matches(np.stack([u0, v0], axis=1), np.stack([u1, v1], axis=1))


def residual_stats(rig: Rig, m: Matches, depth_m: float | None = None) -> dict:
    """Angles (degrees) between the two rays of each match under ``rig``: median, mean, p90, n."""
    if len(m) == 0:
        return {"n": 0, "median_deg": float("nan"), "mean_deg": float("nan"), "p90_deg": float("nan")}
    a = np.rad2deg(angle_between(*match_rays(rig, m, depth_m)))
    return {"n": int(a.size), "median_deg": float(np.median(a)), "mean_deg": float(np.mean(a)),
            "p90_deg": float(np.percentile(a, 90))}


def match_rays(rig: Rig, m: Matches, depth_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rig-frame rays ``(N, 3)`` of both sides of each match, seen from the rig centre.

    With ``depth_m``, each lens's ray is taken to a point that far from the lens (its
    ``translation_m`` applied), which removes the parallax of points at that distance;
    ``None`` puts every point at infinity.
    """
    out = []
    for i, uv in enumerate((m.uv0, m.uv1)):
        rays, _ = rig.canvas_camera(i).unproject(uv[:, 0], uv[:, 1])
        rays = rays @ rig.lenses[i].rotation.T
        if depth_m is not None:
            rays = rays * depth_m + np.asarray(rig.lenses[i].translation_m)
            rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        out.append(rays)
    return out[0], out[1]
