"""Exposure and colour compensation between the two lenses, estimated from the overlap.

Each frame, the band strips (both lenses sampled at the same output pixels, vignetting
corrected) give per channel the area- and brightness-weighted median log ratio of the two lenses over a fixed
subsample of the band, ignoring clipped (>= ``CLIPPED_LEVEL``) and near-black (<= 4) pixels.
Exposure and white balance scale *linear* light; with the power-law linearisation
``v ** GAMMA`` a linear gain ``g`` is exactly the encoded multiplier ``g ** (1 / GAMMA)``
the stitcher applies, and the median log ratio is the same in either space (so nothing is
lost by not decoding; a ratio of linear *means* would be dominated by a few bright pixels).

The gains move both lenses to their geometric mean (per channel: white balance too) and are
clamped to ``[1 / max_gain, max_gain]``; for video the log gains are smoothed over time with
an exponential moving average. **Highlight protection** comes last: each lens reports a high
quantile of its brightest channel (``HIGHLIGHT_QUANTILE`` of its image circle, sampled on a
fixed grid); both lenses' gains are scaled down together (their ratio, which matches the
seam, is kept) until no lens lifts that quantile past ``CLIPPED_LEVEL``, and a lens that is
already clipped there gets no gain above 1. So compensation clips at most the pixels above
the quantile that were not clipped before, and never blows out a sky to match a dark lens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GAMMA = 2.2
"""Encoded -> linear light exponent (the sRGB curve's overall power): gains are estimated on ``v ** GAMMA``."""
CLIPPED_LEVEL = 250
"""Encoded value from which a channel counts as clipped (JPEG ringing puts saturated pixels at 250-255)."""
HIGHLIGHT_QUANTILE = 99.7
"""Percentile of a lens's brightest channel kept below ``CLIPPED_LEVEL`` by its gain: at most 0.3% of
its pixels can newly clip (the issue's bound is 0.5 points of the panorama)."""


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def highlight_headroom(quantile_value: float) -> float:
    """Largest encoded gain that keeps a lens whose high quantile is ``quantile_value`` unclipped (>= 1)."""
    return max(1.0, (CLIPPED_LEVEL - 1.0) / max(float(quantile_value), 1.0))


@dataclass
class ExposureCompensator:
    """Per-lens RGB gains ``(2, 3)`` on encoded values, updated from each frame's band strips.

    ``smoothing`` is the EMA weight of the past (0: every frame on its own; 0.8 suits video);
    the first frame is taken as is. ``tolerance`` is the relative gain change below which the
    applied gains are kept (the stitcher then skips rebuilding its gain image).
    ``protect_highlights``: scale the gains down so no lens clips its highlights (module doc).
    """

    smoothing: float = 0.0
    max_gain: float = 1.6
    tolerance: float = 1.0 / 512.0
    min_pixels: int = 64
    protect_highlights: bool = True
    _log_gain: np.ndarray | None = field(default=None, repr=False)
    applied: np.ndarray = field(default_factory=lambda: np.ones((2, 3)), repr=False)
    frames: int = 0
    highlight_scale: float = 1.0

    def reset(self) -> None:
        self._log_gain = None
        self.applied = np.ones((2, 3))
        self.frames = 0
        self.highlight_scale = 1.0

    @staticmethod
    def measure(a: np.ndarray, b: np.ndarray, vig_a: np.ndarray, vig_b: np.ndarray, area=None):
        """Per-channel log ratio ``(3,)`` of lens ``b`` over lens ``a`` (encoded values; times
        :data:`GAMMA` in linear light) and the number of samples used.

        ``a[k]`` and ``b[k]`` ``(N, 3) uint8`` are the two lenses at the same output pixel;
        ``vig_a``/``vig_b (N,)`` each lens's vignetting correction times the pixel's area weight
        ``area (N,)`` (0: ignore; ``None``: all areas 1). The ratio is the area- and brightness-weighted
        *median* of the per-pixel log ratios: parallax, misregistration and moving things put a few band
        pixels far off, and a mean (worse, a mean of linear light, which a few bright pixels
        dominate) follows them.
        """
        area = np.ones(len(a)) if area is None else np.asarray(area, dtype=np.float64)
        safe = np.where(area > 0, area, 1.0)
        ab8 = np.concatenate([a, b], axis=1)
        # A sample counts where no channel of either lens is clipped or near black.
        ok = ~((ab8 >= CLIPPED_LEVEL) | (ab8 <= 4)).any(axis=1) & (area > 0) & (vig_a > 0) & (vig_b > 0)
        n = int(np.count_nonzero(ok))
        if n == 0:
            return np.zeros(3), 0
        va = np.asarray(vig_a, np.float64)[ok] / safe[ok]
        vb = np.asarray(vig_b, np.float64)[ok] / safe[ok]
        lr = (np.log(b[ok].astype(np.float64) * vb[:, None]) - np.log(a[ok].astype(np.float64) * va[:, None]))
        # Weighted by brightness too: |g a - b| = a |g - b / a|, so this median minimises the
        # lenses' absolute disagreement, and dark pixels (coarse ratios of small integers) count less.
        bright = a[ok].astype(np.float64) + b[ok]
        return np.array([_weighted_median(lr[:, c], area[ok] * bright[:, c]) for c in range(3)]), n

    def update(self, a: np.ndarray, b: np.ndarray, vig_a: np.ndarray, vig_b: np.ndarray,
               highs=None, area=None) -> bool:
        """Fold one frame's band samples in; True when the applied gains changed.

        ``area``: see :meth:`measure`. ``highs``: optional ``(2,)`` high quantile (encoded) of each lens's brightest channel over
        its whole image circle, for highlight protection.
        """
        log_ratio, n = self.measure(a, b, vig_a, vig_b, area)
        self.frames += 1
        if n < self.min_pixels:
            target = np.zeros((2, 3)) if self._log_gain is None else self._log_gain
        else:
            half = 0.5 * log_ratio
            lim = np.log(self.max_gain)
            half = np.clip(half, -lim, lim)
            target = np.stack([half, -half])
        if self._log_gain is None or self.smoothing <= 0:
            self._log_gain = target
        else:
            self._log_gain = self.smoothing * self._log_gain + (1.0 - self.smoothing) * target
        gains = np.exp(self._log_gain)
        if self.protect_highlights and highs is not None:
            room = np.array([highlight_headroom(h) for h in highs])
            scale = float(min(1.0, np.min(room / gains.max(axis=1))))
            # Smoothed like the gains, but never above this frame's limit (a video does not flicker
            # and a sudden highlight is protected at once).
            past = self.highlight_scale if self.frames > 1 else scale
            self.highlight_scale = min(scale, self.smoothing * past + (1.0 - self.smoothing) * scale)
            gains = gains * self.highlight_scale
        if np.max(np.abs(gains / self.applied - 1.0)) > self.tolerance:
            self.applied = gains
            return True
        return False
