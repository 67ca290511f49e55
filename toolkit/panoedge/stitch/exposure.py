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

from panoedge.stitch.seam_gain import FIELD_EVERY, FIELD_TOLERANCE, bin_log_ratios, field_from_bins

GAMMA = 2.2
"""Encoded -> linear light exponent (the sRGB curve's overall power): gains are estimated on ``v ** GAMMA``."""
CLIPPED_LEVEL = 250
"""Encoded value from which a channel counts as clipped (JPEG ringing puts saturated pixels at 250-255)."""
HIGHLIGHT_QUANTILE = 99.7
"""Percentile of a lens's brightest channel kept below ``CLIPPED_LEVEL`` by its gain: at most 0.3% of
its pixels can newly clip (the issue's bound is 0.5 points of the panorama)."""

KEEP_CLIPPED_MIN_GAIN = 0.85
"""Down to this gain a clipped channel stays white when the gains are applied: it only says "at
least this bright", and lenses a few percent apart would otherwise show a sky grey in one lens and
white in the other (a step along the seam). Below it the lens is much brighter than the other,
whose view of the same place is likely not clipped, so the clipped value is scaled like the rest."""


MEDIAN_BINS = 2048
"""Histogram bins of the weighted median of log ratios over [-LOG_RANGE, LOG_RANGE]: 0.0015 apart (0.15%
of gain), a bincount instead of a sort of every sample each frame."""
LOG_RANGE = 1.5


def _weighted_medians(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per column, the weighted median of ``x (N, C)`` (weights ``w (N, C)``) to a bin of
    :data:`MEDIAN_BINS` (values beyond the range count at its ends); one bincount for all columns."""
    step = 2.0 * LOG_RANGE / MEDIAN_BINS
    c = x.shape[1]
    idx = np.clip(((x + LOG_RANGE) / step).astype(np.int64), 0, MEDIAN_BINS - 1) + np.arange(c) * MEDIAN_BINS
    hist = np.bincount(idx.ravel(), weights=w.ravel(), minlength=c * MEDIAN_BINS).reshape(c, MEDIAN_BINS)
    cw = np.cumsum(hist, axis=1)
    k = np.array([np.searchsorted(cw[j], 0.5 * cw[j, -1]) for j in range(c)])
    return -LOG_RANGE + (k + 0.5) * step


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
    ``azimuthal``: also keep a seam gain field (:mod:`panoedge.stitch.seam_gain`): ``seam_field``
    ``(SEAM_BINS, 3)`` log ratio of lens 1 over lens 0 per azimuth bin, beyond the global one.
    """

    smoothing: float = 0.0
    max_gain: float = 1.6
    tolerance: float = 1.0 / 512.0
    min_pixels: int = 64
    protect_highlights: bool = True
    azimuthal: bool = False
    _log_gain: np.ndarray | None = field(default=None, repr=False)
    _field_log: np.ndarray | None = field(default=None, repr=False)
    seam_field: np.ndarray | None = field(default=None, repr=False)
    applied: np.ndarray = field(default_factory=lambda: np.ones((2, 3)), repr=False)
    frames: int = 0
    highlight_scale: float = 1.0

    def reset(self) -> None:
        self._log_gain = None
        self._field_log = None
        self.seam_field = None
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
        lr, wt, _ = ExposureCompensator.samples(a, b, vig_a, vig_b, area)
        if len(lr) == 0:
            return np.zeros(3), 0
        return _weighted_medians(lr, wt), len(lr)

    @staticmethod
    def samples(a, b, vig_a, vig_b, area=None):
        """The usable samples of :meth:`measure`: log ratios ``(n, 3)``, their weights ``(n, 3)``
        and the ``(N,) bool`` mask of the inputs they come from."""
        area = np.ones(len(a), np.float32) if area is None else np.asarray(area, dtype=np.float32)
        # A sample counts where no channel of either lens is clipped or near black.
        ok = ((a < CLIPPED_LEVEL) & (a > 4) & (b < CLIPPED_LEVEL) & (b > 4)).all(axis=1)
        ok &= (area > 0) & (np.asarray(vig_a) > 0) & (np.asarray(vig_b) > 0)
        ar = area[ok]
        va = (np.asarray(vig_a, np.float32)[ok] / np.maximum(ar, 1e-12))[:, None]
        vb = (np.asarray(vig_b, np.float32)[ok] / np.maximum(ar, 1e-12))[:, None]
        a_, b_ = a[ok].astype(np.float32), b[ok].astype(np.float32)
        lr = np.log((b_ * vb) / (a_ * va))
        # Weighted by brightness too: |g a - b| = a |g - b / a|, so this median minimises the
        # lenses' absolute disagreement, and dark pixels (coarse ratios of small integers) count less.
        return lr, ar[:, None] * (a_ + b_), ok

    def update(self, a: np.ndarray, b: np.ndarray, vig_a: np.ndarray, vig_b: np.ndarray,
               highs=None, area=None, azimuth=None) -> bool:
        """Fold one frame's band samples in; True when the applied gains (or field) changed.

        ``area``: see :meth:`measure`. ``highs``: optional ``(2,)`` high quantile (encoded) of each lens's brightest channel over
        its whole image circle, for highlight protection. ``azimuth``: the samples' ``(N,) uint8``
        azimuth levels around the seam; with :attr:`azimuthal` they update the seam gain field
        (:mod:`panoedge.stitch.seam_gain`).
        """
        lr, wt, ok = self.samples(a, b, vig_a, vig_b, area)
        n = len(lr)
        log_ratio = _weighted_medians(lr, wt) if n else np.zeros(3)
        self.frames += 1
        field_changed = False
        due = self._field_log is None or self.frames % FIELD_EVERY == 1 % FIELD_EVERY
        if self.azimuthal and azimuth is not None and n >= self.min_pixels and due:
            field_changed = self._update_field(lr, wt, np.asarray(azimuth)[ok], log_ratio)
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
        return field_changed

    def _update_field(self, lr, wt, azimuth, log_ratio) -> bool:
        lim = 2.0 * np.log(self.max_gain)
        med, weight = bin_log_ratios(lr, wt, azimuth)
        target = field_from_bins(med, weight, np.clip(log_ratio, -lim, lim))
        if self._field_log is None or self.smoothing <= 0:
            self._field_log = target
        else:  # updated every FIELD_EVERY frames: the same time constant as the gains'
            keep = self.smoothing ** FIELD_EVERY
            self._field_log = keep * self._field_log + (1.0 - keep) * target
        if self.seam_field is None or np.max(np.abs(self._field_log - self.seam_field)) > FIELD_TOLERANCE:
            self.seam_field = self._field_log.copy()
            return True
        return False
