"""Seam blending across the overlap band: feather (linear, default) and multi-band.

``feather``: the fast path of :class:`~panoedge.stitch.stitcher.Stitcher` (weights linear in
the seam coordinate across ``band_deg``), on the CPU or the torch backend.

``multiband`` (Burt & Adelson): both lenses are remapped over the whole output, gain and
vignetting corrected, and each fills in where the other sees nothing; their Laplacian stacks
(Gaussian blurs of sigma 1, 2, 4, ...; no down-sampling, so the ERP wrap is exact) are mixed
with the seam mask blurred at the same scale. The number of levels follows the band width
(``2^levels`` ~ the band in pixels), so low frequencies blend over the band and fine detail
switches sharply at the seam. Slower (about ten full-frame blurs); CPU only.
"""

from __future__ import annotations

import cv2
import numpy as np

from panoedge.stitch.exposure import CLIPPED_LEVEL, KEEP_CLIPPED_MIN_GAIN
from panoedge.stitch.seam_gain import level_table


def _blur_wrap(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an ERP-shaped float image that wraps horizontally."""
    pad = int(np.ceil(3 * sigma))
    w = img.shape[1]
    if pad >= w:
        pad = w - 1
    padded = cv2.copyMakeBorder(img, 0, 0, pad, pad, cv2.BORDER_WRAP)
    out = cv2.GaussianBlur(padded, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return out[:, pad: pad + w]


def feather(stitcher, t, canvas: np.ndarray) -> np.ndarray:
    """Linear feather across the band (the stitcher's fast path)."""
    if stitcher._backend is not None:
        return stitcher._backend.stitch(stitcher, t, canvas)
    return stitcher._stitch_cpu(t, canvas)


def multiband(stitcher, t, canvas: np.ndarray) -> np.ndarray:
    """Multi-band blend of the two lenses over the whole output (see the module docstring)."""
    src = canvas[: t.canvas_hw[0]]
    gains = stitcher.gains_for(t, stitcher.fill_strip(t, canvas))
    field = stitcher.seam_field()
    if field is not None:  # the seam gain field, faded away from the seam (panoedge.stitch.seam_gain)
        levels, fd = t.azimuth_fade()
        table = level_table(field)[levels]  # (H, W, 2, 3) log gains
        field_gain = np.exp(fd[..., None, None] * np.float32(1.0 / 255.0) * table)
    imgs, valid = [], []
    for i in range(2):
        m1, m2, ok, corr = t.lens_maps(i)
        raw = cv2.remap(src, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        img = raw.astype(np.float32) * (corr[..., None] * gains[i].astype(np.float32))
        if field is not None:
            img *= field_gain[:, :, i]
        keep = (raw >= CLIPPED_LEVEL) & (corr[..., None] * gains[i] >= KEEP_CLIPPED_MIN_GAIN)
        imgs.append(np.where(keep, np.float32(255.0), img))  # clipped stays white under a mild gain
        valid.append(ok)
    a = np.where(valid[0][..., None], imgs[0], imgs[1])
    b = np.where(valid[1][..., None], imgs[1], imgs[0])
    mask = (t.own == 0).astype(np.float32)
    h, w = t.out_hw
    band_px = t.band_deg / 360.0 * w
    levels = int(np.clip(np.floor(np.log2(max(band_px, 2.0))), 1, 7))
    out = np.zeros_like(a)
    ga, gb = a, b
    for k in range(levels):
        sigma = 2.0 ** k
        na, nb = _blur_wrap(ga, sigma), _blur_wrap(gb, sigma)
        mk = _blur_wrap(mask, sigma / 2.0)[..., None]
        out += mk * (ga - na) + (1.0 - mk) * (gb - nb)
        ga, gb = na, nb
    mk = _blur_wrap(mask, 2.0 ** (levels - 1))[..., None]
    out += mk * ga + (1.0 - mk) * gb
    out[t.own < 0] = 0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


BLENDS = {"feather": feather, "multiband": multiband}
