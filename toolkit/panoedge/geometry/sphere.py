"""The unit sphere and the equirectangular (ERP) grid, in NumPy.

Convention (CONVENTIONS.md): camera frame x right, y down, z forward.
``lon = atan2(x, z)`` in (-pi, pi], positive to the right; ``lat = -asin(y)``, positive up.
ERP is ``H x W`` with ``W == 2 H``; pixel centres ``u = (lon / 2pi + 0.5) W - 0.5`` and
``v = (0.5 - lat / pi) H - 0.5``. Longitude wraps: column ``W-1`` neighbours column 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from panoedge.errors import UsageError

TWO_PI = 2.0 * np.pi


MAX_ERP_H = 8192
"""The tallest ERP any tool makes (8192x16384, 134 Mpx): above the 12K of today's largest 360° cameras,
and what one stitch table of that size already costs in memory (a bigger request is a typo, not a wish)."""


def check_erp_size(h: int, w: int, what: str = "ERP size", multiple: int = 1) -> tuple[int, int]:
    """Validate an ERP size: positive, ``W == 2 H``, ``H <= MAX_ERP_H`` and ``H`` a multiple of ``multiple``."""
    h, w = int(h), int(w)
    if h <= 0 or w <= 0:
        raise UsageError(f"{what} {h}x{w}: height and width must be positive")
    if h > MAX_ERP_H:
        raise UsageError(f"{what} {h}x{w}: larger than the largest ERP panoedge makes "
                         f"({MAX_ERP_H}x{2 * MAX_ERP_H})")
    if w != 2 * h:
        raise UsageError(f"{what} {h}x{w}: an ERP image has W == 2*H (e.g. {h}x{2 * h})")
    if h % multiple:
        raise UsageError(f"{what} {h}x{w}: H must be a multiple of {multiple}")
    return h, w


def parse_hw(text: str, what: str = "size") -> tuple[int, int]:
    """Parse ``"HxW"`` (as written in flags and files) into ``(H, W)``."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"{what} {text!r}: expected HxW, e.g. 512x1024")
    return int(parts[0]), int(parts[1])


def lonlat_to_ray(lon, lat) -> np.ndarray:
    """Unit rays ``(..., 3)`` from longitude/latitude in radians."""
    lon = np.asarray(lon)
    lat = np.asarray(lat)
    c = np.cos(lat)
    return np.stack([c * np.sin(lon), -np.sin(lat), c * np.cos(lon)], axis=-1)


def ray_to_lonlat(ray) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` in radians of rays ``(..., 3)``; rays need not be normalised."""
    ray = np.asarray(ray)
    x, y, z = ray[..., 0], ray[..., 1], ray[..., 2]
    n = np.sqrt(x * x + y * y + z * z)
    lon = np.arctan2(x, z)
    lat = -np.arcsin(np.clip(y / np.where(n > 0, n, 1.0), -1.0, 1.0))
    return lon, lat


def erp_pixel_to_lonlat(u, v, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """ERP pixel coordinates (centre convention) to ``(lon, lat)`` radians."""
    lon = ((np.asarray(u) + 0.5) / w - 0.5) * TWO_PI
    lat = (0.5 - (np.asarray(v) + 0.5) / h) * np.pi
    return lon, lat


def lonlat_to_erp_pixel(lon, lat, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` radians to ERP pixel coordinates ``(u, v)`` (centre convention)."""
    u = (np.asarray(lon) / TWO_PI + 0.5) * w - 0.5
    v = (0.5 - np.asarray(lat) / np.pi) * h - 0.5
    return u, v


def erp_lonlat_grid(h: int, w: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` of every ERP pixel centre, each ``(H, W)``."""
    u = np.arange(w, dtype=np.float64)
    v = np.arange(h, dtype=np.float64)
    lon, lat = erp_pixel_to_lonlat(u[None, :], v[:, None], h, w)
    lon, lat = np.broadcast_arrays(lon, lat)
    return lon.astype(dtype), lat.astype(dtype)


@lru_cache(maxsize=16)
def _erp_rays_cached(h: int, w: int) -> np.ndarray:
    lon, lat = erp_lonlat_grid(h, w)
    rays = lonlat_to_ray(lon, lat)
    rays.setflags(write=False)
    return rays


def erp_rays(h: int, w: int, dtype=np.float64) -> np.ndarray:
    """Unit rays ``(H, W, 3)`` through every ERP pixel centre (cached, read-only in float64)."""
    rays = _erp_rays_cached(int(h), int(w))
    return rays if dtype == np.float64 else rays.astype(dtype)


def erp_solid_angle(h: int, w: int) -> np.ndarray:
    """Exact solid angle in steradians of each ERP pixel, ``(H, W)``; sums to ``4 pi``.

    A pixel row spans ``dlon = 2 pi / W`` and latitudes ``[lat_lo, lat_hi]``, so its
    solid angle is ``dlon * (sin lat_hi - sin lat_lo)`` (proportional to ``cos lat``).
    """
    edges = (0.5 - np.arange(h + 1, dtype=np.float64) / h) * np.pi
    rows = (np.sin(edges[:-1]) - np.sin(edges[1:])) * (TWO_PI / w)
    return np.broadcast_to(rows[:, None], (h, w)).copy()


def erp_area_weights(h: int, w: int, dtype=np.float32) -> np.ndarray:
    """Per-pixel area weights ``(H, W)`` normalised to mean 1 (solid angle / mean solid angle)."""
    sa = erp_solid_angle(h, w)
    return (sa / sa.mean()).astype(dtype)


def angle_between(a, b) -> np.ndarray:
    """Angle in radians between rays ``(..., 3)``; stable for tiny and near-pi angles."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return np.arctan2(cross, dot)
