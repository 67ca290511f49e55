"""Exposure along the seam: a smooth gain field that varies around the seam ring.

One gain per lens and channel (:mod:`panoedge.stitch.exposure`) cannot match the lenses
everywhere: light fall-off, flare and a sky in one lens but a shadow in the other make the
ratio of the two lenses change *along* the seam (on the Gear 360 frame the sky and the nadir
disagree in opposite directions). The field adds to the global gains a log gain per
*azimuth* around the seam ring and channel:

- the azimuth ``phi`` of an output ray is its angle about lens 0's optical axis (the seam is a
  ring around that axis), in :data:`SEAM_BINS` bins;
- each frame, per bin, the weighted median log ratio of the two lenses over the band samples
  that fall in it, minus the global ratio; bins with few samples get 0 (the global gain), the
  bins are smoothed circularly ``[1, 2, 1] / 4`` and clamped to ``+-log`` :data:`MAX_FIELD_GAIN`;
- the brighter lens is darkened by ``|d(phi)|`` (log; never brightened, so no highlight is
  lifted into clipping), ``d`` interpolated linearly between bin centres at
  :data:`AZIMUTH_LEVELS` levels, times a *fade* that is 1 inside the
  band and falls (cosine) to 0 at :data:`FIELD_FADE_DEG` beyond it, so far from the seam each
  lens keeps its global gain and nothing steps at the band's edge.

The stitcher folds the field into its gain images (rebuilt only when the field moves by more
than :data:`FIELD_TOLERANCE` in log), and the field is re-estimated every :data:`FIELD_EVERY`
frames, so a steady video pays about a quarter of a millisecond a frame for it.
"""

from __future__ import annotations

import numpy as np

SEAM_BINS = 64
"""Bins around the seam ring (5.6 degrees each): on the Gear 360 frame 32 bins leave the lenses
1.2 grey levels further apart in the band than 64 (the sky/ground changes within a few degrees
near the poles); ~130 exposure samples a bin on average, and sparse bins keep the global gain."""
AZIMUTH_LEVELS = 256
"""Quantisation of the azimuth in the tables (uint8): 1.4 degrees, well under a bin."""
FIELD_FADE_DEG = 20.0
"""Seam-coordinate distance beyond the band over which the field fades to nothing."""
MAX_FIELD_GAIN = 1.6
"""Largest field gain of one lens (the lens ratio at most its square) on top of the global gains:
the global gains' own limit (:class:`~panoedge.stitch.exposure.ExposureCompensator` ``max_gain``)."""
FIELD_TOLERANCE = 0.01
"""Log change of the field below which the applied field (and the gain images) are kept."""
FIELD_EVERY = 4
"""The field is estimated on the first frame and then every this many frames (its per-bin medians
cost about 1 ms a frame at 8192 samples; exposure along the seam changes slowly)."""
MIN_BIN_SHARE = 0.25
"""A bin with less than this share of the mean bin weight keeps the global gain."""
BIN_SMOOTHING = 0.25
"""Weight of the two neighbours (together) in the circular smoothing of the bins."""
LOG_RANGE = 1.5
MEDIAN_BINS = 256


def azimuth_levels(rays_rig: np.ndarray, lens0_rotation: np.ndarray) -> np.ndarray:
    """``(N,) uint8``: the azimuth level of rig rays ``(N, 3)`` about lens 0's axis (module doc)."""
    lens = rays_rig @ lens0_rotation  # l_0 = R_0^T r
    frac = (np.arctan2(lens[:, 1], lens[:, 0]) / (2.0 * np.pi)) % 1.0
    return np.minimum((frac * AZIMUTH_LEVELS).astype(np.int64), AZIMUTH_LEVELS - 1).astype(np.uint8)


def fade(seam_deg: np.ndarray, band_deg: float) -> np.ndarray:
    """``float32`` weight of the field: 1 inside the band, cosine down to 0 :data:`FIELD_FADE_DEG` beyond."""
    x = np.clip((np.abs(seam_deg) - band_deg / 2.0) / FIELD_FADE_DEG, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * x)).astype(np.float32)


def bin_log_ratios(lr: np.ndarray, w: np.ndarray, levels: np.ndarray, n_bins: int = SEAM_BINS):
    """Per bin, the weighted median of ``lr (N, C)`` (weights ``w (N, C)``) of the samples at azimuth
    ``levels (N,)``: ``(n_bins, C)`` medians and ``(n_bins,)`` total weights (0: empty bin)."""
    n, c = lr.shape
    b = (levels.astype(np.int64) * n_bins) // AZIMUTH_LEVELS
    step = 2.0 * LOG_RANGE / MEDIAN_BINS
    v = np.clip(((lr + LOG_RANGE) / step).astype(np.int64), 0, MEDIAN_BINS - 1)
    idx = (b[:, None] * c + np.arange(c)) * MEDIAN_BINS + v
    hist = np.bincount(idx.ravel(), weights=w.ravel(), minlength=n_bins * c * MEDIAN_BINS)
    cw = np.cumsum(hist.reshape(n_bins * c, MEDIAN_BINS), axis=1)
    k = np.argmax(cw >= 0.5 * cw[:, -1:], axis=1)
    med = (-LOG_RANGE + (k + 0.5) * step).reshape(n_bins, c)
    return med, cw[:, -1].reshape(n_bins, c)[:, 0]


def field_from_bins(med: np.ndarray, weight: np.ndarray, global_lr: np.ndarray) -> np.ndarray:
    """``(n_bins, C)`` log ratio field relative to ``global_lr (C,)``: empty bins 0, smoothed, clamped."""
    d = med - global_lr[None, :]
    d[weight < MIN_BIN_SHARE * max(float(weight.mean()), 1e-12)] = 0.0
    if BIN_SMOOTHING > 0:
        d = BIN_SMOOTHING * (np.roll(d, 1, axis=0) + np.roll(d, -1, axis=0)) / 2.0 + (1.0 - BIN_SMOOTHING) * d
    lim = 2.0 * np.log(MAX_FIELD_GAIN)
    return np.clip(d, -lim, lim)


def level_table(field: np.ndarray) -> np.ndarray:
    """``(AZIMUTH_LEVELS, 2, C) float32``: each lens's log gain at each azimuth level, the field
    ``d`` linear between bin centres (circular). Only the brighter lens is darkened (lens 0 gets
    ``min(0, d)``, lens 1 ``min(0, -d)``): the field never lifts a highlight into clipping."""
    n = field.shape[0]
    pos = (np.arange(AZIMUTH_LEVELS) + 0.5) / AZIMUTH_LEVELS * n - 0.5
    k0 = np.floor(pos).astype(np.int64)
    f = (pos - k0)[:, None]
    d = (1.0 - f) * field[k0 % n] + f * field[(k0 + 1) % n]
    return np.stack([np.minimum(d, 0.0), np.minimum(-d, 0.0)], axis=1).astype(np.float32)
