"""Sampling maps built once and reused: fixed-point ``cv2.remap`` tables, torch grids.

A :class:`RemapTable` samples a source image at float coordinates ``(map_x, map_y)`` given
per output pixel (pixel-centre convention, as ``cv2.remap``). Built once per geometry and
cached by the callers; applying it is one ``cv2.remap`` call on fixed-point maps
(``CV_16SC2`` + interpolation table, 1/32 px precision), all channels at once.

ERP sources wrap at the seam: with ``wrap_x=True``, x is taken modulo the source width and
sampled with ``BORDER_WRAP``, while y is clamped to the image (the poles never wrap onto the
opposite edge). Other sources use a constant border and report where the map falls outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

_INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def _interp_flag(name: str) -> int:
    try:
        return _INTERP[name]
    except KeyError:
        from panoedge.errors import unknown_name

        raise unknown_name("interpolation", name, _INTERP) from None


@dataclass
class RemapTable:
    """Where each output pixel samples its source; ``valid`` marks outputs with a source.

    Shapes: ``map1 (H, W, 2) int16``, ``map2 (H, W) uint16``, ``valid (H, W) bool``;
    ``src_hw`` is the size of the images this table takes.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    src_hw: tuple[int, int]
    wrap_x: bool = False
    valid: np.ndarray | None = None
    _fixed: tuple | None = field(default=None, repr=False)
    _nearest: tuple | None = field(default=None, repr=False)
    _invalid: tuple | None = field(default=None, repr=False)

    @classmethod
    def from_float(cls, map_x, map_y, src_hw, wrap_x: bool = False, valid=None) -> "RemapTable":
        """Build from float source coordinates (any float dtype); NaNs mark invalid outputs."""
        h_src, w_src = int(src_hw[0]), int(src_hw[1])
        mx = np.asarray(map_x, dtype=np.float64)
        my = np.asarray(map_y, dtype=np.float64)
        ok = np.isfinite(mx) & np.isfinite(my)
        if valid is not None:
            ok &= np.asarray(valid, dtype=bool)
        mx = np.where(ok, mx, -10.0)
        my = np.where(ok, my, -10.0)
        if wrap_x:
            mx = np.where(ok, np.mod(mx, w_src), mx)
            my = np.where(ok, np.clip(my, 0.0, h_src - 1.0), my)
        else:
            ok &= (mx > -1.0) & (mx < w_src) & (my > -1.0) & (my < h_src)
        return cls(mx.astype(np.float32), my.astype(np.float32), (h_src, w_src), wrap_x, ok)

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.map_x.shape[:2]

    def fixed_point(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(CV_16SC2, CV_16UC1)`` maps ``cv2.remap`` runs fastest on (built once)."""
        if self._fixed is None:
            self._fixed = cv2.convertMaps(self.map_x, self.map_y, cv2.CV_16SC2, nninterpolation=False)
        return self._fixed

    def _nearest_maps(self) -> tuple[np.ndarray, None]:
        if self._nearest is None:
            m1, _ = cv2.convertMaps(self.map_x, self.map_y, cv2.CV_16SC2, nninterpolation=True)
            self._nearest = (m1, None)
        return self._nearest

    def _border(self) -> int:
        return cv2.BORDER_WRAP if self.wrap_x else cv2.BORDER_CONSTANT

    def apply(self, img: np.ndarray, interpolation: str = "linear", fill=0, dst: np.ndarray | None = None) -> np.ndarray:
        """Sample ``img`` (``(H, W)`` or ``(H, W, C)``, uint8/uint16/float) through the table.

        Output pixels without a source get ``fill``. Images with more than 4 channels are
        remapped 4 channels at a time (OpenCV's limit).
        """
        img = np.asarray(img)
        if img.shape[:2] != tuple(self.src_hw):
            from panoedge.errors import UsageError

            raise UsageError(f"image of size {img.shape[1]}x{img.shape[0]} (WxH) given to a table built for "
                             f"{self.src_hw[1]}x{self.src_hw[0]}")
        flag = _interp_flag(interpolation)
        m1, m2 = self._nearest_maps() if flag == cv2.INTER_NEAREST else self.fixed_point()
        if img.dtype == np.bool_:
            return self.apply(img.view(np.uint8), interpolation="nearest", fill=int(bool(fill))).view(np.bool_)
        if img.dtype in (np.int64, np.uint32, np.int32) and flag == cv2.INTER_NEAREST:
            out = self.apply(img.astype(np.float64), "nearest", fill)
            return out.astype(img.dtype)
        if img.ndim == 3 and img.shape[2] > 4:
            parts = [self.apply(img[..., i : i + 4], interpolation, fill) for i in range(0, img.shape[2], 4)]
            return np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2)
        out = cv2.remap(img, m1, m2, flag, dst=dst, borderMode=self._border(), borderValue=0)
        if img.ndim == 3 and out.ndim == 2:
            out = out[..., None]
        invalid = self._invalid_index()
        if invalid[0].size:
            out[invalid] = fill
        return out

    def _invalid_index(self) -> tuple:
        """Row and column indices of outputs without a source (computed once)."""
        if self._invalid is None:
            self._invalid = np.nonzero(~self.valid) if self.valid is not None else (np.array([], int),) * 2
        return self._invalid

    def torch_grid(self):
        """A ``grid_sample`` grid ``(1, H, W, 2)`` (``align_corners=False``) and the padding it needs.

        For wrapping sources, pad the source with one column from the other side on each
        edge (``F.pad(x, (1, 1, 0, 0), mode='circular')``) before sampling: the grid is built
        for the padded width. Returns ``(grid, pad_x)``.
        """
        import torch

        h_src, w_src = self.src_hw
        pad = 1 if self.wrap_x else 0
        gx = (self.map_x.astype(np.float64) + pad + 0.5) / (w_src + 2 * pad) * 2.0 - 1.0
        gy = (self.map_y.astype(np.float64) + 0.5) / h_src * 2.0 - 1.0
        if self.valid is not None:
            gx = np.where(self.valid, gx, -2.0)
            gy = np.where(self.valid, gy, -2.0)
        grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(np.float32))[None]
        return grid, pad
