"""How well the two lenses agree at the seam, without any reference panorama.

Two figures per frame, for a rig:

- ``mad``: the area-weighted (solid angle) mean absolute difference, in grey levels (0..255,
  averaged over RGB), between the two lenses' samples of every overlap-band pixel, after the
  stitcher's vignetting correction and exposure/colour compensation (global gains and the seam
  gain field, :mod:`panoedge.stitch.seam_gain`). Geometry errors, parallax
  and residual exposure differences all raise it.
- ``feature_deg``: the median angle between the two rays of SIFT matches across the overlap
  (:func:`panoedge.stitch.features.match_overlap`, gate ``gate_deg``), with their count.

Both are measured on an ERP of ``out_h x 2 out_h`` (default 512 x 1024) and a band of
``band_deg`` (default 5 degrees), so figures of different rigs for the same frame compare.
"""

from __future__ import annotations

import numpy as np

from panoedge.stitch.features import match_overlap, residual_stats
from panoedge.stitch.rig import Rig
from panoedge.stitch.stitcher import Stitcher

SCHEMA = "panoedge.seam/1"


def band_samples(rig: Rig, frame, out_h: int = 512, band_deg: float = 5.0, seam_field: bool = True):
    """``(a, b, w)``: both lenses at every band pixel, corrected, ``(N, 3) float32``, and area weights ``(N,)``.
    ``seam_field``: with the seam gain field (:mod:`panoedge.stitch.seam_gain`), as the stitcher does by default."""
    st = Stitcher(rig, (out_h, 2 * out_h), band_deg=band_deg, exposure=True, device="cpu", seam_field=seam_field)
    return st.band_samples(frame)


def seam_mad(rig: Rig, frame, out_h: int = 512, band_deg: float = 5.0, seam_field: bool = True) -> float:
    """Area-weighted mean absolute difference (grey levels) of the lenses across the seam band."""
    a, b, w = band_samples(rig, frame, out_h=out_h, band_deg=band_deg, seam_field=seam_field)
    if w.sum() <= 0:
        return float("nan")
    return float((np.abs(a - b).mean(axis=1) * w).sum() / w.sum())


def seam_figures(rig: Rig, frame, out_h: int = 512, band_deg: float = 5.0, gate_deg: float = 6.0) -> dict:
    """Both seam figures of one frame under ``rig`` (see the module docstring)."""
    stats = residual_stats(rig, match_overlap(rig, frame, gate_deg=gate_deg))
    return {"mad": seam_mad(rig, frame, out_h=out_h, band_deg=band_deg), "feature_deg": stats["median_deg"],
            "feature_mean_deg": stats["mean_deg"], "n_matches": stats["n"]}
