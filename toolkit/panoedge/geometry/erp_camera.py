"""The ERP "camera": the whole sphere on an ``H x W`` grid, with the same interface as the
pinhole and fisheye cameras (``rays()`` and ``project()``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.geometry.sphere import check_erp_size, erp_rays, lonlat_to_erp_pixel, ray_to_lonlat


@dataclass(frozen=True)
class ErpCamera:
    """An equirectangular image of ``h x w`` pixels (``w == 2 h``); every pixel is valid."""

    h: int
    w: int

    def __post_init__(self):
        check_erp_size(self.h, self.w)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rays (H, W, 3), valid (H, W))``."""
        return erp_rays(self.h, self.w), np.ones((self.h, self.w), dtype=bool)

    def project(self, rays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, valid)``: every direction lands somewhere on the ERP image."""
        lon, lat = ray_to_lonlat(rays)
        u, v = lonlat_to_erp_pixel(lon, lat, self.h, self.w)
        return u, v, np.ones(np.shape(u), dtype=bool)
