"""Stitch lookup tables: built once per (rig, output size, band, orientation) and reused.

Layout of the work: the stitcher copies the frame into a *canvas* (the frame, or the two lens
files side by side) that has ``R`` spare *strip* rows below it. Per frame:

1. Every overlap-band pixel (output pixels within ``band_deg / 2`` of the seam, where both
   lenses see) is sampled from both lenses by ONE small fixed-point ``cv2.remap`` into the strip
   rows, the two samples side by side (lens 0 at an even column, lens 1 just right of it).
   One ``cv2.multiply`` there applies each sample's vignetting correction and lens gain.
2. ONE fixed-point ``cv2.remap`` of the canvas makes the whole output: pixels seen by one lens
   sample that lens; a band pixel samples its strip pair at ``x = 2 p + (1 - w_0)``, so the
   bilinear interpolation *is* the feather blend ``w_0 a + (1 - w_0) b`` (weights in 1/32
   steps, ``cv2.remap``'s fixed-point precision); pixels no lens sees are black.
3. Vignetting correction and lens gains outside the band are one ``cv2.multiply`` of the
   output by a gain image rebuilt by one ``cv2.transform`` of :attr:`StitchTables.gain_basis`
   only when the gains change.

Convention: output ERP rays ``d`` (CONVENTIONS.md), rig rays ``r = R_out^T d`` with
``R_out`` the rig-to-output rotation, lens rays ``l_i = R_i^T r``. The seam coordinate
``s = (m_0 - m_1) / 2`` (degrees) compares how far each lens sees inside its own field edge
(``m_i = fov_i / 2 - theta_i``); lens 0 owns ``s >= 0`` and its feather weight is
``w_0 = clip(1/2 + s / band_deg, 0, 1)``. Parallax is not modelled (no depth): lens
translations matter only to the seam reports of :mod:`panoedge.stitch.seam`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from panoedge.errors import UsageError
from panoedge.geometry import check_erp_size, erp_rays
from panoedge.stitch.rig import Rig

SHRT_MAX = 32767
INVALID = -10.0
"""Source coordinate of output pixels that sample nothing (outside the canvas: black)."""


@dataclass
class LensSampling:
    """Where every output pixel falls in one lens. Shapes ``(H, W)``; coordinates in canvas pixels."""

    u: np.ndarray
    v: np.ndarray
    valid: np.ndarray
    margin_deg: np.ndarray
    vig_corr: np.ndarray


@dataclass
class StitchTables:
    """Everything a frame's stitch reads; see the module docstring for how it is used.

    Shapes (output ``H x W``, canvas ``Hc x Wc``, ``R`` strip rows, ``N`` band pixels):
    ``main_maps`` fixed-point ``((H, W, 2) int16, (H, W) uint16)`` into the padded canvas
    ``(Hc + R, Wc)``; ``band_idx (N,)`` flat output indices of the band; ``strip_maps``
    fixed-point ``(R, Wc)`` maps filling the strip rows (band pixel ``j`` at row ``j // P``,
    columns ``2 (j % P)`` (lens 0) and ``+1`` (lens 1), ``P = Wc // 2``); ``strip_basis
    (R, Wc, 3) uint8`` (``one *`` vignetting correction in channel 0 at lens-0 samples, in
    channel 1 at lens-1 samples); ``gain_basis (H, W, 3) uint8`` the same for the output
    outside the band, channel 2 ``= one`` on band pixels (already corrected); ``own (H, W)
    int8`` the lens per output pixel (-1: none); ``seam_deg (H, W) float32`` the seam
    coordinate; ``est_rows`` the strip rows sampled for exposure with ``est_w (2, r, P)``
    float32 weights (vignetting correction x solid angle, 0 on padding).
    """

    rig: Rig
    out_hw: tuple[int, int]
    band_deg: float
    r_out: np.ndarray
    canvas_hw: tuple[int, int]
    strip_rows: int
    main_maps: tuple[np.ndarray, np.ndarray]
    band_idx: np.ndarray
    strip_maps: tuple[np.ndarray, np.ndarray]
    strip_basis: np.ndarray
    gain_basis: np.ndarray
    one: int
    own: np.ndarray
    seam_deg: np.ndarray
    est_rows: np.ndarray
    est_w: np.ndarray
    has_vignetting: bool
    _lens_maps: dict = field(default_factory=dict, repr=False)

    @property
    def n_band(self) -> int:
        return int(self.band_idx.size)

    @property
    def padded_hw(self) -> tuple[int, int]:
        """Canvas size including the strip rows: ``(Hc + R, Wc)``."""
        return self.canvas_hw[0] + self.strip_rows, self.canvas_hw[1]

    def band_mask(self) -> np.ndarray:
        """``(H, W) bool``: the output pixels blended from both lenses."""
        m = np.zeros(self.out_hw[0] * self.out_hw[1], dtype=bool)
        m[self.band_idx] = True
        return m.reshape(self.out_hw)

    def est_area(self) -> np.ndarray:
        """``(r, P) float32`` solid-angle weight (cos latitude) of the exposure samples, 0 on padding."""
        if "est_area" not in self._lens_maps:
            rows, pairs = self.strip_rows, self.canvas_hw[1] // 2
            area = np.zeros(rows * pairs, dtype=np.float32)
            area[: self.n_band] = np.cos((0.5 - (self.band_idx // self.out_hw[1] + 0.5) / self.out_hw[0]) * np.pi)
            self._lens_maps["est_area"] = area.reshape(rows, pairs)[self.est_rows]
        return self._lens_maps["est_area"]

    def lens_maps(self, i: int):
        """``(map1, map2, valid, vig_corr)`` sampling lens ``i`` at every output pixel (multi-band)."""
        if i not in self._lens_maps:
            s = lens_sampling(self.rig, i, self.out_hw, self.r_out)
            mx = np.where(s.valid, s.u, INVALID).astype(np.float32)
            my = np.where(s.valid, s.v, INVALID).astype(np.float32)
            self._lens_maps[i] = (*cv2.convertMaps(mx, my, cv2.CV_16SC2), s.valid, s.vig_corr.astype(np.float32))
        return self._lens_maps[i]


def lens_sampling(rig: Rig, i: int, out_hw, r_out: np.ndarray) -> LensSampling:
    """Project every output ray into lens ``i`` of ``rig`` (see the module convention)."""
    h, w = out_hw
    lens = rig.lenses[i]
    cam = rig.canvas_camera(i)
    rays = erp_rays(h, w).reshape(-1, 3) @ (r_out @ lens.rotation)  # l = R_i^T R_out^T d
    u, v, _ = cam.project(rays)
    theta = np.arctan2(np.hypot(rays[:, 0], rays[:, 1]), rays[:, 2])
    margin = lens.fov_deg / 2.0 - np.rad2deg(theta)
    x0, y0, x1, y1 = rig.lens_region(i)
    # Half a pixel of slack at the region edge, clamped: bilinear never reads the other lens.
    valid = (margin >= 0) & (u > x0 - 0.5) & (u < x1 - 0.5) & (v > y0 - 0.5) & (v < y1 - 0.5)
    u = np.clip(u, x0, x1 - 1.0)
    v = np.clip(v, y0, y1 - 1.0)
    rho = np.hypot(u - cam.cx, v - cam.cy) / lens.radius_px
    gain = lens.vignetting_gain(rho)
    if np.any(valid & (gain <= 0.05)):
        raise UsageError(f"lens {lens.name}: vignetting {lens.vignetting} darkens the image circle below 5%; "
                         "check the coefficients")
    corr = 1.0 / np.maximum(gain, 0.05)
    shape = (h, w)
    return LensSampling(u.reshape(shape), v.reshape(shape), valid.reshape(shape), margin.reshape(shape),
                        corr.reshape(shape))


def _fixed(mx, my) -> tuple[np.ndarray, np.ndarray]:
    return cv2.convertMaps(np.asarray(mx, np.float32), np.asarray(my, np.float32), cv2.CV_16SC2)


def build_tables(rig: Rig, out_hw, band_deg: float = 5.0, r_out=None, est_pixels: int = 4096) -> StitchTables:
    """Build the tables for ``rig`` -> ERP of ``out_hw`` (``W == 2 H``).

    ``band_deg`` is the width of the feather band across the seam (degrees, > 0); ``r_out`` the
    rig-to-output rotation (default: the rig's fixed output rotation); about ``est_pixels``
    band pixels are read to estimate exposure gains.
    """
    h, w = check_erp_size(*out_hw, what="output size")
    if not 0.0 < band_deg <= 60.0:
        raise UsageError(f"band width {band_deg} degrees: expected 0 < band <= 60")
    r_out = rig.output_rotation if r_out is None else np.asarray(r_out, dtype=np.float64)
    hc, wc = rig.canvas_hw
    if wc >= SHRT_MAX or hc >= SHRT_MAX:
        raise UsageError(f"canvas {wc}x{hc} is beyond cv2.remap's {SHRT_MAX} pixel limit")
    s0, s1 = lens_sampling(rig, 0, (h, w), r_out), lens_sampling(rig, 1, (h, w), r_out)
    seam = (s0.margin_deg - s1.margin_deg) / 2.0
    band = s0.valid & s1.valid & (np.abs(seam) < band_deg / 2.0)
    own = np.where(s0.valid & ((seam >= 0) | ~s1.valid), 0, np.where(s1.valid, 1, -1)).astype(np.int8)

    band_idx = np.flatnonzero(band)
    n, pairs = band_idx.size, wc // 2
    rows = max(1, -(-n // pairs))
    if hc + rows >= SHRT_MAX:
        raise UsageError(f"the seam band needs {rows} strip rows; with the canvas that is beyond {SHRT_MAX}")
    j = np.arange(n)
    w0 = np.clip(0.5 + seam.ravel()[band_idx] / band_deg, 0.0, 1.0)
    # Main map: own lens outside the band, between the strip pair inside it, nothing elsewhere.
    mx = np.where(own == 0, s0.u, np.where(own == 1, s1.u, INVALID)).ravel()
    my = np.where(own == 0, s0.v, np.where(own == 1, s1.v, INVALID)).ravel()
    mx[band_idx] = 2 * (j % pairs) + (1.0 - w0)
    my[band_idx] = hc + j // pairs
    main = _fixed(mx.reshape(h, w), my.reshape(h, w))

    # Strip: lens 0 at even columns, lens 1 at odd columns; padding samples nothing.
    smx = np.full((rows, wc), INVALID, dtype=np.float64)
    smy = np.full((rows, wc), INVALID, dtype=np.float64)
    basis = np.zeros((rows, wc, 3), dtype=np.float64)
    for k, s in enumerate((s0, s1)):
        cols = 2 * (j % pairs) + k
        smx[j // pairs, cols] = s.u.ravel()[band_idx]
        smy[j // pairs, cols] = s.v.ravel()[band_idx]
        basis[j // pairs, cols, k] = s.vig_corr.ravel()[band_idx]
    peak = max(float(basis.max(initial=1.0)), float(s0.vig_corr[s0.valid].max(initial=1.0)),
               float(s1.vig_corr[s1.valid].max(initial=1.0)))
    one = 128 if peak * 1.5 <= 255 / 128 else 64
    if peak * 1.5 > 255 / 64:
        raise UsageError(f"vignetting correction up to {peak:.2f}x is beyond the 2.6x the stitcher applies")
    gain_basis = np.zeros((h, w, 3), dtype=np.uint8)
    gain_basis[..., 0] = np.where((own == 0) & ~band, np.round(s0.vig_corr * one), 0)
    gain_basis[..., 1] = np.where((own == 1) & ~band, np.round(s1.vig_corr * one), 0)
    gain_basis[..., 2] = np.where(band, one, 0)

    # Exposure: every k-th strip row; weights = vignetting correction x solid angle (cos lat).
    est_rows = np.arange(0, rows, max(1, rows * pairs // max(est_pixels, 1)))
    lat = (0.5 - (band_idx // w + 0.5) / h) * np.pi
    area = np.zeros(rows * pairs)
    area[:n] = np.cos(lat)
    area = area.reshape(rows, pairs)[est_rows]
    est_w = np.stack([basis[est_rows, 0::2, 0][:, :pairs] * area,
                      basis[est_rows, 1::2, 1][:, :pairs] * area]).astype(np.float32)
    has_vig = any(any(k != 0 for k in lens.vignetting) for lens in rig.lenses)

    return StitchTables(
        rig=rig, out_hw=(h, w), band_deg=float(band_deg), r_out=r_out, canvas_hw=(hc, wc), strip_rows=rows,
        main_maps=main, band_idx=band_idx, strip_maps=_fixed(smx, smy),
        strip_basis=np.round(basis * one).astype(np.uint8), gain_basis=gain_basis, one=one, own=own,
        seam_deg=seam.astype(np.float32), est_rows=est_rows, est_w=est_w, has_vignetting=has_vig,
    )
