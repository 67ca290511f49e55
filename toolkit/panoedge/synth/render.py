"""Renders of the synthetic world from any camera of :mod:`panoedge.geometry`.

Every render gives RGB, depth and semantic labels, consistent across cameras because they
come from casting the same world: the same 3D point has the same depth and label in every
view. Depth is range (distance along the ray) for ERP and fisheye cameras and z-depth for
pinhole cameras (CONVENTIONS.md); 0 where nothing was hit (sky) or outside the image circle.
Labels are 255 (ignore) outside a fisheye's image circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.geometry import ErpCamera, PinholeCamera
from panoedge.io import IGNORE


@dataclass
class View:
    """One render. Shapes: ``rgb (H, W, 3) uint8``, ``depth (H, W) float32`` metres,
    ``labels (H, W) uint8``, ``valid (H, W) bool``; ``depth_kind`` is ``range`` or ``z``."""

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    depth_kind: str


def to_uint8(rgb: np.ndarray, gain=1.0) -> np.ndarray:
    """Float RGB in [0, 1] times ``gain`` (scalar or per channel) to uint8 with rounding."""
    return np.clip(np.round(np.asarray(rgb, dtype=np.float32) * np.asarray(gain, dtype=np.float32) * 255.0),
                   0, 255).astype(np.uint8)


def cast_rays(world, position, rays_world: np.ndarray):
    """Cast ``(N, 3)`` world-frame rays from ``position`` (3,): the world's :class:`Hit`."""
    return world.cast(np.asarray(position, dtype=np.float64), np.asarray(rays_world, dtype=np.float64))


def render(world, camera, position=None, R=None) -> View:
    """Render ``world`` seen by ``camera`` at ``position`` with camera-to-world rotation ``R``.

    ``position`` defaults to the world's default camera, ``R`` to identity (looking along +z).
    """
    position = world.default_camera() if position is None else np.asarray(position, dtype=np.float64)
    R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
    rays, valid = camera.rays()
    h, w = valid.shape
    hit = cast_rays(world, position, rays[valid] @ R.T)
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    depth = np.zeros((h, w), dtype=np.float32)
    labels = np.full((h, w), IGNORE, dtype=np.uint8)
    rgb[valid] = to_uint8(hit.rgb)
    t = np.where(np.isfinite(hit.t), hit.t, 0.0).astype(np.float32)
    kind = "range"
    if isinstance(camera, PinholeCamera):
        t = (t * rays[valid][:, 2]).astype(np.float32)
        kind = "z"
    depth[valid] = t
    labels[valid] = hit.label
    return View(rgb=rgb, depth=depth, labels=labels, valid=valid.copy(), depth_kind=kind)


def render_erp(world, h: int, w: int, position=None, R=None) -> View:
    """The full sphere around ``position`` as an ERP render (depth is range)."""
    return render(world, ErpCamera(int(h), int(w)), position=position, R=R)


def render_pinhole(world, h: int, w: int, fov_deg, position=None, R=None) -> View:
    """A pinhole render (depth is z-depth); ``fov_deg`` horizontal, or ``(hfov, vfov)``."""
    return render(world, PinholeCamera.from_fov(h, w, fov_deg), position=position, R=R)
