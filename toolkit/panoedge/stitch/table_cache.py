"""Stitch tables are built once per (rig, output size, band, orientation) and reused.

Two levels: an in-process LRU (:data:`TABLES`, a few entries: tables of a 960x1920 output
take about 40 MB) and, optionally, ``$PANOEDGE_HOME/stitch_tables/<key>.npz`` on disk so a
new process (each ``panoedge stitch`` run, a robot after a reboot) skips the build. The key
hashes the rig's full description, the output size, the band and the rotation, and a format
version: editing the rig file gives new tables, never stale ones.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from panoedge.home import atomic_write_bytes, cache_dir, content_key
from panoedge.stitch.rig import Rig
from panoedge.stitch.tables import StitchTables, build_tables

FORMAT = 3
_ARRAYS = ("main_m1", "main_m2", "band_idx", "strip_m1", "strip_m2", "strip_basis", "gain_basis", "own",
           "seam_deg", "est_idx", "est_w", "r_out")


def tables_key(rig: Rig, out_hw, band_deg: float, r_out) -> str:
    """The content key of a table set (16 hex digits)."""
    return content_key("stitch-tables", FORMAT, rig.to_dict(), [int(x) for x in out_hw], round(float(band_deg), 9),
                       np.round(np.asarray(r_out, dtype=np.float64), 12).ravel().tolist())


def _to_npz(t: StitchTables) -> bytes:
    arrays = dict(zip(_ARRAYS, (*t.main_maps, t.band_idx, *t.strip_maps, t.strip_basis, t.gain_basis, t.own,
                                t.seam_deg, t.est_idx, t.est_w, t.r_out)))
    meta = np.array([t.out_hw[0], t.out_hw[1], t.canvas_hw[0], t.canvas_hw[1], t.strip_rows, t.one,
                     int(t.has_vignetting)], dtype=np.int64)
    buf = io.BytesIO()
    np.savez(buf, meta=meta, band_deg=np.float64(t.band_deg), **arrays)
    return buf.getvalue()


def _from_npz(path: Path, rig: Rig) -> StitchTables:
    with np.load(path) as z:
        a = {k: z[k] for k in _ARRAYS}
        meta = z["meta"]
        band_deg = float(z["band_deg"])
    return StitchTables(
        rig=rig, out_hw=(int(meta[0]), int(meta[1])), band_deg=band_deg, r_out=a["r_out"],
        canvas_hw=(int(meta[2]), int(meta[3])), strip_rows=int(meta[4]), main_maps=(a["main_m1"], a["main_m2"]),
        band_idx=a["band_idx"], strip_maps=(a["strip_m1"], a["strip_m2"]), strip_basis=a["strip_basis"],
        gain_basis=a["gain_basis"], one=int(meta[5]), own=a["own"], seam_deg=a["seam_deg"], est_idx=a["est_idx"],
        est_w=a["est_w"], has_vignetting=bool(meta[6]),
    )


class TableCache:
    """An LRU of built tables keyed by :func:`tables_key`, backed by the disk cache when asked."""

    def __init__(self, size: int = 6):
        self.size = size
        self._items: OrderedDict[str, StitchTables] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0
        self.disk_loads = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, rig: Rig, out_hw, band_deg: float, r_out, disk: bool = False) -> StitchTables:
        key = tables_key(rig, out_hw, band_deg, r_out)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        path = cache_dir("stitch_tables", key[:2]) / f"{key}.npz"
        t = None
        if disk and path.is_file():
            try:
                t = _from_npz(path, rig)
                self.disk_loads += 1
            except (OSError, KeyError, ValueError):  # a damaged cache file: rebuild it
                t = None
        if t is None:
            t = build_tables(rig, out_hw, band_deg, r_out)
            self.builds += 1
            if disk:
                atomic_write_bytes(path, _to_npz(t))
        with self._lock:
            self._items[key] = t
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return t


TABLES = TableCache()
"""The process's table cache (one per process, like ``functools.lru_cache`` on the geometry tables)."""


def get_tables(rig: Rig, out_hw, band_deg: float = 5.0, r_out=None, disk: bool = False) -> StitchTables:
    """Tables for ``rig`` from :data:`TABLES` (built on first use; ``disk`` also uses the disk cache)."""
    r_out = rig.output_rotation if r_out is None else r_out
    return TABLES.get(rig, out_hw, band_deg, r_out, disk=disk)
