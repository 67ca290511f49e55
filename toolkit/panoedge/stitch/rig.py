"""The dual-fisheye rig model and its YAML file (``calibration/rigs/*.yaml``).

A rig file describes the camera a robot carries: how the two lens images are laid out in a
frame, and per lens the image circle (centre and radius in pixels of the frame, or of its own
file for ``separate`` layouts), the lens model and coefficients (:mod:`panoedge.geometry.fisheye`),
the field of view, the lens's rotation relative to the rig (yaw/pitch/roll in degrees,
``ray_rig = R @ ray_lens``) and optional translation in metres, and vignetting.
Units are in the key names. Validation errors name the file, the key and the allowed range.

Example::

    schema: panoedge.rig/1
    name: my-camera
    layout: side_by_side        # side_by_side | stacked | separate
    image_width_px: 2048        # the whole frame (for separate: each lens file)
    image_height_px: 1024
    lenses:
      - name: front
        model: equidistant
        fov_deg: 195
        center_x_px: 511.5
        center_y_px: 511.5
        radius_px: 500
        yaw_deg: 0
        pitch_deg: 0
        roll_deg: 0
        translation_m: [0, 0, 0.015]
        vignetting: [-0.3, 0.0, 0.0]   # gain = 1 + k1 r^2 + k2 r^4 + k3 r^6, r = radius / radius_px
      - name: back
        ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from panoedge.errors import ConfigError
from panoedge.safe_load import check_keys, load_file
from panoedge.geometry import LENS_MODELS, FisheyeCamera, get_lens_model, rotation_from_ypr_deg

SCHEMA = "panoedge.rig/1"
LAYOUTS = ("side_by_side", "stacked", "separate")
RIG_KEYS = ("schema", "name", "layout", "image_width_px", "image_height_px", "lenses", "output_yaw_deg",
            "output_pitch_deg", "output_roll_deg", "notes", "provenance", "calibration")
"""Top-level keys of a rig file (``provenance`` and ``calibration`` are written by ``stitch calibrate``)."""
LENS_KEYS = ("name", "model", "fov_deg", "center_x_px", "center_y_px", "radius_px", "yaw_deg", "pitch_deg",
             "roll_deg", "coeffs", "translation_m", "vignetting")


@dataclass(frozen=True)
class Lens:
    """One lens of a rig; pixel coordinates are in the frame (or its own file if separate)."""

    name: str
    model: str
    fov_deg: float
    center_x_px: float
    center_y_px: float
    radius_px: float
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    coeffs: tuple[float, ...] = ()
    translation_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    vignetting: tuple[float, ...] = ()

    @property
    def rotation(self) -> np.ndarray:
        """Lens-to-rig rotation: ``ray_rig = R @ ray_lens``."""
        return rotation_from_ypr_deg(self.yaw_deg, self.pitch_deg, self.roll_deg)

    def camera(self, h: int, w: int) -> FisheyeCamera:
        """The lens as a :class:`FisheyeCamera` over an image of ``h x w`` pixels."""
        return FisheyeCamera.from_fov(h, w, model=self.model, fov_deg=self.fov_deg, radius_px=self.radius_px,
                                      center=(self.center_x_px, self.center_y_px), coeffs=self.coeffs)

    def vignetting_gain(self, rho) -> np.ndarray:
        """Brightness gain at normalised radius ``rho = r / radius_px`` (1 at the centre)."""
        rho2 = np.asarray(rho, dtype=np.float64) ** 2
        gain = np.ones_like(rho2)
        for i, k in enumerate(self.vignetting):
            gain = gain + k * rho2 ** (i + 1)
        return gain


@dataclass(frozen=True)
class Rig:
    """A dual-fisheye camera: two :class:`Lens` and the frame layout."""

    name: str
    layout: str
    image_width_px: int
    image_height_px: int
    lenses: tuple[Lens, Lens]
    output_yaw_deg: float = 0.0
    output_pitch_deg: float = 0.0
    output_roll_deg: float = 0.0
    notes: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.image_height_px, self.image_width_px

    @property
    def output_rotation(self) -> np.ndarray:
        """The fixed rig-to-output rotation applied before any per-frame levelling."""
        return rotation_from_ypr_deg(self.output_yaw_deg, self.output_pitch_deg, self.output_roll_deg)

    def cameras(self) -> tuple[FisheyeCamera, FisheyeCamera]:
        h, w = self.frame_hw
        return tuple(lens.camera(h, w) for lens in self.lenses)  # type: ignore[return-value]

    # -- the canvas: both lens images in one array ------------------------------------------

    @property
    def canvas_hw(self) -> tuple[int, int]:
        """Size of the canvas the stitcher samples: the frame, or the two files side by side."""
        h, w = self.frame_hw
        return (h, 2 * w) if self.layout == "separate" else (h, w)

    def lens_offset(self, i: int) -> tuple[int, int]:
        """``(dx, dy)`` from lens ``i``'s own pixel coordinates to canvas coordinates."""
        return (i * self.image_width_px, 0) if self.layout == "separate" else (0, 0)

    def lens_region(self, i: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` (exclusive ends) of the canvas pixels lens ``i`` may sample.

        Side by side and stacked frames give each lens the half its circle centre lies in, so a
        circle that spills over the middle never samples the other lens.
        """
        h, w = self.frame_hw
        lens = self.lenses[i]
        if self.layout == "separate":
            return i * w, 0, (i + 1) * w, h
        if self.layout == "side_by_side":
            left = lens.center_x_px < w / 2.0
            return (0, 0, w // 2, h) if left else (w // 2, 0, w, h)
        top = lens.center_y_px < h / 2.0
        return (0, 0, w, h // 2) if top else (0, h // 2, w, h)

    def canvas_camera(self, i: int) -> FisheyeCamera:
        """Lens ``i`` as a :class:`FisheyeCamera` in canvas pixel coordinates."""
        hc, wc = self.canvas_hw
        dx, dy = self.lens_offset(i)
        lens = self.lenses[i]
        return FisheyeCamera.from_fov(hc, wc, model=lens.model, fov_deg=lens.fov_deg, radius_px=lens.radius_px,
                                      center=(lens.center_x_px + dx, lens.center_y_px + dy), coeffs=lens.coeffs)

    def relative_rotation(self) -> np.ndarray:
        """Lens 1 in lens 0's frame: ``R0^T R1`` (what self-calibration estimates)."""
        return self.lenses[0].rotation.T @ self.lenses[1].rotation

    def with_lens(self, i: int, **changes) -> "Rig":
        lenses = list(self.lenses)
        lenses[i] = replace(lenses[i], **changes)
        return replace(self, lenses=tuple(lenses))

    def to_dict(self) -> dict:
        d = {
            "schema": SCHEMA,
            "name": self.name,
            "layout": self.layout,
            "image_width_px": self.image_width_px,
            "image_height_px": self.image_height_px,
            "output_yaw_deg": self.output_yaw_deg,
            "output_pitch_deg": self.output_pitch_deg,
            "output_roll_deg": self.output_roll_deg,
            "lenses": [],
        }
        if self.notes:
            d["notes"] = self.notes
        for lens in self.lenses:
            ld = asdict(lens)
            for k in ("coeffs", "translation_m", "vignetting"):
                ld[k] = [float(x) for x in ld[k]]
            d["lenses"].append({k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in ld.items()})
        d.update(self.extra)
        return d


# -- loading and validation -------------------------------------------------------------------


def _num(d: dict, key: str, path, lo: float, hi: float, default=None, where: str = "") -> float:
    name = f"{where}{key}"
    if key not in d:
        if default is not None:
            return float(default)
        raise ConfigError(path, name, f"missing; expected a number in [{lo}, {hi}]")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(path, name, f"{v!r} is not a number; expected a number in [{lo}, {hi}]")
    if not (lo <= float(v) <= hi) or not np.isfinite(v):
        raise ConfigError(path, name, f"{v} is out of range; expected [{lo}, {hi}]")
    return float(v)


def _list(d: dict, key: str, path, n_max: int, where: str, exact: int | None = None) -> tuple[float, ...]:
    v = d.get(key, [])
    name = f"{where}{key}"
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ConfigError(path, name, f"{v!r}: expected a list of numbers")
    if not all(np.isfinite(x) for x in v):
        raise ConfigError(path, name, f"{list(v)!r}: expected finite numbers (no NaN or infinity)")
    if exact is not None and len(v) not in (0, exact):
        raise ConfigError(path, name, f"expected {exact} numbers, got {len(v)}")
    if len(v) > n_max:
        raise ConfigError(path, name, f"expected at most {n_max} numbers, got {len(v)}")
    return tuple(float(x) for x in v)


def rig_from_dict(d: dict, path=None) -> Rig:
    """Validate a rig mapping (as read from YAML) into a :class:`Rig`."""
    if not isinstance(d, dict):
        raise ConfigError(path, "(top level)", "expected a mapping of rig fields")
    check_keys(d, RIG_KEYS, path)
    for key in ("name", "notes"):
        if key in d and not isinstance(d[key], str):
            raise ConfigError(path, key, f"{d[key]!r}: expected a string")
    schema = d.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise ConfigError(path, "schema", f"{schema!r}: expected {SCHEMA!r}")
    layout = d.get("layout")
    if layout not in LAYOUTS:
        raise ConfigError(path, "layout", f"{layout!r}: expected one of {', '.join(LAYOUTS)}")
    w = int(_num(d, "image_width_px", path, 16, 20000))
    h = int(_num(d, "image_height_px", path, 16, 20000))
    lenses_raw = d.get("lenses")
    if not isinstance(lenses_raw, list) or len(lenses_raw) != 2:
        raise ConfigError(path, "lenses", "expected a list of exactly 2 lenses")
    lenses = []
    for i, ld in enumerate(lenses_raw):
        where = f"lenses[{i}]."
        if not isinstance(ld, dict):
            raise ConfigError(path, f"lenses[{i}]", "expected a mapping of lens fields")
        check_keys(ld, LENS_KEYS, path, where)
        if "name" in ld and not isinstance(ld["name"], str):
            raise ConfigError(path, f"{where}name", f"{ld['name']!r}: expected a string")
        model = ld.get("model")
        if model not in LENS_MODELS:
            raise ConfigError(path, f"{where}model", f"{model!r}: expected one of {', '.join(sorted(LENS_MODELS))}")
        lens = Lens(
            name=str(ld.get("name", f"lens{i}")),
            model=model,
            fov_deg=_num(ld, "fov_deg", path, 1.0, 360.0, where=where),
            center_x_px=_num(ld, "center_x_px", path, -0.5, w - 0.5, where=where),
            center_y_px=_num(ld, "center_y_px", path, -0.5, h - 0.5, where=where),
            radius_px=_num(ld, "radius_px", path, 1.0, 4.0 * max(w, h), where=where),
            yaw_deg=_num(ld, "yaw_deg", path, lo=-360.0, hi=360.0, default=0.0, where=where),
            pitch_deg=_num(ld, "pitch_deg", path, lo=-90.0, hi=90.0, default=0.0, where=where),
            roll_deg=_num(ld, "roll_deg", path, lo=-360.0, hi=360.0, default=0.0, where=where),
            coeffs=_list(ld, "coeffs", path, get_lens_model(model).n_coeffs, where),
            translation_m=_list(ld, "translation_m", path, 3, where, exact=3) or (0.0, 0.0, 0.0),
            vignetting=_list(ld, "vignetting", path, 3, where),
        )
        lim = np.rad2deg(2 * get_lens_model(model).max_theta(lens.coeffs))
        if lens.fov_deg > lim + 1e-6:
            raise ConfigError(path, f"{where}fov_deg", f"{lens.fov_deg} is beyond what the {model} model maps; "
                              f"expected at most {lim:.1f}")
        lenses.append(lens)
    known = set(RIG_KEYS) - {"provenance", "calibration"}
    return Rig(
        name=str(d.get("name", Path(path).stem if path else "rig")),
        layout=layout,
        image_width_px=w,
        image_height_px=h,
        lenses=(lenses[0], lenses[1]),
        output_yaw_deg=_num(d, "output_yaw_deg", path, lo=-360, hi=360, default=0.0),
        output_pitch_deg=_num(d, "output_pitch_deg", path, lo=-90, hi=90, default=0.0),
        output_roll_deg=_num(d, "output_roll_deg", path, lo=-360, hi=360, default=0.0),
        notes=str(d.get("notes", "")),
        extra={k: v for k, v in d.items() if k not in known},
    )


def load_rig(path: str | Path) -> Rig:
    """Read and validate a rig YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such rig file")
    return rig_from_dict(load_file(path, expect=None), path)


def save_rig(rig: Rig, path: str | Path) -> Path:
    """Atomically write a rig YAML file."""
    from panoedge.home import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(rig.to_dict(), sort_keys=False))
