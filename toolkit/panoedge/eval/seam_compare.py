"""Seam colour against another stitcher: the same band, the same figures, for every tool.

Each tool gives two *layers* (each lens remapped over the ERP, after that tool's own exposure,
colour and vignetting correction; NaN-free, with a validity mask) and its blended output, all
in the same ERP frame and size. The *common band* is the set of output pixels every tool's two
layers see, within ``band_deg / 2`` of the reference rig's seam (the seam coordinate of
:mod:`panoedge.stitch.tables`): the same pixels for everyone. Figures, area-weighted
(solid angle), in grey levels (0..255, mean over RGB):

- ``lens_mad``: mean absolute difference of the two layers over the band (colour, geometry and
  parallax together);
- ``colour_mad``: the same after a Gaussian blur of ``COLOUR_SIGMA_DEG`` of both layers, so
  fine misregistration counts little and what remains is the colour/exposure disagreement;
- ``lens_mad_pct``/``colour_mad_pct``: both relative to the band's mean level (mean of the two
  layers), so a tool cannot score by darkening the band;
- ``visible_step``: in the blended output, the gradient no layer has (grey levels per pixel):
  per scale ``s`` of ``STEP_SCALES_PX`` (at least 1 px), the band mean of
  ``max(0, |grad O_s| - max(|grad A_s|, |grad B_s|))`` (Gaussian blurs of sigma ``s``), averaged
  over the scales. A hard step of the lenses' disagreement shows at every scale; a blend that
  spreads it where the scene has texture of its own hides it at the fine scales;
- ``band_sharpness``: the output's mean gradient (1 px scale) over the mean of the two layers':
  below 1 where averaging misregistered lenses ghosts or blurs the band (a wide feather does).

Hugin's layers come from ``nona`` (``-m TIFF_m``) and its output from ``enblend``, run on the
project as published except for the output's yaw (both lenses turned by the same angle) and a
full 360 degree field, so its ERP lines up with panoedge's: :func:`hugin_render`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from panoedge.errors import UsageError
from panoedge.geometry import erp_area_weights

COLOUR_SIGMA_DEG = 0.5
"""Blur (degrees) of ``colour_mad``: a few times the lenses' registration error (0.3-1 degree)."""
STEP_SCALES_PX = (1.0, 2.0, 4.0, 8.0)
"""Scales (pixels of a 1280-row ERP, scaled with the size) of ``visible_step``."""
HUGIN_TOOLS = ("nona", "enblend")


@dataclass
class Layers:
    """One tool's two corrected lens layers ``(H, W, 3) float32``, their masks and its output."""

    name: str
    a: np.ndarray
    b: np.ndarray
    valid_a: np.ndarray
    valid_b: np.ndarray
    out: np.ndarray


def panoedge_layers(rig, frame, out_hw, blend: str = "feather", seam_field: bool = True, name: str = "",
                    band_deg: float = 5.0) -> tuple:
    """``(Layers, tables)`` of panoedge for ``frame``: each lens as the blend sees it (vignetting,
    exposure and seam gain field applied) and the stitched output (blend band ``band_deg``)."""
    from panoedge.stitch import Stitcher
    from panoedge.stitch.seam_gain import level_table

    st = Stitcher(rig, out_hw, blend=blend, band_deg=band_deg, device="cpu", seam_field=seam_field)
    out = st.stitch(frame)
    t = st.tables()
    gains, field = st.exposure.applied, st.seam_field()
    src = st._canvas[: t.canvas_hw[0]]
    fg = None
    if field is not None:
        levels, fd = t.azimuth_fade()
        fg = np.exp(fd[..., None, None] * np.float32(1.0 / 255.0) * level_table(field)[levels])
    lay, ok = [], []
    for i in range(2):
        m1, m2, valid, corr = t.lens_maps(i)
        img = cv2.remap(src, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).astype(np.float32)
        img *= corr[..., None] * gains[i].astype(np.float32)
        if fg is not None:
            img *= fg[:, :, i]
        lay.append(np.clip(img, 0, 255))
        ok.append(valid)
    return Layers(name=name or f"panoedge {rig.name} {blend}", a=lay[0], b=lay[1], valid_a=ok[0], valid_b=ok[1],
                  out=out.astype(np.float32)), t


def missing_hugin_tools() -> list[str]:
    """The Hugin tools (:data:`HUGIN_TOOLS`) not on ``PATH``."""
    return [t for t in HUGIN_TOOLS if shutil.which(t) is None]


def aligned_pto(text: str, yaw_shift_deg: float, out_w: int, out_h: int) -> str:
    """``text`` of a ``.pto`` with every image's yaw shifted by ``yaw_shift_deg`` and the panorama
    line set to a full ``out_w x out_h`` equirectangular (``f2 v360``)."""
    def image_line(line: str) -> str:
        return re.sub(r"(?<= )y(-?[\d.]+(?:[eE][-+]?\d+)?)", lambda m: f"y{float(m.group(1)) + yaw_shift_deg!r}", line)

    lines = []
    for line in text.splitlines():
        if line.startswith("p "):
            line = re.sub(r" w\d+", f" w{out_w}", line)
            line = re.sub(r" h\d+", f" h{out_h}", line)
            line = re.sub(r" v[\d.]+", " v360", line)
            line = re.sub(r"^p f\d+", "p f2", line)
        elif line.startswith("i "):
            line = image_line(line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _read_rgba(path: Path) -> tuple[np.ndarray, np.ndarray]:
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None or im.ndim != 3 or im.shape[2] != 4:
        raise UsageError(f"{path}: expected an RGBA TIFF from nona/enblend")
    if im.dtype != np.uint8:
        im = (im.astype(np.float32) / np.iinfo(im.dtype).max * 255.0)
    return cv2.cvtColor(im[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32), im[..., 3] > 0


def hugin_render(pto: Path, frame_path: Path, out_hw, yaw_shift_deg: float = -180.0) -> Layers:
    """Hugin's layers (``nona -m TIFF_m``, one per ``i`` line, every line reading ``frame_path``
    as the published project does) and ``enblend``'s blend of them, aligned (:func:`aligned_pto`)."""
    missing = missing_hugin_tools()
    if missing:
        raise UsageError(f"{', '.join(missing)} not found: install Hugin's tools "
                         "(Debian: apt-get install hugin-tools enblend)")
    text = Path(pto).read_text()
    n_images = sum(1 for line in text.splitlines() if line.startswith("i "))
    if n_images != 2:
        raise UsageError(f"{pto}: expected 2 image lines, found {n_images}")
    with tempfile.TemporaryDirectory(prefix="panoedge_hugin_") as tmp:
        d = Path(tmp)
        (d / "aligned.pto").write_text(aligned_pto(text, yaw_shift_deg, out_hw[1], out_hw[0]))
        subprocess.run(["nona", "-o", str(d / "layer"), "-m", "TIFF_m", str(d / "aligned.pto"),
                        str(frame_path), str(frame_path)], check=True, capture_output=True)
        subprocess.run(["enblend", "-o", str(d / "blend.tif"), str(d / "layer0000.tif"), str(d / "layer0001.tif")],
                       check=True, capture_output=True)
        (a, va), (b, vb), (o, _) = (_read_rgba(d / f) for f in ("layer0000.tif", "layer0001.tif", "blend.tif"))
    return Layers(name="Hugin nona+enblend", a=a, b=b, valid_a=va, valid_b=vb, out=o)


def common_band(layers: list[Layers], seam_deg: np.ndarray, band_deg: float) -> np.ndarray:
    """``(H, W) bool``: pixels every tool's two layers see, within ``band_deg / 2`` of the seam."""
    band = np.abs(seam_deg) < band_deg / 2.0
    for lay in layers:
        band &= lay.valid_a & lay.valid_b
    return band


def _grad(img: np.ndarray, sigma: float) -> np.ndarray:
    grey = img.mean(axis=-1).astype(np.float32)
    pad = int(np.ceil(3 * sigma)) + 1
    p = cv2.copyMakeBorder(grey, 0, 0, pad, pad, cv2.BORDER_WRAP)
    p = cv2.GaussianBlur(p, (0, 0), sigma)
    g = np.hypot(cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
    return g[:, pad:-pad]


def seam_figures(lay: Layers, band: np.ndarray) -> dict:
    """The figures of one tool over ``band`` (module doc)."""
    h = band.shape[0]
    w = erp_area_weights(*band.shape) * band
    tot = max(float(w.sum()), 1e-12)

    def wmean(x):
        return float((x * w).sum() / tot)

    sig = COLOUR_SIGMA_DEG / 180.0 * h
    blur = [cv2.GaussianBlur(x, (0, 0), sig) for x in (lay.a, lay.b)]
    step = []
    for s in STEP_SCALES_PX:
        s = max(1.0, s * h / 1280.0)
        excess = _grad(lay.out, s) - np.maximum(_grad(lay.a, s), _grad(lay.b, s))
        step.append(wmean(np.maximum(excess, 0.0)))
    g1 = [_grad(x, 1.0) for x in (lay.out, lay.a, lay.b)]
    sharpness = wmean(g1[0]) / max(wmean((g1[1] + g1[2]) / 2.0), 1e-9)
    level = max(wmean((lay.a + lay.b).mean(-1) / 2.0), 1e-6)
    lens_mad, colour_mad = wmean(np.abs(lay.a - lay.b).mean(-1)), wmean(np.abs(blur[0] - blur[1]).mean(-1))
    return {"tool": lay.name, "lens_mad": lens_mad, "colour_mad": colour_mad, "visible_step": float(np.mean(step)),
            "band_sharpness": sharpness, "band_level": level, "lens_mad_pct": 100.0 * lens_mad / level,
            "colour_mad_pct": 100.0 * colour_mad / level,
            "band_fraction": float(w.sum() / erp_area_weights(*band.shape).sum())}
