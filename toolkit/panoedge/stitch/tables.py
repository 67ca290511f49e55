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
from panoedge.geometry import check_erp_size
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
    coordinate; ``est_idx (K,)`` the band pixels (``j``, a uniform stride over the band) read
    to estimate exposure, with ``est_w (2, K)`` float32 weights (vignetting correction x solid
    angle).
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
    est_idx: np.ndarray
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
        """``(K,) float32`` solid-angle weight (cos latitude) of the exposure samples."""
        if "est_area" not in self._lens_maps:
            rows = self.band_idx[self.est_idx] // self.out_hw[1]
            self._lens_maps["est_area"] = np.cos((0.5 - (rows + 0.5) / self.out_hw[0]) * np.pi).astype(np.float32)
        return self._lens_maps["est_area"]

    def est_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(row, col)`` in the strip of the exposure samples' lens-0 values (lens 1 is at ``col + 1``)."""
        pairs = self.canvas_hw[1] // 2
        return self.est_idx // pairs, 2 * (self.est_idx % pairs)

    def azimuth_fade(self) -> tuple[np.ndarray, np.ndarray]:
        """``(levels, fade)`` ``(H, W) uint8``: every output pixel's azimuth level about lens 0's axis
        and the seam gain field's fade x 255 (:mod:`panoedge.stitch.seam_gain`); built on first use,
        in float32 row blocks (the lens-0 ray is separable in latitude and longitude)."""
        if "azimuth" not in self._lens_maps:
            from panoedge.stitch.seam_gain import AZIMUTH_LEVELS, fade

            h, w = self.out_hw
            m = (self.r_out @ self.rig.lenses[0].rotation).astype(np.float32)  # l_0 = d @ R_out R_0
            lat = ((0.5 - (np.arange(h) + 0.5) / h) * np.pi).astype(np.float32)
            lon = (((np.arange(w) + 0.5) / w - 0.5) * 2.0 * np.pi).astype(np.float32)
            cl, sl = np.cos(lat)[:, None], -np.sin(lat)[:, None]
            sx, cz = np.sin(lon)[None, :], np.cos(lon)[None, :]
            lev = np.empty((h, w), np.uint8)
            fd = np.empty((h, w), np.uint8)
            step = max(1, BLOCK_PIXELS // w)
            for r0 in range(0, h, step):
                r1 = min(h, r0 + step)
                lx = cl[r0:r1] * (sx * m[0, 0] + cz * m[2, 0]) + sl[r0:r1] * m[1, 0]
                ly = cl[r0:r1] * (sx * m[0, 1] + cz * m[2, 1]) + sl[r0:r1] * m[1, 1]
                ang = cv2.phase(np.ascontiguousarray(lx), np.ascontiguousarray(ly))  # [0, 2 pi)
                lev[r0:r1] = np.minimum(ang * np.float32(AZIMUTH_LEVELS / (2.0 * np.pi)), AZIMUTH_LEVELS - 1)
                fd[r0:r1] = np.round(fade(self.seam_deg[r0:r1], self.band_deg) * 255.0)
            self._lens_maps["azimuth"] = (lev, fd)
        return self._lens_maps["azimuth"]

    def band_azimuth(self) -> np.ndarray:
        """``(N,) uint8`` azimuth level of every band pixel (see :meth:`azimuth_fade`)."""
        if "band_azimuth" not in self._lens_maps:
            self._lens_maps["band_azimuth"] = self.azimuth_fade()[0].ravel()[self.band_idx]
        return self._lens_maps["band_azimuth"]

    def est_azimuth(self) -> np.ndarray:
        """``(K,) uint8`` azimuth level of the exposure samples."""
        if "est_azimuth" not in self._lens_maps:
            self._lens_maps["est_azimuth"] = self.band_azimuth()[self.est_idx]
        return self._lens_maps["est_azimuth"]

    def lens_maps(self, i: int):
        """``(map1, map2, valid, vig_corr)`` sampling lens ``i`` at every output pixel (multi-band)."""
        if i not in self._lens_maps:
            s = lens_sampling(self.rig, i, self.out_hw, self.r_out)
            mx = np.where(s.valid, s.u, INVALID).astype(np.float32)
            my = np.where(s.valid, s.v, INVALID).astype(np.float32)
            self._lens_maps[i] = (*cv2.convertMaps(mx, my, cv2.CV_16SC2), s.valid, s.vig_corr.astype(np.float32))
        return self._lens_maps[i]


def _block_rays(h: int, w: int, r0: int, r1: int) -> np.ndarray:
    """Unit rays ``(N, 3)`` of ERP rows ``r0 .. r1 - 1`` (CONVENTIONS.md), not cached."""
    lat = (0.5 - (np.arange(r0, r1, dtype=np.float64) + 0.5) / h) * np.pi
    lon = ((np.arange(w, dtype=np.float64) + 0.5) / w - 0.5) * 2.0 * np.pi
    cl = np.cos(lat)[:, None]
    x = cl * np.sin(lon)[None, :]
    y = np.broadcast_to(-np.sin(lat)[:, None], x.shape)
    z = cl * np.cos(lon)[None, :]
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def lens_sampling(rig: Rig, i: int, out_hw, r_out: np.ndarray, rows: tuple[int, int] | None = None) -> LensSampling:
    """Project the output rays of ``rows`` (default all) into lens ``i`` of ``rig`` (module convention)."""
    h, w = out_hw
    r0, r1 = (0, h) if rows is None else rows
    lens = rig.lenses[i]
    cam = rig.canvas_camera(i)
    rays = _block_rays(h, w, r0, r1) @ (r_out @ lens.rotation)  # l = R_i^T R_out^T d
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
    shape = (r1 - r0, w)
    return LensSampling(u.reshape(shape), v.reshape(shape), valid.reshape(shape), margin.reshape(shape),
                        corr.reshape(shape))


def _fixed(mx, my) -> tuple[np.ndarray, np.ndarray]:
    return cv2.convertMaps(np.asarray(mx, np.float32), np.asarray(my, np.float32), cv2.CV_16SC2)


RHO_MAX = 1.05
"""Normalised radius (``r / radius_px``) up to which a lens's vignetting correction is bounded
before the build: the stitch samples within the image circle (rho <= 1), plus slack."""


def _fixed_one(rig: Rig) -> int:
    """The fixed-point ``one`` of the gain images: 128 (finer) unless the vignetting correction,
    times the 1.5 exposure headroom, needs 64; an error beyond what uint8 gains carry."""
    rho = np.linspace(0.0, RHO_MAX, 1051)
    peak = 1.0
    for lens in rig.lenses:
        if any(k != 0 for k in lens.vignetting):
            peak = max(peak, float(np.max(1.0 / np.maximum(lens.vignetting_gain(rho), 0.05))))
    if peak * 1.5 > 255 / 64:
        raise UsageError(f"vignetting correction up to {peak:.2f}x is beyond the 2.6x the stitcher applies")
    return 128 if peak * 1.5 <= 255 / 128 else 64


BLOCK_PIXELS = 1 << 18
"""Output pixels per block of the table build (about 40 MB of float64 temporaries): tables are
built in row blocks so the peak memory follows the block, not the panorama (issue 18: a cold
1920 x 3840 stitch within 400 MB; `python examples/stitch_memory.py` measures it)."""


def build_tables(rig: Rig, out_hw, band_deg: float = 5.0, r_out=None, est_pixels: int = 8192) -> StitchTables:
    """Build the tables for ``rig`` -> ERP of ``out_hw`` (``W == 2 H``).

    ``band_deg`` is the width of the feather band across the seam (degrees, > 0); ``r_out`` the
    rig-to-output rotation (default: the rig's fixed output rotation); about ``est_pixels``
    band pixels, a uniform stride over the band, are read to estimate exposure gains.
    Built in blocks of output rows (:data:`BLOCK_PIXELS`); the result does not depend on them.
    """
    h, w = check_erp_size(*out_hw, what="output size")
    if not 0.0 < band_deg <= 60.0:
        raise UsageError(f"band width {band_deg} degrees: expected 0 < band <= 60")
    r_out = rig.output_rotation if r_out is None else np.asarray(r_out, dtype=np.float64)
    hc, wc = rig.canvas_hw
    if wc >= SHRT_MAX or hc >= SHRT_MAX:
        raise UsageError(f"canvas {wc}x{hc} is beyond cv2.remap's {SHRT_MAX} pixel limit")
    pairs = wc // 2
    one = _fixed_one(rig)
    main1 = np.empty((h, w, 2), dtype=np.int16)
    main2 = np.empty((h, w), dtype=np.uint16)
    own = np.empty((h, w), dtype=np.int8)
    seam_deg = np.empty((h, w), dtype=np.float32)
    gain_basis = np.zeros((h, w, 3), dtype=np.uint8)  # each lens's correction where it is used alone
    band_parts: list[tuple] = []
    n = 0
    step = max(1, BLOCK_PIXELS // w)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        s0, s1 = (lens_sampling(rig, i, (h, w), r_out, (r0, r1)) for i in (0, 1))
        seam = (s0.margin_deg - s1.margin_deg) / 2.0
        band = s0.valid & s1.valid & (np.abs(seam) < band_deg / 2.0)
        o = np.where(s0.valid & ((seam >= 0) | ~s1.valid), 0, np.where(s1.valid, 1, -1)).astype(np.int8)
        idx = np.flatnonzero(band)
        j = n + np.arange(idx.size)
        w0 = np.clip(0.5 + seam.ravel()[idx] / band_deg, 0.0, 1.0)
        # Main map: own lens outside the band, between the strip pair inside it, nothing elsewhere.
        mx = np.where(o == 0, s0.u, np.where(o == 1, s1.u, INVALID)).ravel()
        my = np.where(o == 0, s0.v, np.where(o == 1, s1.v, INVALID)).ravel()
        mx[idx] = 2 * (j % pairs) + (1.0 - w0)
        my[idx] = hc + j // pairs
        m1, m2 = _fixed(mx.reshape(r1 - r0, w), my.reshape(r1 - r0, w))
        main1[r0:r1], main2[r0:r1] = m1, m2
        own[r0:r1], seam_deg[r0:r1] = o, seam
        gain_basis[r0:r1, :, 0] = np.where((o == 0) & ~band, np.round(s0.vig_corr * one), 0)
        gain_basis[r0:r1, :, 1] = np.where((o == 1) & ~band, np.round(s1.vig_corr * one), 0)
        band_parts.append((idx + r0 * w, *(a.ravel()[idx].astype(np.float32) for a in
                                            (s0.u, s0.v, s1.u, s1.v, s0.vig_corr, s1.vig_corr))))
        n += idx.size
        del s0, s1, seam, band, mx, my
    band_idx, u0, v0, u1, v1, c0, c1 = (np.concatenate(p) for p in zip(*band_parts))
    del band_parts
    band_idx = band_idx.astype(np.int64)
    rows = max(1, -(-n // pairs))
    if hc + rows >= SHRT_MAX:
        raise UsageError(f"the seam band needs {rows} strip rows; with the canvas that is beyond {SHRT_MAX}")
    j = np.arange(n)
    jr, jc = j // pairs, 2 * (j % pairs)

    # Strip: lens 0 at even columns, lens 1 at odd columns; padding samples nothing.
    smx = np.full((rows, wc), INVALID, dtype=np.float32)
    smy = np.full((rows, wc), INVALID, dtype=np.float32)
    basis = np.zeros((rows, wc, 3), dtype=np.float32)
    for k, (u, v, c) in enumerate(((u0, v0, c0), (u1, v1, c1))):
        smx[jr, jc + k], smy[jr, jc + k] = u, v
        basis[jr, jc + k, k] = c
    gain_basis.reshape(-1, 3)[band_idx, 2] = one

    # Exposure: a uniform stride over the band; weights = vignetting correction x solid angle (cos lat).
    est_idx = np.arange(0, n, max(1, n // max(est_pixels, 1)))
    area = np.cos((0.5 - (band_idx[est_idx] // w + 0.5) / h) * np.pi)
    est_w = np.stack([c0[est_idx] * area, c1[est_idx] * area]).astype(np.float32)
    has_vig = any(any(k != 0 for k in lens.vignetting) for lens in rig.lenses)

    return StitchTables(
        rig=rig, out_hw=(h, w), band_deg=float(band_deg), r_out=r_out, canvas_hw=(hc, wc), strip_rows=rows,
        main_maps=(main1, main2), band_idx=band_idx, strip_maps=_fixed(smx, smy),
        strip_basis=np.round(basis * one).astype(np.uint8), gain_basis=gain_basis, one=one, own=own,
        seam_deg=seam_deg, est_idx=est_idx, est_w=est_w, has_vignetting=has_vig,
    )
