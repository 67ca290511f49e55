"""Dataset folders as CONVENTIONS.md defines them.

A dataset is a folder with ``meta.json`` (classes, colours, source, conventions version) and
parallel sub-folders keyed by the same stem: ``rgb/`` (PNG/JPEG), ``depth/`` (16-bit PNG mm
or ``.npy`` m), ``semantic/`` (uint8 PNG), and for camera rigs ``fisheye/`` plus a rig file.
A missing sub-folder means that modality is absent, never an error by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from panoedge import CONVENTIONS_VERSION
from panoedge.errors import DataError
from panoedge.home import write_json
from panoedge.io import IMAGE_EXTS, read_depth, read_labels, read_rgb
from panoedge.safe_load import load_json

META_SCHEMA = "panoedge.dataset/1"
MODALITIES = ("rgb", "depth", "semantic", "fisheye")


def write_meta(root: str | Path, classes, colors, source: str, **extra) -> Path:
    """Write ``meta.json`` for a dataset folder."""
    meta = {
        "schema": META_SCHEMA,
        "conventions_version": CONVENTIONS_VERSION,
        "classes": list(classes),
        "colors": np.asarray(colors, dtype=int).tolist(),
        "ignore_index": 255,
        "source": source,
        **extra,
    }
    return write_json(Path(root) / "meta.json", meta)


def read_meta(root: str | Path) -> dict:
    """Read and check ``meta.json``; errors name the file and the field."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise DataError(f"{path}: missing; a dataset folder needs a meta.json (see CONVENTIONS.md)")
    meta = load_json(path)
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not classes:
        raise DataError(f"{path}: classes: expected a non-empty list of class names")
    colors = meta.get("colors")
    if colors is not None and (np.shape(colors) != (len(classes), 3)):
        raise DataError(f"{path}: colors: expected one [r, g, b] per class ({len(classes)}), got shape {np.shape(colors)}")
    return meta


@dataclass
class DatasetFolder:
    """Read access to a dataset folder; ``stems`` are sorted and shared by all modalities."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such dataset folder")

    @cached_property
    def meta(self) -> dict:
        return read_meta(self.root)

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def colors(self) -> np.ndarray:
        return np.asarray(self.meta.get("colors") or default_colors(len(self.classes)), dtype=np.uint8)

    def _files(self, modality: str) -> dict[str, Path]:
        folder = self.root / modality
        if not folder.is_dir():
            return {}
        exts = (".png", ".npy") if modality == "depth" else IMAGE_EXTS
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in exts and not p.name.startswith(".")}

    @cached_property
    def files(self) -> dict[str, dict[str, Path]]:
        return {m: self._files(m) for m in MODALITIES}

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if self.files[m]]

    @cached_property
    def stems(self) -> list[str]:
        main = "rgb" if self.files["rgb"] else ("fisheye" if self.files["fisheye"] else None)
        if main is None:
            raise DataError(f"{self.root}: no images in rgb/ or fisheye/")
        return sorted(self.files[main])

    def __len__(self) -> int:
        return len(self.stems)

    def load(self, stem: str, modalities=None) -> dict[str, np.ndarray]:
        """The sample ``stem``: ``rgb (H, W, 3) uint8``, ``depth (H, W) float32 m``, ``semantic (H, W) uint8``."""
        out = {}
        for m in modalities or self.modalities:
            path = self.files[m].get(stem)
            if path is None:
                continue
            out[m] = read_depth(path) if m == "depth" else read_labels(path) if m == "semantic" else read_rgb(path)
        return out


def sample_preview(ds: DatasetFolder, stem: str | None = None) -> np.ndarray:
    """A 2x2 contact sheet of one sample (first by default): RGB | labels over depth | dual-fisheye
    (black where the folder has no fisheye frames), each tile at the panorama's size."""
    import cv2

    from panoedge.io import colorize_depth, colorize_labels

    s = ds.load(stem if stem is not None else ds.stems[0])
    rgb = s["rgb"]
    h, w = rgb.shape[:2]
    fisheye = s.get("fisheye")
    tiles = [rgb, colorize_labels(s["semantic"], ds.colors), colorize_depth(s["depth"]),
             cv2.resize(fisheye, (w, h), interpolation=cv2.INTER_AREA) if fisheye is not None else np.zeros_like(rgb)]
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)


def default_colors(k: int) -> np.ndarray:
    rng = np.random.default_rng(12345)
    return rng.integers(40, 255, (k, 3))
