"""Rig presets: the cameras of ``shared/data/real`` and a generic rig.

The shipped presets live in the package (``panoedge/stitch/rigs/<name>.yaml``), so a wheel
install has them too; each is built from published lens figures and its ``provenance`` block
says which numbers were measured, which derived and which are nominal. Your own rigs are found
by name in ``./calibration/rigs/`` (the folder you run panoedge from) and the folders of
``$PANOEDGE_RIGS`` (``os.pathsep``-separated); first match wins, so a rig there overrides a
shipped preset of the same name. :func:`generic_rig` needs only the image size: two
equidistant 195-degree lenses, circles centred in their halves (or files), back to back.
Start self-calibration (``panoedge rig calibrate``) from either.
"""

from __future__ import annotations

import os
from pathlib import Path

from panoedge.errors import UsageError, unknown_name
from panoedge.stitch.rig import Lens, Rig, load_rig

RIGS_DIR = Path(__file__).resolve().parent / "rigs"
"""The presets shipped with panoedge (package data)."""

GENERIC_FOV_DEG = 195.0


def search_path() -> list[Path]:
    """Folders searched for rigs by name, in order: ./calibration/rigs, $PANOEDGE_RIGS, the shipped presets."""
    env = [Path(p) for p in os.environ.get("PANOEDGE_RIGS", "").split(os.pathsep) if p]
    return [Path.cwd() / "calibration" / "rigs", *env, RIGS_DIR]


def _preset_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in search_path():
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")):
                if not p.name.startswith("."):
                    found.setdefault(p.stem, p)
    return found


def preset_names() -> list[str]:
    """Names of the preset rig files, plus ``generic``."""
    names = sorted(_preset_files())
    return names + (["generic"] if "generic" not in names else [])


def preset_path(name: str) -> Path | None:
    """The file of preset ``name`` (see :func:`search_path`), or None."""
    return _preset_files().get(name)


def load_preset(name: str) -> Rig:
    """The preset rig ``name`` (see :func:`preset_names`); ``generic`` needs a frame size, use :func:`generic_rig`."""
    if name == "generic":
        raise UsageError("the generic rig depends on the frame size: use generic_rig(width, height) "
                         "(or pass `--rig generic` with a frame)")
    path = preset_path(name)
    if path is None:
        raise unknown_name("rig preset", name, preset_names())
    return load_rig(path)


def generic_rig(width: int, height: int, layout: str | None = None, fov_deg: float = GENERIC_FOV_DEG) -> Rig:
    """A dual-fisheye rig from the frame size alone (every number nominal).

    ``layout`` defaults from the aspect ratio: wider than 1.5:1 is ``side_by_side``, taller
    than 1:1.5 ``stacked``, else ``separate`` (``width x height`` is then each lens file).
    Circles are centred in each lens's half (or file) with radius half its smaller side;
    lens 1 looks backwards (yaw 180 degrees).
    """
    w, h = int(width), int(height)
    if w < 16 or h < 16:
        raise UsageError(f"frame {w}x{h}: too small for a dual-fisheye rig")
    if layout is None:
        layout = "side_by_side" if w >= 1.5 * h else ("stacked" if h >= 1.5 * w else "separate")
    if layout == "side_by_side":
        centres, r = [((2 * i + 1) * w / 4.0 - 0.5, h / 2.0 - 0.5) for i in range(2)], min(w / 4.0, h / 2.0)
    elif layout == "stacked":
        centres, r = [(w / 2.0 - 0.5, (2 * i + 1) * h / 4.0 - 0.5) for i in range(2)], min(w / 2.0, h / 4.0)
    elif layout == "separate":
        centres, r = [(w / 2.0 - 0.5, h / 2.0 - 0.5)] * 2, min(w, h) / 2.0
    else:
        raise unknown_name("layout", layout, ("side_by_side", "stacked", "separate"))
    lenses = tuple(Lens(name=name, model="equidistant", fov_deg=float(fov_deg), center_x_px=float(cx),
                        center_y_px=float(cy), radius_px=float(r - 0.5), yaw_deg=yaw)
                   for (cx, cy), name, yaw in zip(centres, ("front", "back"), (0.0, 180.0)))
    return Rig(name=f"generic-{w}x{h}", layout=layout, image_width_px=w, image_height_px=h,
               lenses=(lenses[0], lenses[1]),
               notes="generic: every number is nominal (from the frame size); calibrate before serious use",
               extra={"provenance": {"nominal": ["everything"]}})


def resolve_rig(spec: str | Path, frame_hw=None) -> Rig:
    """A rig from a file path, a preset name, or ``generic`` (which needs ``frame_hw = (h, w)``)."""
    spec = str(spec)
    if spec == "generic":
        if frame_hw is None:
            raise UsageError("--rig generic needs a frame to take its size from")
        return generic_rig(frame_hw[1], frame_hw[0])
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return load_rig(path)
    return load_preset(spec)


PRESET_ABOUT_CHARS = 100
"""``panoedge rig list`` cuts each preset's one-line description to this many characters."""


def rig_summary(rig: Rig) -> str:
    """``panoedge rig show``: a rig's layout, lenses, orientation and provenance, one line each."""
    lines = [f"{rig.name}: {rig.layout}, {rig.image_width_px}x{rig.image_height_px} px"
             f"{' per lens file' if rig.layout == 'separate' else ''}"]
    for i, lens in enumerate(rig.lenses):
        lines.append(f"  lens {i} {lens.name:<6} {lens.model:<15} fov {lens.fov_deg:.2f} deg  centre "
                     f"({lens.center_x_px:.1f}, {lens.center_y_px:.1f})  radius {lens.radius_px:.1f} px  "
                     f"ypr ({lens.yaw_deg:.2f}, {lens.pitch_deg:.2f}, {lens.roll_deg:.2f}) deg")
    lines.append(f"  output ypr ({rig.output_yaw_deg:.1f}, {rig.output_pitch_deg:.1f}, {rig.output_roll_deg:.1f}) deg")
    for k, v in rig.extra.get("provenance", {}).items():
        lines.append(f"  {k}: {', '.join(map(str, v))}")
    return "\n".join(lines)


def preset_table() -> str:
    """``panoedge rig list``: every preset (shipped, and the user's) and ``generic``, with a one-line description."""
    names = preset_names()
    width = max(len(n) for n in names)
    lines = []
    for name in names:
        path = preset_path(name)
        if path is None:
            about = "two nominal 195-degree lenses from the frame size (calibrate before serious use)"
        else:
            rig = load_rig(path)
            about = f"{rig.image_width_px}x{rig.image_height_px} {rig.layout}, " + (rig.notes or "").split(". ")[0].strip()
            about = about if len(about) <= PRESET_ABOUT_CHARS else about[:PRESET_ABOUT_CHARS - 1] + "…"
        lines.append(f"{name:<{width}}  {about}")
    return "\n".join(lines)
