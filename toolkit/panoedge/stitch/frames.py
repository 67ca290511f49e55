"""Dual-fisheye frames as the stitcher takes them: validation, front/back pairs, reading files.

A rig's frame is one image (``side_by_side`` or ``stacked`` layouts: ``(H, W, 3) uint8`` RGB of
the rig's ``image_height_px x image_width_px``) or, for ``separate`` layouts (GoPro Fusion), a
``(front, back)`` pair of images of that size each, or both already side by side.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.io import read_rgb
from panoedge.stitch.rig import Rig

# (front token, back token) pairs in file names, as cameras and tools write them.
PAIR_TOKENS = (("front", "back"), ("FRONT", "BACK"), ("Front", "Back"), ("GPFR", "GPBK"), ("GF", "GB"),
               ("FR", "BK"), ("_f", "_b"))


def _check_image(img, what: str, hw) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise UsageError(f"{what}: expected a numpy image, got {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise UsageError(f"{what}: expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
    if img.shape[:2] != tuple(hw):
        raise UsageError(f"{what} is {img.shape[1]}x{img.shape[0]} (WxH) but the rig expects "
                         f"{hw[1]}x{hw[0]}; use the rig made for this camera mode (or `panoedge rig calibrate`)")
    return img


def check_frame(rig: Rig, frame) -> list[np.ndarray]:
    """The frame's lens images after checking them against ``rig``; a clear error otherwise."""
    h, w = rig.frame_hw
    if rig.layout == "separate":
        if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[:2] == (h, 2 * w):
            return [_check_image(frame, "frame", (h, 2 * w))]
        if not isinstance(frame, (tuple, list)) or len(frame) != 2:
            raise UsageError(f"rig {rig.name} stores the lenses in separate files: pass a (front, back) pair of "
                             f"{w}x{h} images")
        return [_check_image(f, name, (h, w)) for f, name in zip(frame, ("front image", "back image"))]
    return [_check_image(frame, "frame", (h, w))]


def as_canvas_input(rig: Rig, frame) -> list[tuple[tuple[int, int], np.ndarray]]:
    """``[((x0, x1), image), ...]``: where each checked image goes in the stitcher's canvas."""
    parts = check_frame(rig, frame)
    if len(parts) == 2:
        w = rig.image_width_px
        return [((0, w), parts[0]), ((w, 2 * w), parts[1])]
    return [((0, parts[0].shape[1]), parts[0])]


def partner_path(path: str | Path) -> tuple[Path, Path] | None:
    """``(front, back)`` for one file of a pair named with front/back tokens, if the other exists."""
    path = Path(path)
    name = path.name
    for front, back in PAIR_TOKENS:
        for a, b, is_front in ((front, back, True), (back, front, False)):
            for m in re.finditer(re.escape(a), name):
                other = path.with_name(name[: m.start()] + b + name[m.end():])
                if other != path and other.is_file():
                    return (path, other) if is_front else (other, path)
    return None


def read_frame(rig: Rig, paths) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Read one frame for ``rig`` from an image path, or a ``(front, back)`` pair of paths.

    For separate-file rigs a single path finds its partner by name (``*_front*``/``*_back*``,
    GoPro's ``GPFR``/``GPBK``, ``GF``/``GB``). Unreadable files and wrong sizes are clear errors.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if rig.layout == "separate":
        if len(paths) == 1:
            pair = partner_path(paths[0])
            if pair is None:
                raise DataError(f"{paths[0]}: rig {rig.name} needs a front/back pair and no partner file was found "
                                "(name them *_front*/*_back*, or pass both files)")
            paths = list(pair)
        if len(paths) != 2:
            raise UsageError(f"expected a front and a back image, got {len(paths)} paths")
        frame = (read_rgb(paths[0]), read_rgb(paths[1]))
    else:
        if len(paths) != 1:
            raise UsageError(f"rig {rig.name} ({rig.layout}) takes one image per frame, got {len(paths)}")
        frame = read_rgb(paths[0])
    try:
        check_frame(rig, frame)
    except UsageError as e:
        raise UsageError(f"{', '.join(map(str, paths))}: {e}") from None
    return frame


def frame_parts(rig: Rig, frame) -> list[np.ndarray]:
    """The two lens images of a frame, each cropped to the lens's own region (for circle finding)."""
    checked = check_frame(rig, frame)
    canvas = checked[0] if len(checked) == 1 else np.concatenate(checked, axis=1)
    out = []
    for i in range(2):
        x0, y0, x1, y1 = rig.lens_region(i)
        out.append(canvas[y0:y1, x0:x1])
    return out
