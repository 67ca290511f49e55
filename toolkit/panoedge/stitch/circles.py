"""Find a fisheye's image circle (centre, radius in pixels) from the image alone.

Outside the image circle a fisheye sensor records (nearly) black. Along rays from a first
guess of the centre, the circle's edge is where the profile falls for the last time to the
dark level seen beyond it; the fall is located to sub-pixel precision at the steepest
descent. Rays that leave the image before reaching the dark (circles clipped by the frame)
give no point. A circle is fitted to the edge points (algebraic fit, then geometric least
squares with a robust loss) and the rays are cast again from the new centre.

Coordinates are pixels of the image given (a lens's own region of the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from panoedge.errors import DataError


@dataclass(frozen=True)
class CircleFit:
    """A fitted image circle: centre ``(cx, cy)`` and ``radius`` in pixels, the number of edge
    points used, their RMS distance to the circle and the fraction of the circumference seen."""

    cx: float
    cy: float
    radius: float
    n_points: int
    rms_px: float
    coverage: float


def _profiles(gray: np.ndarray, cx: float, cy: float, radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Intensity along each ray ``(n_angles, n_radii)``; NaN outside the image."""
    xs = (cx + np.cos(angles)[:, None] * radii[None, :]).astype(np.float32)
    ys = (cy + np.sin(angles)[:, None] * radii[None, :]).astype(np.float32)
    prof = cv2.remap(gray, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    h, w = gray.shape
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return np.where(inside, prof, np.nan)


def _edge_points(gray, cx, cy, r0, n_angles=720):
    """Edge points ``(n, 3)`` (x, y, angle) along ``n_angles`` rays from ``(cx, cy)``, vectorised over rays."""
    angles = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    step = 0.5
    radii = np.arange(0.55 * r0, 1.3 * r0, step)
    prof = _profiles(gray, cx, cy, radii, angles)
    ok = np.isfinite(prof)
    n_r = radii.size
    cols = np.arange(n_r)
    has = ok.any(axis=1)
    last = np.where(has, n_r - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
    tail_idx = np.clip(last[:, None] + np.arange(-12, 1)[None, :], 0, n_r - 1)
    dark = np.nanmedian(np.take_along_axis(prof, tail_idx, axis=1), axis=1)
    first = np.where(cols[None, :] <= np.maximum(last // 2, 1)[:, None], prof, np.nan)
    with np.errstate(all="ignore"):
        bright = np.nanpercentile(first, 60, axis=1)
    # The ray left the image inside the circle, or the scene is as dark as the border: no edge.
    good = has & np.isfinite(bright) & (bright - dark >= 12.0) & (dark <= 60.0)
    thr = dark + 0.5 * (bright - dark)
    above = ok & (prof > thr[:, None]) & (cols[None, :] <= last[:, None])
    any_above = above.any(axis=1)
    i = n_r - 1 - np.argmax(above[:, ::-1], axis=1)
    good &= any_above & (last - i >= 8)
    win = np.clip(i[:, None] + np.arange(-6, 7)[None, :], 0, n_r - 1)
    seg = np.take_along_axis(prof, win, axis=1)
    seg = np.where(np.isfinite(seg), seg, dark[:, None])
    d = np.gradient(seg, axis=1)
    j = np.argmin(d, axis=1)
    jc = np.clip(j, 1, d.shape[1] - 2)
    dm, d0, dp = (np.take_along_axis(d, (jc + o)[:, None], axis=1)[:, 0] for o in (-1, 0, 1))
    den = dm - 2 * d0 + dp
    frac = np.where((j == jc) & (den != 0), 0.5 * (dm - dp) / np.where(den != 0, den, 1.0), 0.0)
    r = radii[np.clip(i - 6, 0, None)] + (j + np.clip(frac, -1, 1)) * step
    pts = np.stack([cx + np.cos(angles) * r, cy + np.sin(angles) * r, angles], axis=1)
    return pts[good]


def _circle3(p: np.ndarray):
    """Circles through triples of points ``(T, 3, 2)``: centres ``(T, 2)`` and radii ``(T,)`` (NaN if collinear)."""
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    sa, sb, sc = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
        uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    centres = np.stack([ux, uy], axis=1)
    return centres, np.hypot(a[:, 0] - ux, a[:, 1] - uy)


def _ransac(xy: np.ndarray, r_range, tol: float, rng: np.random.Generator, trials: int = 500) -> np.ndarray:
    """Inlier mask of the circle (radius within ``r_range``) that most edge points agree with."""
    idx = rng.integers(0, len(xy), size=(trials, 3))
    centres, radii = _circle3(xy[idx])
    good = np.isfinite(radii) & (radii >= r_range[0]) & (radii <= r_range[1])
    if not good.any():
        return np.ones(len(xy), dtype=bool)
    centres, radii = centres[good], radii[good]
    dist = np.abs(np.hypot(xy[None, :, 0] - centres[:, None, 0], xy[None, :, 1] - centres[:, None, 1]) - radii[:, None])
    best = int(np.argmax((dist < tol).sum(1)))
    return dist[best] < tol


def _fit(pts: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Geometric least-squares circle fit (robust loss); returns ``(cx, cy, r, residuals)``."""
    from scipy.optimize import least_squares

    x, y = pts[:, 0], pts[:, 1]
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r = np.sqrt(max(sol[2] + cx * cx + cy * cy, 1.0))

    def res(p):
        return np.hypot(x - p[0], y - p[1]) - p[2]

    fit = least_squares(res, [cx, cy, r], loss="soft_l1", f_scale=1.0)
    return float(fit.x[0]), float(fit.x[1]), float(fit.x[2]), res(fit.x)


def find_circle(img: np.ndarray, guess=None, iterations: int = 3) -> CircleFit:
    """The image circle of a fisheye image ``(H, W, 3) uint8`` (or grey ``(H, W)``).

    ``guess``: ``(cx, cy, radius)`` to start from (default: the image centre and half its
    smaller side); the radius found stays within -20%/+25% of it. Edge points are filtered by
    RANSAC (dark scene content at the rim gives false edges). Raises :class:`DataError` where
    too little of an edge is visible.
    """
    gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    h, w = gray.shape
    cx, cy, r = guess if guess is not None else ((w - 1) / 2.0, (h - 1) / 2.0, min(h, w) / 2.0)
    r_range = (0.8 * r, 1.25 * r)
    rng = np.random.default_rng(0)
    pts = np.zeros((0, 3))
    resid = np.zeros(0)
    for _ in range(iterations):
        pts = _edge_points(gray, cx, cy, r)
        if len(pts) < 20:
            break
        pts = pts[_ransac(pts[:, :2], r_range, max(1.5, 0.003 * r), rng)]
        if len(pts) < 20:
            break
        cx, cy, r, resid = _fit(pts)
    if len(pts) < 20:
        raise DataError(f"no image circle found: only {len(pts)} edge points (is this a fisheye image with a dark border?)")
    bins = np.unique(np.floor(pts[:, 2] / (2 * np.pi) * 72).astype(int))
    return CircleFit(cx=cx, cy=cy, radius=r, n_points=int(len(pts)), rms_px=float(np.sqrt(np.mean(resid ** 2))),
                     coverage=float(bins.size / 72.0))
