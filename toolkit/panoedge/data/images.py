"""A plain folder of ERP panoramas: any 2:1 size, PNG or JPEG, found recursively, no ``meta.json``.

This is what a robot records: a folder (with sub-folders per session) of panoramas and nothing
else. There are no labels and no class names (``classes`` is ``None``): a student distilled from
it takes its classes from the class map, the label-free clusters or the teacher.
Stems are the paths below the folder without the extension, with ``/`` written as ``__``
(``day1/cam/0001.jpg`` -> ``day1__cam__0001``), so outputs keyed by stem stay flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from panoedge.data.folder import MODALITIES, DatasetFolder
from panoedge.errors import DataError
from panoedge.io import IMAGE_EXTS

STEM_SEP = "__"
"""Stands for ``/`` in the stems of images found in sub-folders."""


def find_images(root: Path) -> dict[str, Path]:
    """``stem -> file`` for every image below ``root`` (hidden files and folders skipped), sorted.

    Two files that give the same stem (``a.png`` and ``a.jpg``) are a ``DataError`` naming both.
    """
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS or any(part.startswith(".") for part in rel.parts):
            continue
        stem = rel.with_suffix("").as_posix().replace("/", STEM_SEP)
        if stem in out:
            raise DataError(f"{out[stem]} and {p}: two images with the same name; rename one")
        out[stem] = p
    return out


@dataclass
class ImageFolder(DatasetFolder):
    """Read access to a plain folder of ERP images, with the :class:`DatasetFolder` interface
    (``stems``, ``files``, ``load``); only the ``rgb`` modality, no classes."""

    @cached_property
    def meta(self) -> dict:
        return {"classes": None, "source": "images", "family": None}

    @property
    def classes(self):
        return None

    @property
    def colors(self):
        return None

    @cached_property
    def files(self) -> dict[str, dict[str, Path]]:
        files = {m: {} for m in MODALITIES}
        files["rgb"] = find_images(self.root)
        if not files["rgb"]:
            raise DataError(f"{self.root}: no images ({', '.join(IMAGE_EXTS)}) in this folder or below")
        return files
