"""Stitch files: an image (or a front/back pair), a folder of them, or a video (``panoedge stitch``).

The output is the same kind as the input: an image file, a folder of images (same stems, PNG
unless the output folder name says otherwise), or a video (``.mp4``/``.mov`` as MPEG-4,
``.avi`` as MJPG, ``.mkv`` as XVID). A frame of a video or folder that cannot be read, or has
the wrong size for the rig, is skipped and counted; a single bad image is an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator

import cv2
import numpy as np

from panoedge.errors import DataError, PanoedgeError, UsageError
from panoedge.io import IMAGE_EXTS, write_rgb
from panoedge.results import Result, json_field
from panoedge.stitch.frames import PAIR_TOKENS, partner_path, read_frame
from panoedge.stitch.rig import Rig
from panoedge.stitch.stitcher import Stitcher

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
MAX_UNDECODABLE_RUN = 25
"""Undecodable frames in a row after which a video is taken to have ended (a damaged stretch is skipped
frame by frame; a container whose count overstates its frames would otherwise be read for ever)."""
FALLBACK_VIDEO_FPS = 30.0
"""Frame rate of the stitched video when the input does not declare one (the commonest camera rate)."""
VIDEO_EXPOSURE_SMOOTHING = 0.8
"""Weight of the previous frames' exposure gains when stitching a video (temporal smoothing, no flicker)."""
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".webm": "mp4v"}


@dataclass
class _Tally:
    """What a run has done so far (filled while it runs; :class:`StitchRun` is the frozen report)."""

    frames: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)


SKIPPED_REASONS_KEPT = 20
"""Reasons for skipped frames kept in the report (the count is exact; a damaged video can skip thousands)."""
SKIPPED_REASONS_SHOWN = 5
"""Reasons for skipped frames (and level estimates) the human text shows."""


@dataclass(frozen=True)
class StitchRun(Result):
    """What ``panoedge stitch`` did: frames stitched, frames skipped (with why), output path, timing.

    ``level``: the horizon estimates of ``level="auto"`` (:meth:`~panoedge.stitch.level.Gravity.to_dict`).
    """

    SCHEMA: ClassVar[str] = "panoedge.stitch/1"

    rig: str
    kind: str
    out: Path
    frames: int = 0
    skipped: int = 0
    reasons: list = json_field(key="skipped_reasons", default_factory=list)
    seconds: float = 0.0
    fps: float | None = None
    levels: list = json_field(key="level", default_factory=list)

    def format(self) -> str:
        skipped = f", skipped {self.skipped} bad frame(s)" if self.skipped else ""
        fps = f" ({self.frames / self.seconds:.1f} frames/s)" if self.seconds > 0 and self.frames > 1 else ""
        lines = [f"stitched {self.frames} frame(s) with rig {self.rig} -> {self.out}{skipped}{fps}"]
        lines += [f"  skipped: {why}" for why in self.reasons[:SKIPPED_REASONS_SHOWN]]
        for g in self.levels[:SKIPPED_REASONS_SHOWN]:
            inl = f" ({g['inliers']} of {g['segments']} segments vertical)" if "inliers" in g else ""
            lines.append(f"  level: {g['source']} confidence {g['confidence']:.2f}, pitch {g['pitch_deg']:.2f}° roll "
                         f"{g['roll_deg']:.2f}°{inl}")
        return "\n".join(lines)


def input_kind(inputs: list[Path]) -> str:
    """``image``, ``pair``, ``folder`` or ``video`` for the given input paths."""
    if len(inputs) == 2:
        return "pair"
    if len(inputs) != 1:
        raise UsageError(f"expected one input (image, folder or video) or a front/back pair, got {len(inputs)}")
    p = inputs[0]
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.suffix.lower() in VIDEO_EXTS:
        return "video"
    if p.suffix.lower() in IMAGE_EXTS:
        return "image"
    raise UsageError(f"{p}: not an image ({', '.join(IMAGE_EXTS)}) or video ({', '.join(VIDEO_EXTS)})")


def first_frame_hw(inputs: list[Path]) -> tuple[int, int]:
    """Height and width of the first frame of the input (for the generic rig)."""
    kind = input_kind(inputs)
    if kind == "video":
        from panoedge.image_guard import check_frame_size

        cap = cv2.VideoCapture(str(inputs[0]))
        check_frame_size(cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), inputs[0])
        ok, img = cap.read()
        cap.release()
        if not ok:
            raise DataError(f"{inputs[0]}: no readable frame")
        return img.shape[:2]
    path = inputs[0] if kind != "folder" else next(iter(folder_items(inputs[0], None)), [None])[0]
    if path is None:
        raise DataError(f"{inputs[0]}: no images in this folder")
    from panoedge.image_guard import check_image_file

    w, h = check_image_file(path)
    return h, w


def folder_items(folder: Path, rig: Rig | None) -> list[list[Path]]:
    """The folder's frames, sorted: single images, or front/back pairs for separate-file rigs."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if rig is None or rig.layout != "separate":
        return [[p] for p in files]
    items, used = [], set()
    for p in files:
        if p in used:
            continue
        pair = partner_path(p)
        if pair is not None:
            used.update(pair)
            items.append(list(pair))
    return items




def _out_stem(paths: list[Path]) -> str:
    stem = paths[0].stem
    if len(paths) == 2:
        for front, _ in PAIR_TOKENS:
            if front in stem:
                return stem.replace(front, "erp", 1)
    return stem


def iter_video(path: Path) -> Iterator[np.ndarray | None]:
    """RGB frames of a video; ``None`` for a frame that could not be decoded (then reading goes on)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: not a readable video")
    from panoedge.image_guard import check_frame_size

    check_frame_size(cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    index, misses = 0, 0
    try:
        while True:
            ok, bgr = cap.read()
            if ok:
                misses = 0
                index += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                continue
            if total and index < total and misses < MAX_UNDECODABLE_RUN:
                misses += 1
                index += 1
                yield None
                continue
            break
    finally:
        cap.release()


def sample_video_frames(path: Path, n: int) -> list[tuple[str, np.ndarray]]:
    """``n`` frames spread evenly over a video, as ``(label, RGB frame)`` (for calibration: scenes
    a few seconds apart say more than neighbouring frames)."""
    if n < 1:
        raise UsageError(f"video frames {n}: expected at least 1")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: not a readable video")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
        wanted = sorted(set(np.linspace(0, max(total - 1, 0), n).round().astype(int).tolist())) if total else []
        out = []
        for i in wanted:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, bgr = cap.read()
            if ok:
                out.append((f"{path.name}#{i}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    finally:
        cap.release()
    if not out:  # no frame count or no seeking: take the first n frames that decode
        out = [(f"{path.name}#{i}", f) for i, f in enumerate(iter_video(path)) if f is not None][:n]
    if not out:
        raise DataError(f"{path}: no readable frame")
    return out


def stitch_files(inputs, rig: Rig, out: Path, out_hw=None, *, blend: str = "feather", exposure: bool = True,
                 level=None, band_deg: float = 5.0, device: str = "auto", progress: bool = True) -> StitchRun:
    """Stitch ``inputs`` (see :func:`input_kind`) with ``rig`` into ``out`` (see the module docstring).

    ``level``: an optional rig-to-world rotation applied to every frame (horizon levelling), or
    ``"auto"``: each frame's vertical from its own lines (:class:`~panoedge.stitch.level.AutoLevel`;
    once for a video, per image for a folder), reported in :attr:`StitchRun.levels`. A video is stitched
    with exposure smoothing :data:`VIDEO_EXPOSURE_SMOOTHING` (one scene, gains drift slowly); images
    and folders without (each frame may be another scene).
    """
    from panoedge.progress import tqdm

    inputs = [Path(p) for p in inputs]
    out = Path(out)
    kind = input_kind(inputs)
    video = kind == "video"
    st = Stitcher(rig, out_hw, blend=blend, band_deg=band_deg, exposure=exposure, device=device,
                  smoothing=VIDEO_EXPOSURE_SMOOTHING if video else 0.0, disk_cache=True)
    run = _Tally()
    auto = None
    if isinstance(level, str):
        if level != "auto":
            raise UsageError(f"level {level!r}: expected 'auto' or a rotation matrix")
        from panoedge.stitch.level_hooks import AutoLevel

        auto = AutoLevel(per_frame=not video)

    def stitch(frame):
        return st.stitch(frame, auto.rotation(st, frame) if auto is not None else level)

    t0 = time.perf_counter()
    if kind in ("image", "pair"):
        if out.suffix.lower() not in IMAGE_EXTS:
            raise UsageError(f"{out}: the input is an image, so OUT must be an image file ({', '.join(IMAGE_EXTS)})")
        write_rgb(out, stitch(read_frame(rig, inputs)))
        run.frames = 1
    elif kind == "folder":
        if out.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS:
            raise UsageError(f"{out}: the input is a folder, so OUT must be a folder")
        items = folder_items(inputs[0], rig)
        if not items:
            raise DataError(f"{inputs[0]}: no {'front/back image pairs' if rig.layout == 'separate' else 'images'} found")
        for paths in tqdm(items, desc="stitch", unit="frame", disable=not progress):
            try:
                erp = stitch(read_frame(rig, paths))
            except (DataError, UsageError) as e:
                run.skipped += 1
                run.reasons.append(str(e))
                continue
            write_rgb(out / f"{_out_stem(paths)}.png", erp)
            run.frames += 1
    else:
        _stitch_video(stitch, inputs[0], out, run=run, progress=progress, out_hw=st.out_hw)
    seconds = time.perf_counter() - t0
    levels = [g.to_dict() for g in auto.estimates] if auto is not None else []
    st.close()
    return StitchRun(rig=rig.name, kind=kind, out=out, frames=run.frames, skipped=run.skipped,
                     reasons=run.reasons[:SKIPPED_REASONS_KEPT], seconds=seconds,
                     fps=run.frames / seconds if seconds > 0 else None, levels=levels)


def _stitch_video(stitch, src: Path, out: Path, run: _Tally, progress: bool, out_hw) -> None:
    from panoedge.progress import tqdm

    if out.suffix.lower() not in VIDEO_EXTS:
        raise UsageError(f"{out}: the input is a video, so OUT must be a video file ({', '.join(VIDEO_EXTS)})")
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or FALLBACK_VIDEO_FPS
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    cap.release()
    h, w = out_hw
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*_FOURCC.get(out.suffix.lower(), "mp4v")), fps, (w, h))
    if not writer.isOpened():
        raise DataError(f"{out}: OpenCV cannot write this video format here")
    try:
        for i, frame in enumerate(tqdm(iter_video(src), total=total, desc="stitch", unit="frame", disable=not progress)):
            if frame is None:
                run.skipped += 1
                run.reasons.append(f"frame {i}: could not be decoded")
                continue
            try:
                erp = stitch(frame)
            except PanoedgeError as e:
                run.skipped += 1
                run.reasons.append(f"frame {i}: {e}")
                continue
            writer.write(cv2.cvtColor(erp, cv2.COLOR_RGB2BGR))
            run.frames += 1
    finally:
        writer.release()
    if run.frames == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{src}: no frame could be stitched ({run.skipped} skipped: {run.reasons[:1]})")
    tmp.replace(out)
