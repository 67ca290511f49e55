"""Fisheye lens models and cameras (NumPy).

A lens maps the angle ``theta`` between a ray and the optical axis (+z) to an image radius
``r = f * g(theta)`` in pixels; the azimuth is kept: ``u = cx + r cos(phi)``,
``v = cy + r sin(phi)`` with ``phi = atan2(y, x)`` (x right, y down).

Models (``g`` and the largest ``theta`` where it is invertible):

==================  ===================================  ==================
equidistant         ``theta``                            pi
equisolid           ``2 sin(theta / 2)``                 pi
stereographic       ``2 tan(theta / 2)``                 < pi
orthographic        ``sin(theta)``                       pi / 2
kannala_brandt      ``theta (1 + k1 t^2 + .. + k4 t^8)``  up to pi, while monotonic
==================  ===================================  ==================

All but orthographic are valid beyond 180 degrees of field of view.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from panoedge.errors import UsageError, unknown_name


@dataclass(frozen=True)
class LensModel(ABC):
    """A radially symmetric lens: ``g(theta)``, its inverse and the validity limit."""

    name: str
    n_coeffs: int

    @abstractmethod
    def forward(self, theta, coeffs=()) -> np.ndarray:
        """Normalised radius ``g(theta)`` (image radius divided by the focal length)."""

    @abstractmethod
    def inverse(self, r, coeffs=()) -> np.ndarray:
        """``theta`` from a normalised radius; clipped to the model's valid range."""

    @abstractmethod
    def max_theta(self, coeffs=()) -> float:
        """The largest ``theta`` (radians) where ``g`` is invertible."""


class _Equidistant(LensModel):
    def forward(self, theta, coeffs=()):
        return np.asarray(theta, dtype=np.float64)

    def inverse(self, r, coeffs=()):
        return np.asarray(r, dtype=np.float64)

    def max_theta(self, coeffs=()):
        return np.pi


class _Equisolid(LensModel):
    def forward(self, theta, coeffs=()):
        return 2.0 * np.sin(np.asarray(theta, dtype=np.float64) / 2.0)

    def inverse(self, r, coeffs=()):
        return 2.0 * np.arcsin(np.clip(np.asarray(r, dtype=np.float64) / 2.0, -1.0, 1.0))

    def max_theta(self, coeffs=()):
        return np.pi


class _Stereographic(LensModel):
    def forward(self, theta, coeffs=()):
        return 2.0 * np.tan(np.asarray(theta, dtype=np.float64) / 2.0)

    def inverse(self, r, coeffs=()):
        return 2.0 * np.arctan(np.asarray(r, dtype=np.float64) / 2.0)

    def max_theta(self, coeffs=()):
        return np.pi - 1e-6


class _Orthographic(LensModel):
    def forward(self, theta, coeffs=()):
        return np.sin(np.asarray(theta, dtype=np.float64))

    def inverse(self, r, coeffs=()):
        return np.arcsin(np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0))

    def max_theta(self, coeffs=()):
        return np.pi / 2.0


class _KannalaBrandt(LensModel):
    """``g = theta + k1 theta^3 + k2 theta^5 + k3 theta^7 + k4 theta^9`` (OpenCV's fisheye model)."""

    @staticmethod
    def _k(coeffs):
        k = np.zeros(4)
        c = np.asarray(coeffs, dtype=np.float64).ravel()
        k[: len(c)] = c[:4]
        return k

    def forward(self, theta, coeffs=()):
        k = self._k(coeffs)
        t = np.asarray(theta, dtype=np.float64)
        t2 = t * t
        return t * (1.0 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))

    def _deriv(self, t, k):
        t2 = t * t
        return 1.0 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))

    def max_theta(self, coeffs=()):
        k = self._k(coeffs)
        ts = np.linspace(0.0, np.pi, 4097)
        bad = np.nonzero(self._deriv(ts, k) <= 0)[0]
        return float(np.pi if bad.size == 0 else ts[max(bad[0] - 1, 0)])

    def inverse(self, r, coeffs=()):
        k = self._k(coeffs)
        r = np.asarray(r, dtype=np.float64)
        tmax = self.max_theta(coeffs)
        t = np.clip(r, 0.0, tmax)  # g(theta) ~ theta for small theta: a good start
        for _ in range(30):
            step = (self.forward(t, k) - r) / self._deriv(t, k)
            t = np.clip(t - step, 0.0, tmax)
            if np.all(np.abs(step) < 1e-14):
                break
        return t


LENS_MODELS: dict[str, LensModel] = {
    "equidistant": _Equidistant("equidistant", 0),
    "equisolid": _Equisolid("equisolid", 0),
    "stereographic": _Stereographic("stereographic", 0),
    "orthographic": _Orthographic("orthographic", 0),
    "kannala_brandt": _KannalaBrandt("kannala_brandt", 4),
}


def get_lens_model(name: str) -> LensModel:
    """The lens model registered under ``name``; unknown names list the valid ones."""
    try:
        return LENS_MODELS[name]
    except KeyError:
        raise unknown_name("lens model", name, LENS_MODELS) from None


@dataclass(frozen=True)
class FisheyeCamera:
    """A fisheye camera of ``h x w`` pixels: lens model, focal length ``f_px``, centre, FOV.

    Pixels outside ``fov_deg`` (the full field of view, may exceed 180) are invalid.
    """

    h: int
    w: int
    model: str
    f_px: float
    cx: float
    cy: float
    fov_deg: float
    coeffs: tuple[float, ...] = field(default=())

    def __post_init__(self):
        lens = get_lens_model(self.model)
        if len(self.coeffs) > max(lens.n_coeffs, 0):
            raise UsageError(f"lens model {self.model} takes {lens.n_coeffs} coefficients, got {len(self.coeffs)}")
        if not 0.0 < self.fov_deg <= 360.0:
            raise UsageError(f"fov_deg {self.fov_deg}: expected 0 < fov <= 360")
        if np.deg2rad(self.fov_deg) / 2.0 > lens.max_theta(self.coeffs) + 1e-9:
            limit = np.rad2deg(2 * lens.max_theta(self.coeffs))
            raise UsageError(f"fov_deg {self.fov_deg}: the {self.model} model is valid up to {limit:.1f} degrees")
        if self.f_px <= 0:
            raise UsageError(f"f_px {self.f_px}: expected a positive focal length in pixels")

    @classmethod
    def from_fov(cls, h, w, model: str, fov_deg: float, radius_px=None, center=None, coeffs=()) -> "FisheyeCamera":
        """A fisheye whose image circle of ``radius_px`` (default ``min(h, w) / 2``) spans ``fov_deg``."""
        lens = get_lens_model(model)
        radius = float(min(h, w) / 2.0 if radius_px is None else radius_px)
        g = float(lens.forward(np.deg2rad(fov_deg) / 2.0, coeffs))
        if g <= 0:
            raise UsageError(f"fov_deg {fov_deg}: no image circle for model {model}")
        cx, cy = ((w - 1) / 2.0, (h - 1) / 2.0) if center is None else (float(center[0]), float(center[1]))
        return cls(h=int(h), w=int(w), model=model, f_px=radius / g, cx=cx, cy=cy, fov_deg=float(fov_deg),
                   coeffs=tuple(float(c) for c in coeffs))

    @property
    def lens(self) -> LensModel:
        return LENS_MODELS[self.model]

    @property
    def radius_px(self) -> float:
        """Radius in pixels of the image circle (the edge of ``fov_deg``)."""
        return float(self.f_px * self.lens.forward(np.deg2rad(self.fov_deg) / 2.0, self.coeffs))

    def unproject(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """``(rays (..., 3), valid)`` for pixel coordinates; valid means inside the FOV."""
        du = np.asarray(u, dtype=np.float64) - self.cx
        dv = np.asarray(v, dtype=np.float64) - self.cy
        r = np.hypot(du, dv)
        theta = self.lens.inverse(r / self.f_px, self.coeffs)
        phi = np.arctan2(dv, du)
        s = np.sin(theta)
        rays = np.stack([s * np.cos(phi), s * np.sin(phi), np.cos(theta)], axis=-1)
        in_model = np.abs(self.lens.forward(theta, self.coeffs) * self.f_px - r) < 1e-3
        valid = (theta <= np.deg2rad(self.fov_deg) / 2.0) & in_model
        return rays, valid

    @cached_property
    def _rays(self):
        u, v = np.meshgrid(np.arange(self.w, dtype=np.float64), np.arange(self.h, dtype=np.float64))
        rays, valid = self.unproject(u, v)
        rays.setflags(write=False)
        valid.setflags(write=False)
        return rays, valid

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rays (H, W, 3), valid (H, W))`` in the camera frame."""
        return self._rays

    def project(self, rays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, valid)`` of rays ``(..., 3)``; valid means inside the FOV and the image."""
        rays = np.asarray(rays, dtype=np.float64)
        x, y, z = rays[..., 0], rays[..., 1], rays[..., 2]
        rho = np.hypot(x, y)
        theta = np.arctan2(rho, z)
        r = self.f_px * self.lens.forward(np.minimum(theta, self.lens.max_theta(self.coeffs)), self.coeffs)
        scale = np.where(rho > 1e-15, r / np.where(rho > 1e-15, rho, 1.0), 0.0)
        u = self.cx + x * scale
        v = self.cy + y * scale
        valid = (theta <= np.deg2rad(self.fov_deg) / 2.0) & (u > -0.5) & (u < self.w - 0.5) & (v > -0.5) & (v < self.h - 0.5)
        return u, v, valid
