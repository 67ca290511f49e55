"""Levelling panoramas: where gravity points, from the camera's metadata or from the image.

A gravity estimate is a unit vector ``down`` in the panorama's frame (CONVENTIONS.md: +y is
down when the panorama is level) with its ``source`` and a ``confidence`` in [0, 1]. The
levelling rotation is the smallest one taking ``down`` to +y
(:func:`panoedge.stitch.stitcher.level_from_gravity`); heading is kept.

Sources, in the order ``auto`` tries them:

- ``metadata``: the GPano XMP pose a camera writes into its JPEGs (``PosePitchDegrees``,
  ``PoseRollDegrees``). Per Google's Photo Sphere spec these describe the *image's* pitch and
  roll, which viewers undo. ``auto`` takes them where present and reports the image's own
  estimate beside them (``image_vs_metadata_deg``) as a check.
- ``image``: the vertical vanishing direction (``lines``). Line segments are detected (OpenCV's LSD) in
  pinhole views around the horizon; each segment spans a great circle whose normal ``n``
  is perpendicular to the segment's 3D direction, so for vertical lines ``n . down = 0``.
  A robust vote over candidate directions within ``max_tilt_deg`` of the current vertical
  (segment length as weight, a Cauchy-like kernel) finds the direction most segments share,
  then a least-squares refit on its inliers refines it. ``confidence`` combines the inlier
  share of the segments' length and their count, and is 0 when the best direction sits on the
  search cap's rim. Where the lines are not conclusive (a field under the sky, a camera held
  at 50 degrees) and the sky is, the brightness dipole gives a first vertical (``sky``) that
  the lines then refine within ``SKY_REFINE_DEG`` (``sky+lines``).
- ``imu``: an accelerometer / gravity vector from the robot (the live pipeline's hook,
  :class:`panoedge.stitch.level_hooks.GravityHook`), passed straight in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.geometry import PinholeCamera, erp_to_perspective, rotation_aligning, rotation_from_ypr_deg
from panoedge.results import Result, json_field

SOURCES = ("auto", "metadata", "image")
VIEW_FOV_DEG = 90.0
"""Horizontal field of view of the pinhole views lines are detected in (8 views around the horizon)."""
VIEW_PITCHES_DEG = (0.0, 30.0, -30.0)
"""Pitches of the rings of views: the horizon ring, and rings above and below that see vertical edges near
the top and bottom of rooms."""
VIEW_SIZE_PX = 384
"""Side of each square view (px): lines of a few pixels' accuracy at 0.23 deg a pixel."""
MIN_SEGMENT_DEG = 3.0
"""Shortest segment (angle it spans on the sphere) that votes."""
INLIER_DEG = 1.5
"""A segment is vertical when its great circle passes within this angle of the vertical direction."""
MAX_TILT_DEG = 40.0
"""Candidates for the vertical are searched within this angle of the panorama's current vertical: the
input is assumed roughly upright (rigs store their mounting rotation); larger tilts are ambiguous with
the horizontal vanishing directions of a Manhattan scene."""
MIN_CONFIDENCE = 0.3
"""Below this the image estimate is not trusted (``auto`` then leaves the panorama as it is)."""
FULL_SHARE = 0.15
"""Share of the segments' total length on the vertical that counts as full confidence (chance is ~3%:
``sin(INLIER_DEG)``; level indoor and street panoramas give 0.15-0.6)."""
FULL_COUNT = 150
"""Inlier segments for full confidence: a few long edges of one object do not level a panorama."""
SKY_SIZE_PX = 128
"""Height of the ERP the brightness dipole is measured on."""
MIN_SKY_STRENGTH = 0.4
"""Dipole strength (|mean of (lum - mean) ray| / mean |lum - mean|) from which the sky is trusted as a
first guess: an open sky over ground gives ~0.5, rooms and low suns 0.15-0.35."""
SKY_REFINE_DEG = 15.0
"""Search cap of the lines around the sky's vertical."""


@dataclass(frozen=True)
class Gravity:
    """Where down points in a panorama (unit vector, our frame), from which source, how sure."""

    down: np.ndarray
    source: str
    confidence: float
    details: dict = field(default_factory=dict)

    @property
    def tilt_deg(self) -> float:
        """Angle between this down and the panorama's own (+y)."""
        return float(np.degrees(np.arccos(np.clip(self.down[1] / np.linalg.norm(self.down), -1.0, 1.0))))

    @property
    def pitch_roll_deg(self) -> tuple[float, float]:
        """Tilt split into pitch (about x, down tipping forward +z) and roll (about z, towards -x)."""
        g = self.down
        return float(np.degrees(np.arctan2(g[2], g[1]))), float(np.degrees(np.arctan2(-g[0], g[1])))

    def rotation(self) -> np.ndarray:
        """Panorama-to-level rotation (the smallest one taking ``down`` to +y)."""
        return rotation_aligning(self.down, np.array([0.0, 1.0, 0.0]))

    def to_dict(self) -> dict:
        p, r = self.pitch_roll_deg
        return {"source": self.source, "confidence": round(self.confidence, 4), "down": [float(x) for x in self.down],
                "tilt_deg": round(self.tilt_deg, 4), "pitch_deg": round(p, 4), "roll_deg": round(r, 4), **self.details}


LEVEL = Gravity(np.array([0.0, 1.0, 0.0]), "none", 0.0)


# -- metadata -----------------------------------------------------------------------------------

_XMP_MAX_BYTES = 1 << 20
_POSE_KEYS = ("PosePitchDegrees", "PoseRollDegrees", "PoseHeadingDegrees")


def read_gpano_pose(path: str | Path) -> dict | None:
    """``{"pitch_deg", "roll_deg", "heading_deg"?}`` from a JPEG's GPano XMP, or None where absent.

    Reads only the first 1 MB of APP1 segments (XMP packets live there); a malformed value is an error.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_XMP_MAX_BYTES)
    if not head.startswith(b"\xff\xd8"):
        return None
    start = head.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = head.find(b"</x:xmpmeta>", start)
    xmp = head[start: end if end > 0 else len(head)].decode("utf-8", errors="replace")
    found = {}
    for key in _POSE_KEYS:
        m = re.search(rf"GPano:{key}\s*=\s*\"([^\"]*)\"", xmp) or re.search(rf"<GPano:{key}>([^<]*)<", xmp)
        if m:
            try:
                found[key] = float(m.group(1))
            except ValueError:
                raise DataError(f"{path}: XMP GPano:{key} = {m.group(1)!r} is not a number") from None
    if "PosePitchDegrees" not in found and "PoseRollDegrees" not in found:
        return None
    pose = {"pitch_deg": found.get("PosePitchDegrees", 0.0), "roll_deg": found.get("PoseRollDegrees", 0.0)}
    if "PoseHeadingDegrees" in found:
        pose["heading_deg"] = found["PoseHeadingDegrees"]
    for k, lim in (("pitch_deg", 90.0), ("roll_deg", 180.0)):
        if not -lim <= pose[k] <= lim:
            raise DataError(f"{path}: XMP GPano pose {k} {pose[k]}: expected [-{lim:g}, {lim:g}]")
    return pose


def gravity_from_pose(pitch_deg: float, roll_deg: float) -> Gravity:
    """Down in a panorama whose centre is pitched up by ``pitch_deg`` and rolled clockwise by ``roll_deg``."""
    R = rotation_from_ypr_deg(0.0, pitch_deg, roll_deg)  # image frame -> level frame
    return Gravity(R.T @ np.array([0.0, 1.0, 0.0]), "metadata", 1.0,
                   {"pose_pitch_deg": pitch_deg, "pose_roll_deg": roll_deg})


# -- image --------------------------------------------------------------------------------------


def line_normals(erp: np.ndarray, view_px: int = VIEW_SIZE_PX) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle normals ``(N, 3)`` of the line segments in an ERP, and their lengths (radians)."""
    cam = PinholeCamera.from_fov(view_px, view_px, VIEW_FOV_DEG)
    lsd = cv2.createLineSegmentDetector()
    grey = cv2.cvtColor(erp, cv2.COLOR_RGB2GRAY) if erp.ndim == 3 else erp
    normals, lengths = [], []
    for pitch in VIEW_PITCHES_DEG:
        for k in range(8):
            yaw = k * 45.0 + (22.5 if pitch else 0.0)
            view = erp_to_perspective(grey, VIEW_FOV_DEG, yaw, pitch, (view_px, view_px))
            lines = lsd.detect(view)[0]
            if lines is None:
                continue
            seg = lines.reshape(-1, 4).astype(np.float64)
            R = rotation_from_ypr_deg(yaw, pitch, 0.0)
            a = cam.unproject(seg[:, 0], seg[:, 1]) @ R.T
            b = cam.unproject(seg[:, 2], seg[:, 3]) @ R.T
            n = np.cross(a, b)
            s = np.linalg.norm(n, axis=1)
            ang = np.arctan2(s, np.einsum("ij,ij->i", a, b))
            keep = ang >= np.radians(MIN_SEGMENT_DEG)
            normals.append(n[keep] / s[keep, None])
            lengths.append(ang[keep])
    if not normals:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(normals), np.concatenate(lengths)


def _candidates(max_tilt_deg: float, step_deg: float) -> np.ndarray:
    """Unit vectors within ``max_tilt_deg`` of +y on a near-uniform spiral, ``step_deg`` apart."""
    cap = 2 * np.pi * (1 - np.cos(np.radians(max_tilt_deg)))
    n = max(16, int(cap / np.radians(step_deg) ** 2))
    k = np.arange(n) + 0.5
    cos_t = 1 - k / n * (1 - np.cos(np.radians(max_tilt_deg)))
    phi = k * np.pi * (3 - np.sqrt(5))
    sin_t = np.sqrt(1 - cos_t ** 2)
    return np.stack([sin_t * np.cos(phi), cos_t, sin_t * np.sin(phi)], axis=1)


def gravity_from_lines(erp: np.ndarray, max_tilt_deg: float = MAX_TILT_DEG) -> Gravity:
    """The vertical vanishing direction of an ERP's line segments (see the module docstring)."""
    n, length = line_normals(erp)
    if len(n) < 8:
        return Gravity(LEVEL.down, "lines", 0.0, {"segments": int(len(n)), "inliers": 0})
    tol = np.sin(np.radians(INLIER_DEG))
    cand = _candidates(max_tilt_deg, 0.75)
    best, best_score = cand[0], -1.0
    for chunk in np.array_split(cand, max(1, len(cand) // 512)):
        d = n @ chunk.T
        score = (length[:, None] / (1.0 + (d / tol) ** 2)).sum(axis=0)
        i = int(np.argmax(score))
        if score[i] > best_score:
            best, best_score = chunk[i], float(score[i])
    v = best
    for _ in range(5):  # least-squares refit on the inliers: v minimises sum w (n . v)^2
        inl = np.abs(n @ v) < tol
        if inl.sum() < 3:
            break
        m = (n[inl] * length[inl, None]).T @ n[inl]
        w, vec = np.linalg.eigh(m)
        v = vec[:, 0] * np.sign(vec[1, 0] or 1.0)
    inl = np.abs(n @ v) < tol
    share = float(length[inl].sum() / length.sum())
    count = int(inl.sum())
    v = v / np.linalg.norm(v)
    confidence = float(np.clip(share / FULL_SHARE, 0.0, 1.0) * min(1.0, count / FULL_COUNT))
    at_edge = np.degrees(np.arccos(np.clip(v[1], -1.0, 1.0))) > max_tilt_deg - 2.0
    if at_edge:  # the best direction sits on the search cap's rim: the true vertical is likely beyond it
        confidence = 0.0
    return Gravity(v, "lines", confidence, {"segments": int(len(n)), "inliers": count,
                                            "inlier_length_share": round(share, 4), "at_search_edge": bool(at_edge)})


def gravity_from_sky(erp: np.ndarray) -> Gravity:
    """Down from the brightness dipole: the area-weighted mean ray of (luminance - its mean).

    Outdoors the sky is the bright cap around the zenith; the dipole then points up whatever
    the tilt, but a low sun, a bright floor or lamps pull it off, so it is a coarse first guess
    (confidence: the dipole's strength, 0..1), refined by the lines when they agree.
    """
    from panoedge.geometry import erp_area_weights, erp_rays

    s = cv2.resize(erp, (SKY_SIZE_PX * 2, SKY_SIZE_PX), interpolation=cv2.INTER_AREA).astype(np.float32)
    lum = s.mean(axis=-1) if s.ndim == 3 else s
    a = erp_area_weights(SKY_SIZE_PX, 2 * SKY_SIZE_PX)
    dev = lum - (a * lum).sum() / a.sum()
    u = ((a * dev)[..., None] * erp_rays(SKY_SIZE_PX, 2 * SKY_SIZE_PX)).sum(axis=(0, 1))
    strength = float(np.linalg.norm(u) / max((a * np.abs(dev)).sum(), 1e-9))
    return Gravity(-u / max(np.linalg.norm(u), 1e-12), "sky", strength, {"dipole_strength": round(strength, 4)})


def gravity_from_image(erp: np.ndarray, max_tilt_deg: float = MAX_TILT_DEG) -> Gravity:
    """Gravity from the image alone: vertical lines near the current vertical; where they are not
    conclusive and the sky is, the sky's direction first, refined by the lines around it."""
    g = gravity_from_lines(erp, max_tilt_deg)
    if g.confidence >= MIN_CONFIDENCE:
        return g
    sky = gravity_from_sky(erp)
    if sky.confidence < MIN_SKY_STRENGTH:
        return g
    from panoedge.geometry import rotate_erp

    R = sky.rotation()
    refined = gravity_from_lines(rotate_erp(erp, R.T), max_tilt_deg=SKY_REFINE_DEG)
    if refined.confidence >= MIN_CONFIDENCE:
        return Gravity(R.T @ refined.down, "sky+lines", refined.confidence,
                       {**refined.details, "sky": sky.to_dict()})
    return Gravity(sky.down, "sky", min(sky.confidence, 0.5), sky.details)


def estimate_gravity(erp: np.ndarray, source: str = "auto", path: str | Path | None = None) -> Gravity:
    """Gravity of an ERP from ``source`` (``auto``, ``metadata`` or ``image``; see the module docstring)."""
    if source not in SOURCES:
        raise UsageError(f"level source {source!r}: expected one of {', '.join(SOURCES)}")
    pose = read_gpano_pose(path) if path is not None and source in ("auto", "metadata") else None
    if source == "metadata":
        if pose is None:
            raise DataError(f"{path}: no GPano pose (PosePitchDegrees/PoseRollDegrees) in its XMP")
        return gravity_from_pose(pose["pitch_deg"], pose["roll_deg"])
    img = gravity_from_image(erp)
    if source == "image" or pose is None:
        return img
    meta = gravity_from_pose(pose["pitch_deg"], pose["roll_deg"])
    gap = float(np.degrees(np.arccos(np.clip(meta.down @ img.down, -1.0, 1.0))))
    return Gravity(meta.down, "metadata", meta.confidence,
                   {**meta.details, "image_estimate": img.to_dict(), "image_vs_metadata_deg": round(gap, 3)})


def level_rotation(g: Gravity, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """The rotation to apply for gravity ``g``: identity when the estimate is not confident enough."""
    return g.rotation() if g.confidence >= min_confidence else np.eye(3)


ESTIMATE_WIDTH_PX = 2048
"""ERPs are estimated at most this wide (INTER_AREA down-sampled): the views' 0.23 deg pixels
need no more, and LSD's time grows with the views, not the panorama."""


def downsized_for_estimate(erp: np.ndarray) -> np.ndarray:
    """``erp`` shrunk to :data:`ESTIMATE_WIDTH_PX` wide (area filter) when wider: the gravity estimate
    needs the horizon's shape, not its texture."""
    if erp.shape[1] <= ESTIMATE_WIDTH_PX:
        return erp
    return cv2.resize(erp, (ESTIMATE_WIDTH_PX, ESTIMATE_WIDTH_PX // 2), interpolation=cv2.INTER_AREA)


def level_erp(erp: np.ndarray, g: Gravity, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """``erp`` resampled into the level frame of ``g`` (unchanged when ``g`` is not confident)."""
    from panoedge.geometry import rotate_erp

    R = level_rotation(g, min_confidence)
    return erp if np.allclose(R, np.eye(3)) else rotate_erp(erp, R.T)  # out(d) = in(R^T d)


@dataclass(frozen=True)
class LevelResult(Result):
    """What ``panoedge level`` did for each file: per file ``input``, ``output``, ``gravity``
    (:meth:`Gravity.to_dict`) and ``result`` (what was done, in words)."""

    SCHEMA: ClassVar[str] = "panoedge.level/1"

    rows: list = json_field(key="files")

    def format(self) -> str:
        lines = [f"{'file':<48} {'source':<9} {'conf':>5} {'pitch':>7} {'roll':>7}  result"]
        for r in self.rows:
            g = r["gravity"]
            lines.append(f"{Path(r['input']).name[:48]:<48} {g['source']:<9} {g['confidence']:>5.2f} "
                         f"{g['pitch_deg']:>6.2f}° {g['roll_deg']:>6.2f}°  {r['result']}")
        return "\n".join(lines)


def level_files(inputs, out_dir: str | Path, source: str = "auto", min_confidence: float = MIN_CONFIDENCE) -> LevelResult:
    """Level ERP image files into ``out_dir`` (same names; PNG/JPEG by extension, metadata dropped so a
    viewer does not apply the pose again). A file whose estimate is not confident is copied unrotated
    and says so."""
    from panoedge.geometry import check_erp_size
    from panoedge.io import read_rgb, write_rgb

    if source not in SOURCES:
        raise UsageError(f"--source {source!r}: expected one of {', '.join(SOURCES)}")
    out_dir = Path(out_dir)
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: no such ERP image file")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in paths:
        erp = read_rgb(p)
        check_erp_size(*erp.shape[:2], what=str(p))
        g = estimate_gravity(downsized_for_estimate(erp), source, p)
        levelled = g.confidence >= min_confidence
        dst = out_dir / p.name
        if dst.resolve() == p.resolve():
            raise UsageError(f"{dst}: --out would overwrite the input; choose another folder")
        write_rgb(dst, level_erp(erp, g, min_confidence))
        rows.append({"input": str(p), "output": str(dst), "gravity": g.to_dict(),
                     "result": (f"levelled ({g.tilt_deg:.2f}° tilt removed)" if levelled else
                                f"left as is (confidence {g.confidence:.2f} < {min_confidence})")})
    return LevelResult(rows)
