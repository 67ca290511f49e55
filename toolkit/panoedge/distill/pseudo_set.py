"""Read access to a pseudo-label folder written by :func:`panoedge.distill.pseudo.build_pseudo_labels`.

Layout (see :mod:`panoedge.distill.pseudo`): ``meta.json`` (classes, depth kind, stems, shard
size), ``shard_NNNNN.npz`` (per image ``j`` of the shard: ``probs_j``, ``depth_j``, ``conf_j``,
each read on its own from the zip), ``index.json`` and the ``complete`` marker.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from panoedge.errors import DataError
from panoedge.safe_load import load_json

SCHEMA = "panoedge.pseudo/1"


def shard_name(i: int) -> str:
    """File name of shard ``i``."""
    return f"shard_{i:05d}.npz"


class PseudoLabelSet:
    """Read access to a pseudo-label folder (see the module docstring); ``stems`` sorted."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / "meta.json"
        if not path.is_file():
            raise DataError(f"{self.root}: not a pseudo-label folder (no meta.json)")
        self.meta = load_json(path)
        self.stems: list[str] = list(self.meta["stems"])
        self.classes = tuple(self.meta["classes"]) if self.meta["classes"] is not None else None
        self.depth_kind: str | None = self.meta["depth_kind"]
        self.shard_size = int(self.meta["shard_size"])
        self._where = {s: (i // self.shard_size, i % self.shard_size) for i, s in enumerate(self.stems)}

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def n_shards(self) -> int:
        return math.ceil(len(self.stems) / self.shard_size)

    @property
    def complete(self) -> bool:
        return (self.root / "complete").is_file()

    def missing_shards(self) -> list[int]:
        return [i for i in range(self.n_shards) if not (self.root / shard_name(i)).is_file()]

    def load(self, stem: str) -> dict:
        """``{"probs" (K, H, W) f32 | None, "depth" (H, W) f32 | None, "depth_kind", "conf" (H, W) f32}``."""
        if stem not in self._where:
            raise DataError(f"{self.root}: no pseudo labels for {stem!r}")
        shard, j = self._where[stem]
        path = self.root / shard_name(shard)
        if not path.is_file():
            raise DataError(f"{path}: missing; pseudo labels for {stem!r} are not built yet (build every rank's shards)")
        with np.load(path) as z:
            probs = z[f"probs_{j}"].astype(np.float32) if f"probs_{j}" in z.files else None
            depth = z[f"depth_{j}"].astype(np.float32) if f"depth_{j}" in z.files else None
            conf = z[f"conf_{j}"].astype(np.float32)
        return {"probs": probs, "depth": depth, "depth_kind": self.depth_kind, "conf": conf}
