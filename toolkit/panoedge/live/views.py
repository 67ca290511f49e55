"""What a person sees of a result: segmentation overlay, depth colours, side-by-side, JPEG.

All images are ``(H, W, 3)`` uint8 RGB. Depth colours use a range that follows the scene
slowly (the 98th percentile, re-estimated about once a second) rather than per frame, so
colours do not flicker and no frame pays for a percentile.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from panoedge.io import IGNORE, colorize_depth, depth_range

__all__ = ["DepthColors", "composite", "encode_jpeg", "label_lut", "overlay"]


def label_lut(colors) -> np.ndarray:
    """A ``(256, 3)`` uint8 lookup table: class id -> colour, ignore (255) and unknown ids black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)[:IGNORE]
    lut[: len(colors)] = colors
    return lut


def overlay(erp: np.ndarray, labels: np.ndarray | None, lut: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The ERP with class colours blended in at ``alpha`` (the ERP alone where ``labels`` is None)."""
    if labels is None:
        return erp
    if labels.shape != erp.shape[:2]:
        labels = cv2.resize(labels, (erp.shape[1], erp.shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.addWeighted(erp, 1.0 - alpha, lut[labels], alpha, 0.0)


class DepthColors:
    """Turbo colours for depth (near red, far blue, invalid black) with a slowly adapting range."""

    def __init__(self, max_m: float | None = None, every_s: float = 1.0):
        self.fixed = max_m
        self.max_m = max_m or 10.0
        self.min_m = None
        self.every_s = every_s
        self._t = 0.0

    def __call__(self, depth: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray:
        if depth is None:
            return np.zeros((*hw, 3), dtype=np.uint8)
        now = time.monotonic()
        if now - self._t >= self.every_s:  # the range adapts once a second, not per frame
            if np.any(np.isfinite(depth) & (depth > 0)):
                near, far = depth_range(depth)
                self.min_m = min(near, 0.5 * self.fixed) if self.fixed else near
                self.max_m = self.fixed or far
            self._t = now
        rgb = colorize_depth(depth, max_m=max(self.max_m, 1e-3), min_m=self.min_m)
        if rgb.shape[:2] != tuple(hw):
            rgb = cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        return rgb


def composite(erp: np.ndarray, labels, depth, lut: np.ndarray, depth_colors: DepthColors) -> np.ndarray:
    """ERP | segmentation overlay | depth colour map, side by side: ``(H, 3 W, 3)``."""
    return np.concatenate([erp, overlay(erp, labels, lut), depth_colors(depth, erp.shape[:2])], axis=1)


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """RGB uint8 -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return buf.tobytes()
