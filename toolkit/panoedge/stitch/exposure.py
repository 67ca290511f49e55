"""Exposure and colour compensation between the two lenses, estimated from the overlap.

Each frame, the band strips (both lenses sampled at the same output pixels, vignetting
corrected) give per-lens, per-channel mean colours ``m_0``, ``m_1`` over a fixed subsample
of the band, weighted by solid angle, ignoring clipped (>= 250) and near-black (<= 4) pixels.
The gains move both lenses to their geometric mean: ``g_0 = sqrt(m_1 / m_0)``, ``g_1 = 1 / g_0``,
so the panorama's overall brightness is kept. For video the log gains are smoothed over time
with an exponential moving average; gains are clamped to ``[1 / max_gain, max_gain]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExposureCompensator:
    """Per-lens RGB gains ``(2, 3)``, updated from each frame's band strips.

    ``smoothing`` is the EMA weight of the past (0: every frame on its own; 0.8 suits video);
    the first frame is taken as is. ``tolerance`` is the relative gain change below which the
    applied gains are kept (the stitcher then skips rebuilding its gain image).
    """

    smoothing: float = 0.0
    max_gain: float = 1.6
    tolerance: float = 1.0 / 512.0
    min_pixels: int = 64
    _log_gain: np.ndarray | None = field(default=None, repr=False)
    applied: np.ndarray = field(default_factory=lambda: np.ones((2, 3)), repr=False)
    frames: int = 0

    def reset(self) -> None:
        self._log_gain = None
        self.applied = np.ones((2, 3))
        self.frames = 0

    @staticmethod
    def measure(a: np.ndarray, b: np.ndarray, vig_a: np.ndarray, vig_b: np.ndarray):
        """Weighted colour sums ``(2, 3)`` of samples ``a, b (N, 3) uint8`` (their ratio is what counts)
        and the number of samples used.

        ``a[k]`` and ``b[k]`` are the two lenses at the same output pixel; ``vig_a``/``vig_b (N,)``
        are each lens's vignetting correction times the pixel's area weight (0: ignore).
        """
        ab = np.concatenate([a, b], axis=1).astype(np.float32)
        # A sample counts where no channel of either lens is clipped or near black.
        ok = (((ab >= 250) | (ab <= 4)).astype(np.float32) @ np.ones(6, dtype=np.float32)) == 0
        wa = np.where(ok, vig_a, 0.0).astype(np.float32)
        wb = np.where(ok, vig_b, 0.0).astype(np.float32)
        n = int(np.count_nonzero(wa * wb))
        if n == 0:
            return np.ones((2, 3)), 0
        sums = np.stack([wa, wb]) @ ab
        return np.stack([sums[0, :3], sums[1, 3:]]).astype(np.float64), n

    def update(self, a: np.ndarray, b: np.ndarray, vig_a: np.ndarray, vig_b: np.ndarray) -> bool:
        """Fold one frame's band samples in; True when the applied gains changed."""
        means, n = self.measure(a, b, vig_a, vig_b)
        self.frames += 1
        if n < self.min_pixels:
            target = np.zeros((2, 3)) if self._log_gain is None else self._log_gain
        else:
            half = 0.5 * (np.log(np.maximum(means[1], 1e-3)) - np.log(np.maximum(means[0], 1e-3)))
            lim = np.log(self.max_gain)
            half = np.clip(half, -lim, lim)
            target = np.stack([half, -half])
        if self._log_gain is None or self.smoothing <= 0:
            self._log_gain = target
        else:
            self._log_gain = self.smoothing * self._log_gain + (1.0 - self.smoothing) * target
        gains = np.exp(self._log_gain)
        if np.max(np.abs(gains / self.applied - 1.0)) > self.tolerance:
            self.applied = gains
            return True
        return False
