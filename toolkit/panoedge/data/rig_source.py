"""Dual-fisheye recordings as panoramas: a video or a folder of frames, stitched with a rig.

Every ``every``-th frame is stitched (:class:`panoedge.stitch.Stitcher`) once and kept under
``$PANOEDGE_HOME/stitched/<key>/rgb/`` (key: the rig file's content, the source files' names,
sizes and modification times, ``every`` and the output size), so every command that reads the
same recording with the same rig (distill, eval, predict, calibration) stitches it only once and
a rerun costs nothing. Frames that cannot be decoded or stitched are skipped and counted in
``stitch.json`` beside them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from panoedge.errors import DataError, PanoedgeError, UsageError
from panoedge.home import atomic_dir, cache_dir, content_key, write_json


def _fingerprint(paths) -> list:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def stitched_folder(source: str | Path, rig_spec: str, every: int = 1, out_hw=None, progress: bool = True) -> Path:
    """The cached folder of ERP frames stitched from ``source`` (video or image folder) with the rig
    ``rig_spec`` (file, preset name or ``generic``); builds it on first use. Returns the ``rgb/`` folder."""
    from tqdm import tqdm

    from panoedge.io import write_rgb
    from panoedge.stitch.frames import read_frame
    from panoedge.stitch.presets import resolve_rig
    from panoedge.stitch.run import folder_items, first_frame_hw, input_kind, iter_video
    from panoedge.stitch.stitcher import Stitcher

    if int(every) < 1:
        raise UsageError(f"--every {every}: must be >= 1")
    src = Path(source).expanduser()
    kind = input_kind([src])
    if kind not in ("video", "folder"):
        raise UsageError(f"{src}: --rig stitches a dual-fisheye video or a folder of frames")
    rig = resolve_rig(rig_spec, first_frame_hw([src]) if rig_spec == "generic" else None)
    files = [src] if kind == "video" else [p for item in folder_items(src, rig) for p in item]
    key = content_key("stitched", asdict(rig), _fingerprint(files), int(every),
                      None if out_hw is None else list(out_hw))
    final = cache_dir("stitched", key)
    if (final / "rgb").is_dir():
        return final / "rgb"
    st = Stitcher(rig, out_hw, disk_cache=True)
    stats = {"source": str(src), "rig": rig.name, "every": int(every), "frames": 0, "skipped": []}
    try:
        with atomic_dir(final) as tmp:
            if kind == "video":
                items = ((i, frame) for i, frame in enumerate(iter_video(src)) if i % every == 0)
            else:
                items = ((i, paths) for i, paths in enumerate(folder_items(src, rig)) if i % every == 0)
            for i, item in tqdm(items, desc=f"stitch {src.name} (every {every})", unit="frame", disable=not progress):
                try:
                    if item is None:
                        raise DataError("could not be decoded")
                    erp = st.stitch(item if kind == "video" else read_frame(rig, item))
                except PanoedgeError as err:
                    stats["skipped"].append(f"frame {i}: {err}")
                    continue
                write_rgb(tmp / "rgb" / f"frame{i:06d}.png", erp)
                stats["frames"] += 1
            if not stats["frames"]:
                raise DataError(f"{src}: no frame could be stitched with rig {rig.name} "
                                f"({len(stats['skipped'])} skipped: {stats['skipped'][:1]})")
            write_json(tmp / "stitch.json", {"schema": "panoedge.stitched/1", **stats})
    finally:
        st.close()
    return final / "rgb"
