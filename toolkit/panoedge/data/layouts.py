"""The published layouts of labelled panoramic datasets, read as they are on disk.

``structured3d:PATH``, ``stanford2d3d:PATH`` and ``matterport3d:PATH`` name a dataset in its own
layout, with its own class ids and depth units; each is read through a class map onto a
student's classes (default: the layout's ``*_to_indoor`` map), so evaluation and diagnostics see
the same class ids as the student. Layouts (what each loader looks for below ``PATH``):

* **Structured3D** (``data_organization.md`` of the official repository):
  ``scene_*/2D_rendering/ROOM/panorama/full/{rgb_rawlight,rgb_coldlight,rgb_warmlight}.png``,
  ``depth.png`` (uint16 millimetres, 0 = no reading) and ``semantic.png`` (palette PNG whose
  index is the NYU40 id, 0 = unlabelled). Stem ``scene_03262__581``.
* **Stanford2D3D** (2D-3D-Semantics): ``area_*/pano/rgb/*_rgb.png``, ``pano/depth/*_depth.png``
  (uint16 in 1/512 m, 65535 = no reading) and ``pano/semantic/*_semantic.png``, whose RGB encodes
  an index ``R * 65536 + G * 256 + B`` into ``semantic_labels.json`` (in ``PATH`` or
  ``PATH/assets``; names like ``chair_3_office_1``, the class is the part before the first ``_``).
* **Matterport3D** panoramas (the stitched 360 version used by panoramic depth work, e.g.
  SliceNet): ``**/*_color.{png,jpg}`` (or ``*_rgb``), ``*_depth.png`` (uint16 in 1/4000 m,
  0 = no reading) and, where present, ``*_semantic.png`` with mpcat40 ids (0 = void).

Depth becomes range in metres (float32, 0 = invalid), as CONVENTIONS.md has it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from panoedge.data.folder import MODALITIES, DatasetFolder
from panoedge.errors import DataError, UsageError
from panoedge.io import IGNORE, read_rgb

NYU40 = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
         "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
         "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
         "person", "nightstand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture",
         "otherprop")
"""NYUv2 40 classes, ids 1-40 in this order (Structured3D ``metadata/labelids.txt``)."""
STANFORD13 = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase",
              "board", "clutter")
"""2D-3D-Semantics' 13 classes (``<UNK>`` is unlabelled)."""
MPCAT40 = ("wall", "floor", "chair", "door", "table", "picture", "cabinet", "cushion", "window", "sofa", "bed",
           "curtain", "chest_of_drawers", "plant", "sink", "stairs", "ceiling", "toilet", "stool", "towel", "mirror",
           "tv_monitor", "shower", "column", "bathtub", "counter", "fireplace", "lighting", "beam", "railing",
           "shelving", "blinds", "gym_equipment", "seating", "board_panel", "furniture", "appliances", "clothes",
           "objects", "misc")
"""Matterport3D mpcat40, ids 1-40 in this order (0 void, 41 unlabelled)."""

S3D_DEPTH_M = 1e-3
"""Structured3D depth unit: millimetres (``data_organization.md``: 1000 is a metre)."""
STANFORD_DEPTH_M = 1.0 / 512.0
"""2D-3D-Semantics depth unit: 1/512 m (its README), 65535 = no reading."""
STANFORD_INVALID = 65535
MP3D_DEPTH_M = 1.0 / 4000.0
"""Matterport3D depth unit: 1/4000 m (the sensor's; SliceNet's loader divides by 4000)."""
S3D_RGB_NAMES = ("rgb_rawlight", "rgb_coldlight", "rgb_warmlight")
"""Structured3D's renders of a room, in the order the first present one is taken."""


@dataclass(frozen=True)
class Layout:
    """One published layout: native ``classes`` (id ``k`` is ``classes[k - 1]``, 0 unlabelled),
    ``depth_m`` metres per depth unit, ``invalid`` raw depth values with no reading, the shipped
    ``class_map`` used when none is given, ``find`` ``root -> {stem: {modality: path}}`` and
    ``semantic`` ``(path, root) -> native ids (H, W)``."""

    name: str
    classes: tuple[str, ...]
    depth_m: float
    invalid: tuple[int, ...]
    class_map: str
    find: Callable[[Path], dict]
    semantic: Callable[[Path, Path], np.ndarray]


def _read_u16(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        got = "unreadable" if img is None else f"{img.dtype} {img.shape}"
        raise DataError(f"{path}: depth: expected a single-channel 16-bit PNG, got {got}")
    return img


def _palette_ids(path: Path, root: Path) -> np.ndarray:
    """Class ids from a palette (or single-channel) PNG: the pixel value is the id."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DataError(f"{path}: semantic: expected a palette or 8-bit single-channel PNG of class ids, "
                                f"got mode {im.mode}")
            return np.asarray(im, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path}: semantic: not a readable PNG ({err})") from None


def _stanford_ids(path: Path, root: Path) -> np.ndarray:
    """2D-3D-Semantics: RGB-encoded indices into ``semantic_labels.json`` -> STANFORD13 ids (0 = <UNK>)."""
    labels = _stanford_labels(root)
    rgb = read_rgb(path).astype(np.int64)
    idx = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
    lut = np.zeros(len(labels) + 1, np.uint8)
    where = {c: i + 1 for i, c in enumerate(STANFORD13)}
    for i, name in enumerate(labels):
        lut[i] = where.get(str(name).split("_")[0], 0)
    return lut[np.minimum(idx, len(labels))]


def _stanford_labels(root: Path) -> list:
    for p in (root / "semantic_labels.json", root / "assets" / "semantic_labels.json"):
        if p.is_file():
            try:
                labels = json.loads(p.read_text())
            except json.JSONDecodeError as err:
                raise DataError(f"{p}: not valid JSON ({err})") from None
            if not isinstance(labels, list):
                raise DataError(f"{p}: expected a list of label names")
            return labels
    raise DataError(f"{root}: semantic_labels.json not found (looked in {root} and {root / 'assets'}); "
                    "2D-3D-Semantics ships it in assets/")


def _find_s3d(root: Path) -> dict:
    out = {}
    for full in sorted(root.glob("**/2D_rendering/*/panorama/full")):
        room, scene = full.parents[1].name, full.parents[3].name
        rgb = next((full / f"{n}.png" for n in S3D_RGB_NAMES if (full / f"{n}.png").is_file()), None)
        if rgb is None:
            continue
        files = {"rgb": rgb}
        for m, name in (("depth", "depth.png"), ("semantic", "semantic.png")):
            if (full / name).is_file():
                files[m] = full / name
        out[f"{scene}__{room}"] = files
    return out


def _find_stanford(root: Path) -> dict:
    out = {}
    for rgb in sorted(root.glob("**/pano/rgb/*_rgb.png")):
        pano, base = rgb.parents[1], rgb.name[: -len("_rgb.png")]
        area = pano.parent.name
        files = {"rgb": rgb}
        for m in ("depth", "semantic"):
            p = pano / m / f"{base}_{m}.png"
            if p.is_file():
                files[m] = p
        out[f"{area}__{base}"] = files
    return out


def _find_mp3d(root: Path) -> dict:
    out = {}
    for rgb in sorted(root.rglob("*")):
        name = rgb.name.lower()
        tag = next((t for t in ("_color.", "_rgb.") if t in name), None)
        if tag is None or rgb.suffix.lower() not in (".png", ".jpg", ".jpeg") or not rgb.is_file():
            continue
        base = rgb.name[: name.index(tag)]
        files = {"rgb": rgb}
        for m in ("depth", "semantic"):
            p = rgb.with_name(f"{base}_{m}.png")
            if p.is_file():
                files[m] = p
        stem = rgb.relative_to(root).parent.joinpath(base).as_posix().replace("/", "__")
        out[stem] = files
    return out


LAYOUTS: dict[str, Layout] = {
    "structured3d": Layout(name="structured3d", classes=NYU40, depth_m=S3D_DEPTH_M, invalid=(0,),
                           class_map="nyu40_to_indoor", find=_find_s3d, semantic=_palette_ids),
    "stanford2d3d": Layout(name="stanford2d3d", classes=STANFORD13, depth_m=STANFORD_DEPTH_M,
                           invalid=(0, STANFORD_INVALID), class_map="stanford13_to_indoor", find=_find_stanford,
                           semantic=_stanford_ids),
    "matterport3d": Layout(name="matterport3d", classes=MPCAT40, depth_m=MP3D_DEPTH_M, invalid=(0,),
                           class_map="mpcat40_to_indoor", find=_find_mp3d, semantic=_palette_ids),
}
"""Layout name (the ``NAME:`` of a data spec) -> :class:`Layout`."""


@dataclass
class LayoutDataset(DatasetFolder):
    """A dataset in a published ``layout``, read through ``class_map`` (default: the layout's own)
    with the :class:`DatasetFolder` interface: ``classes`` are the map's target (student) classes
    and ``load`` returns ``semantic`` in them (255 where the map ignores a class or unlabelled)."""

    layout: Layout = None
    class_map: str | None = None
    _lut: np.ndarray = field(init=False, repr=False, default=None)

    def __post_init__(self):
        super().__post_init__()
        from panoedge.data.classmap import load_class_map, map_target_classes

        name = self.class_map or self.layout.class_map
        cmap = load_class_map(name, self.layout.classes, map_target_classes(name))
        self.mapping = cmap
        lut = np.full(256, IGNORE, np.uint8)
        lut[1:len(cmap.index) + 1] = cmap.label_lut()
        self._lut = lut

    @cached_property
    def meta(self) -> dict:
        from panoedge.synth.world import FAMILIES

        fam = self.mapping.target_family
        return {"classes": list(self.mapping.target), "source": f"{self.layout.name}:{self.root}",
                "family": fam if fam in FAMILIES else None, "class_map": str(self.mapping.path),
                "native_classes": list(self.layout.classes)}

    @property
    def colors(self) -> np.ndarray:
        from panoedge.synth.world import class_colors

        fam = self.meta["family"]
        return class_colors(fam) if fam else super().colors

    @cached_property
    def files(self) -> dict[str, dict[str, Path]]:
        found = self.layout.find(self.root)
        if not found:
            raise DataError(f"{self.root}: no panoramas in the {self.layout.name} layout (see panoedge.data.layouts)")
        files = {m: {} for m in MODALITIES}
        for stem, mods in found.items():
            for m, p in mods.items():
                files[m][stem] = p
        return files

    def load(self, stem: str, modalities=None) -> dict[str, np.ndarray]:
        out = {}
        for m in modalities or self.modalities:
            path = self.files.get(m, {}).get(stem)
            if path is None:
                continue
            if m == "rgb":
                out[m] = read_rgb(path)
            elif m == "depth":
                raw = _read_u16(path)
                ok = ~np.isin(raw, self.layout.invalid)
                out[m] = np.where(ok, raw.astype(np.float32) * np.float32(self.layout.depth_m), 0.0).astype(np.float32)
            elif m == "semantic":
                out[m] = self._lut[self.layout.semantic(path, self.root)]
        return out


def layout_dataset(name: str, path: str, class_map: str | None = None) -> LayoutDataset:
    """``NAME:PATH`` -> :class:`LayoutDataset`; unknown names list the known layouts."""
    from panoedge.errors import unknown_name

    if name not in LAYOUTS:
        raise unknown_name("dataset layout", name, LAYOUTS)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UsageError(f"{name}:{path}: no such folder")
    return LayoutDataset(root, layout=LAYOUTS[name], class_map=class_map)
