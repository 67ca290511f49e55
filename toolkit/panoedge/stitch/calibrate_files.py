"""``panoedge rig calibrate`` as a function: frames from files in, a calibrated rig file and its report out.

:func:`calibrate_files` reads the frames (images, front/back files, folders of them, or frames
sampled from videos), runs :func:`~panoedge.stitch.calibrate.calibrate`, writes the calibrated
rig (its provenance saying what was estimated) and returns a :class:`RigCalibration`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from panoedge.errors import UsageError
from panoedge.results import Result, json_field
from panoedge.stitch.calibrate import DEFAULT_REFINE, calibrate
from panoedge.stitch.rig import Rig

__all__ = ["CIRCLE_MODES", "RigCalibration", "calibrate_files", "calibration_frames"]

CIRCLE_MODES = {"auto": "auto", "yes": True, "no": False}
"""``--circles`` word -> :func:`~panoedge.stitch.calibrate.calibrate`'s ``circles``."""
LABEL_CHARS = 48
"""Frame labels (file names) are cut to this many characters in the per-frame table."""


def calibration_frames(paths, rig: Rig, video_frames: int) -> tuple[list, list[str]]:
    """The frames of ``paths`` for ``rig`` and a label (file name, ``video#i``) for each: images,
    front/back files and folders of them (each pair once), ``video_frames`` frames spread over each video."""
    from panoedge.stitch.frames import partner_path, read_frame
    from panoedge.stitch.run import VIDEO_EXTS, folder_items, sample_video_frames

    items, labels, seen = [], [], set()
    for p in map(Path, paths):
        if p.suffix.lower() in VIDEO_EXTS:
            if rig.layout == "separate":
                raise UsageError(f"{p}: a separate-file rig ({rig.name}) takes front/back image pairs, not a video")
            for label, frame in sample_video_frames(p, video_frames):
                items.append(frame)
                labels.append(label)
            continue
        for group in (folder_items(p, rig) if p.is_dir() else [[p]]):
            key = tuple(sorted(partner_path(group[0]) or group)) if rig.layout == "separate" else tuple(group)
            if key not in seen:
                seen.add(key)
                items.append(read_frame(rig, group))
                labels.append(Path(group[0]).name)
    return items, labels


@dataclass(frozen=True)
class RigCalibration(Result):
    """A self-calibration written to a rig file: the file (``rig``) and the figures of
    :meth:`~panoedge.stitch.calibrate.CalibrationResult.to_dict`; ``start`` and ``calibrated`` (the
    rigs) are for :meth:`format`, not the JSON."""

    SCHEMA: ClassVar[str] = "panoedge.calibration/1"

    rig: str
    n_frames: int
    circles: list
    residual_before: dict
    residual_after: dict
    rounds: list
    relative_ypr_deg: list
    fov_deg: list
    parallax_deg: dict
    per_frame: list
    start: Rig | None = json_field(json=False, default=None)
    calibrated: Rig | None = json_field(json=False, default=None)

    def format(self) -> str:
        from panoedge.geometry import ypr_from_rotation

        start, rig = self.start, self.calibrated
        ypr0 = np.rad2deg(ypr_from_rotation(start.relative_rotation()))
        lines = [f"calibrated {start.name} from {self.n_frames} frame(s) -> {self.rig}"]
        for i, c in enumerate(self.circles):
            lens = rig.lenses[i]
            src = "found" if c else "kept"
            lines.append(f"  lens {i} ({lens.name}): circle {src} centre ({lens.center_x_px:.1f}, "
                         f"{lens.center_y_px:.1f}) px, radius {lens.radius_px:.1f} px, fov {lens.fov_deg:.2f} deg")
        y, p, r = self.relative_ypr_deg
        lines.append(f"  lens 1 relative to lens 0: yaw {y:.3f}  pitch {p:.3f}  roll {r:.3f} deg "
                     f"(start {ypr0[0]:.3f} {ypr0[1]:.3f} {ypr0[2]:.3f})")
        b, a = self.residual_before, self.residual_after
        lines.append(f"  residual (median angle between matched rays): {b['median_deg']:.3f} deg ({b['n']} matches) -> "
                     f"{a['median_deg']:.3f} deg ({a['n']} matches)")
        if len(self.per_frame) > 1:
            for pf in self.per_frame:
                b, a = pf["before"], pf["after"]
                lines.append(f"    {pf['label'][:LABEL_CHARS]:<{LABEL_CHARS}} {b['median_deg']:.3f} deg ({b['n']}) -> "
                             f"{a['median_deg']:.3f} deg ({a['n']})")
        para = ", ".join(f"{k} {v:.2f} deg" for k, v in self.parallax_deg.items())
        lines.append(f"  parallax floor of the baseline: {para}" if any(self.parallax_deg.values()) else
                     "  parallax floor: baseline unknown (no translation_m in the rig)")
        return "\n".join(lines)


def calibrate_files(frames, init: Rig, out: str | Path, *, refine=DEFAULT_REFINE, circles: str = "auto",
                    depth_m: float | None = None, video_frames: int = 5) -> RigCalibration:
    """Self-calibrate ``init`` from the frames in ``frames`` (paths, see :func:`calibration_frames`), write
    the calibrated rig to ``out`` (named after its stem) and return the report.

    ``circles``: ``auto``, ``yes`` or ``no`` (:data:`CIRCLE_MODES`); the rest as
    :func:`~panoedge.stitch.calibrate.calibrate` takes them.
    """
    from panoedge.stitch.rig import save_rig

    if circles not in CIRCLE_MODES:
        raise UsageError(f"--circles {circles!r}: expected one of {', '.join(CIRCLE_MODES)}")
    out = Path(out)
    imgs, labels = calibration_frames(frames, init, video_frames)
    res = calibrate(imgs, init, refine=tuple(refine), circles=CIRCLE_MODES[circles], depth_m=depth_m, labels=labels)
    rig = res.annotated_rig(out.stem)
    save_rig(rig, out)
    return RigCalibration(rig=str(out), **res.to_dict(), start=init, calibrated=rig)
