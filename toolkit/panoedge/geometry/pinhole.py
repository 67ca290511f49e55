"""Pinhole (gnomonic / tangent-plane) cameras (NumPy).

Convention: camera frame x right, y down, z forward; pixel centres at integer coordinates,
``u = fx * x / z + cx``. Pinhole depth is z-depth in metres; ERP depth is range. Convert
between them through the ray (:meth:`PinholeCamera.zdepth_to_range`), never by approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from panoedge.errors import UsageError


def _fov_pair(fov_deg, h: int, w: int) -> tuple[float, float]:
    """Horizontal and vertical FOV (degrees). A scalar is the horizontal FOV, square pixels."""
    if np.ndim(fov_deg) == 0:
        hfov = float(fov_deg)
        if not 0.0 < hfov < 180.0:
            raise UsageError(f"fov_deg {hfov}: a pinhole view needs 0 < fov < 180 degrees")
        vfov = float(np.rad2deg(2.0 * np.arctan(np.tan(np.deg2rad(hfov) / 2.0) * h / w)))
        return hfov, vfov
    hfov, vfov = (float(x) for x in fov_deg)
    for name, f in (("horizontal", hfov), ("vertical", vfov)):
        if not 0.0 < f < 180.0:
            raise UsageError(f"fov_deg ({name}) {f}: a pinhole view needs 0 < fov < 180 degrees")
    return hfov, vfov


@dataclass(frozen=True)
class PinholeCamera:
    """An ideal pinhole camera of ``h x w`` pixels.

    Shapes: :meth:`rays` gives ``(H, W, 3)`` unit rays in the camera frame.
    """

    h: int
    w: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, h: int, w: int, fov_deg) -> "PinholeCamera":
        """A centred pinhole; ``fov_deg`` is the horizontal FOV, or ``(hfov, vfov)``."""
        h, w = int(h), int(w)
        if h <= 0 or w <= 0:
            raise UsageError(f"pinhole size {h}x{w}: height and width must be positive")
        hfov, vfov = _fov_pair(fov_deg, h, w)
        fx = (w / 2.0) / np.tan(np.deg2rad(hfov) / 2.0)
        fy = (h / 2.0) / np.tan(np.deg2rad(vfov) / 2.0)
        return cls(h=h, w=w, fx=float(fx), fy=float(fy), cx=(w - 1) / 2.0, cy=(h - 1) / 2.0)

    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def unproject(self, u, v) -> np.ndarray:
        """Unit rays ``(..., 3)`` through pixel coordinates ``u, v``."""
        x = (np.asarray(u, dtype=np.float64) - self.cx) / self.fx
        y = (np.asarray(v, dtype=np.float64) - self.cy) / self.fy
        rays = np.stack([x, y, np.ones_like(x)], axis=-1)
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    @cached_property
    def _rays(self) -> np.ndarray:
        u, v = np.meshgrid(np.arange(self.w, dtype=np.float64), np.arange(self.h, dtype=np.float64))
        rays = self.unproject(u, v)
        rays.setflags(write=False)
        return rays

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rays (H, W, 3), valid (H, W) bool)``: every pixel of a pinhole is valid."""
        return self._rays, np.ones((self.h, self.w), dtype=bool)

    def project(self, rays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, valid)`` of rays ``(..., 3)``; valid means in front (z > 0) and in the image."""
        rays = np.asarray(rays, dtype=np.float64)
        z = rays[..., 2]
        front = z > 1e-12
        zs = np.where(front, z, 1.0)
        u = self.fx * rays[..., 0] / zs + self.cx
        v = self.fy * rays[..., 1] / zs + self.cy
        inside = front & (u > -0.5) & (u < self.w - 0.5) & (v > -0.5) & (v < self.h - 0.5)
        return u, v, inside

    def zdepth_to_range(self, zdepth: np.ndarray) -> np.ndarray:
        """Range (distance along the ray) from z-depth ``(H, W)``; invalid (<=0, non-finite) stays 0."""
        z = np.asarray(zdepth, dtype=np.float32)
        ok = np.isfinite(z) & (z > 0)
        r = z / self._rays[..., 2].astype(np.float32)
        return np.where(ok, r, 0.0).astype(np.float32)

    def range_to_zdepth(self, rng: np.ndarray) -> np.ndarray:
        """z-depth from range ``(H, W)``; invalid stays 0."""
        r = np.asarray(rng, dtype=np.float32)
        ok = np.isfinite(r) & (r > 0)
        z = r * self._rays[..., 2].astype(np.float32)
        return np.where(ok, z, 0.0).astype(np.float32)
