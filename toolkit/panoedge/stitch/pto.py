"""Hugin/PanoTools ``.pto`` projects: the lenses of a dual-fisheye template, in our conventions.

Only what a rig needs is read: the ``p`` line's output size and each ``i`` line's projection
(``f2``: circular fisheye, equidistant), ``w``/``h``, horizontal field of view ``v`` (degrees over
the *full* image width, so ``f = w / v``), optical-centre shift ``d``/``e`` (pixels from the image
centre), yaw ``y``, pitch ``p`` and roll ``r`` (degrees) and crop ``S`` (left, right, top, bottom).

Orientation: Hugin builds an image's camera-to-panorama rotation as ``Rz(-y) Ry(-p) Rx(r)`` in
PanoTools' frame (x forward, y left, z up; Hugin's ``Matrix3::SetRotationPT``). Positive yaw
turns the image right and positive pitch up, as in ours; in our frame (x right, y down,
z forward, ``P`` below) the rotation is ``P M P^T``. Hugin's ``d``/``e`` optical-centre shifts
trade off against yaw/pitch, so a rig that keeps its own (measured) circle centres takes the
rotation that best reproduces Hugin's rays over the lens's pixels (:func:`fit_lens_rotation`),
not the ``.pto``'s angles as they stand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.errors import ConfigError

P_FROM_PT = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""PanoTools (forward, left, up) -> ours (right, down, forward)."""
FIT_GRID = 48
"""Pixels per side of the grid a lens rotation is fitted on (inside the image circle)."""


@dataclass(frozen=True)
class PtoImage:
    """One ``i`` line: a lens of the template (angles in degrees, lengths in pixels)."""

    projection: int
    width: int
    height: int
    hfov_deg: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    d_px: float = 0.0
    e_px: float = 0.0
    crop: tuple[float, float, float, float] | None = None

    @property
    def f_px(self) -> float:
        """Equidistant focal length (px/rad) of a circular fisheye (``f2``): ``w / v``."""
        return self.width / np.deg2rad(self.hfov_deg)

    @property
    def center_px(self) -> tuple[float, float]:
        """Optical centre (pixel-centre coordinates): image centre plus ``(d, e)``."""
        return (self.width - 1) / 2.0 + self.d_px, (self.height - 1) / 2.0 + self.e_px

    @property
    def rotation(self) -> np.ndarray:
        """Camera-to-panorama rotation in our convention (``ray_pano = R @ ray_cam``)."""
        y, p, r = np.deg2rad([self.yaw_deg, self.pitch_deg, self.roll_deg])
        cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(-y), np.cos(p), np.sin(-p), np.cos(r), np.sin(r)
        yaw = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        roll = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        return P_FROM_PT @ (yaw @ pitch @ roll) @ P_FROM_PT.T

    def rays(self, u, v) -> np.ndarray:
        """Panorama rays ``(..., 3)`` of pixels ``(u, v)`` of this image (equidistant fisheye)."""
        cx, cy = self.center_px
        du, dv = np.asarray(u, np.float64) - cx, np.asarray(v, np.float64) - cy
        theta = np.hypot(du, dv) / self.f_px
        phi = np.arctan2(dv, du)
        cam = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
        return cam @ self.rotation.T


_NUM = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _field(tokens: dict, key: str, path, line: int, default=None) -> float:
    if key not in tokens:
        if default is not None:
            return default
        raise ConfigError(path, f"line {line}: {key}", "missing; expected a number")
    try:
        return float(tokens[key])
    except ValueError:
        raise ConfigError(path, f"line {line}: {key}", f"{tokens[key]!r} is not a number") from None


def read_pto(path: str | Path) -> list[PtoImage]:
    """The ``i`` lines of a Hugin project, in order; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such .pto file")
    text = path.read_text(errors="replace")
    if len(text) > 4_000_000:
        raise ConfigError(path, "(file)", "larger than 4 MB; not a Hugin project")
    images = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("i "):
            continue
        tokens = {}
        for tok in line.split()[1:]:
            if tok.startswith("n\""):
                continue
            m = re.match(r"([A-Za-z]+)(.*)", tok)
            if m and m.group(1) not in tokens:
                tokens[m.group(1)] = m.group(2)
        crop = None
        if "S" in tokens:
            parts = tokens["S"].split(",")
            if len(parts) != 4 or not all(re.fullmatch(_NUM, p) for p in parts):
                raise ConfigError(path, f"line {n}: S", f"{tokens['S']!r}: expected left,right,top,bottom")
            crop = tuple(float(p) for p in parts)
        images.append(PtoImage(
            projection=int(_field(tokens, "f", path, n)), width=int(_field(tokens, "w", path, n)),
            height=int(_field(tokens, "h", path, n)), hfov_deg=_field(tokens, "v", path, n),
            yaw_deg=_field(tokens, "y", path, n, 0.0), pitch_deg=_field(tokens, "p", path, n, 0.0),
            roll_deg=_field(tokens, "r", path, n, 0.0), d_px=_field(tokens, "d", path, n, 0.0),
            e_px=_field(tokens, "e", path, n, 0.0), crop=crop))
    if not images:
        raise ConfigError(path, "i lines", "none found; expected one image line per lens")
    for k, im in enumerate(images):
        if im.projection != 2:
            raise ConfigError(path, f"image {k}: f", f"projection {im.projection}: only f2 (circular fisheye) is read")
    return images


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation ``R`` minimising ``sum |R src_k - dst_k|^2`` over unit rays ``(N, 3)``."""
    u, _, vt = np.linalg.svd(np.asarray(dst).T @ np.asarray(src))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _lens_grid(rig, i: int, n: int = FIT_GRID):
    lens = rig.lenses[i]
    g = np.linspace(-0.9, 0.9, n)
    gx, gy = np.meshgrid(g, g)
    keep = gx ** 2 + gy ** 2 <= 0.81
    return lens.center_x_px + gx[keep] * lens.radius_px, lens.center_y_px + gy[keep] * lens.radius_px


def fit_lens_rotation(rig, i: int, image: PtoImage) -> np.ndarray:
    """Lens ``i``'s rotation (rig's model and circle kept) that best reproduces ``image``'s rays."""
    u, v = _lens_grid(rig, i)
    cam, ok = rig.cameras()[i].unproject(u, v)
    return kabsch(cam[ok], image.rays(u[ok], v[ok]))


def orientation_against(rig, images: list[PtoImage]) -> np.ndarray:
    """The rotation taking ``rig``'s output rays to the Hugin panorama's, fitted over both lenses'
    pixels (identity when the two panoramas are oriented alike)."""
    src, dst = [], []
    for i, im in enumerate(images[:2]):
        u, v = _lens_grid(rig, i)
        cam, ok = rig.cameras()[i].unproject(u, v)
        src.append(cam[ok] @ (rig.output_rotation @ rig.lenses[i].rotation).T)
        dst.append(im.rays(u[ok], v[ok]))
    return kabsch(np.concatenate(src), np.concatenate(dst))


def horizon_difference_deg(orientation: np.ndarray) -> tuple[float, float, float]:
    """``(pitch, roll, tilt)`` in degrees between two panoramas' horizons, heading ignored.

    ``orientation`` takes our output rays to the other panorama's (:func:`orientation_against`).
    The other panorama's down direction, seen in our output frame, is tipped forward by ``pitch``
    (about our x axis) and sideways by ``roll`` (about our z axis); ``tilt`` is the total angle.
    """
    g = np.asarray(orientation).T @ np.array([0.0, 1.0, 0.0])
    pitch = np.degrees(np.arctan2(g[2], g[1]))
    roll = np.degrees(np.arctan2(-g[0], g[1]))
    return float(pitch), float(roll), float(np.degrees(np.arccos(np.clip(g[1], -1.0, 1.0))))


def oriented_like(rig, images: list[PtoImage], per_lens: bool):
    """``rig`` turned to the Hugin panorama's level and tilt, lens 0 kept looking at longitude 0.

    ``per_lens``: take each lens's rotation from the ``.pto`` (fitted to the rig's circles), the
    template's full per-lens rotation; else keep the rig's own relative rotation (a self-calibrated
    rig) and turn the whole rig to match both lenses' rays at once.
    """
    from dataclasses import replace

    from panoedge.geometry import rot_y, ypr_from_rotation

    if per_lens:
        rots = [fit_lens_rotation(rig, i, images[i]) for i in range(2)]
    else:
        w = orientation_against(replace(rig, output_yaw_deg=0.0, output_pitch_deg=0.0, output_roll_deg=0.0), images)
        rots = [w @ lens.rotation for lens in rig.lenses]
    fwd = rots[0][:, 2]
    turn = rot_y(-np.arctan2(fwd[0], fwd[2]))
    out = replace(rig, output_yaw_deg=0.0, output_pitch_deg=0.0, output_roll_deg=0.0)
    for i, r in enumerate(rots):
        y, p, rr = np.rad2deg(ypr_from_rotation(turn @ r))
        out = out.with_lens(i, yaw_deg=round(float(y), 4), pitch_deg=round(float(p), 4), roll_deg=round(float(rr), 4))
    return out
