"""Möbius transformations of the sphere (NumPy), as used by PanDA for augmentation.

A Möbius map ``f(zeta) = (a zeta + b) / (c zeta + d)`` acts on the Riemann sphere through
stereographic projection. We work in homogeneous coordinates ``(p, q)`` with ``zeta = p / q``
so that the poles need no special case. The projection uses the "math" frame
``X = x, Y = z, Z = -y`` (Z up): ``zeta = (X + iY) / (1 - Z)``, so ``zeta = 0`` is the
nadir (straight down, ray ``(0, 1, 0)``) and ``zeta = inf`` the zenith.

Rotations of the sphere are Möbius maps too (unitary matrices); zooms ``zeta -> s zeta``
magnify the neighbourhood of the nadir by ``s``. :func:`mobius_zoom_matrix` and
:func:`apply_mobius` compose them with 3D rotations to zoom about any direction.
"""

from __future__ import annotations

import numpy as np

from panoedge.errors import UsageError
from panoedge.geometry.rotation import rotation_aligning

NADIR = np.array([0.0, 1.0, 0.0])


def rays_to_homogeneous(rays) -> tuple[np.ndarray, np.ndarray]:
    """Stereographic coordinates ``(p, q)`` (complex, ``zeta = p / q``) of unit rays ``(..., 3)``."""
    rays = np.asarray(rays, dtype=np.float64)
    X, Y, Z = rays[..., 0], rays[..., 2], -rays[..., 1]
    south = Z <= 0
    # zeta = (X + iY) / (1 - Z) = (1 + Z) / (X - iY): use the well-conditioned form per hemisphere.
    p = np.where(south, X + 1j * Y, 1.0 + Z)
    q = np.where(south, 1.0 - Z, X - 1j * Y)
    return p, q


def homogeneous_to_rays(p, q) -> np.ndarray:
    """Unit rays ``(..., 3)`` from homogeneous stereographic coordinates."""
    pp = np.abs(p) ** 2
    qq = np.abs(q) ** 2
    n = pp + qq
    xy = 2.0 * p * np.conj(q) / n
    Z = (pp - qq) / n
    return np.stack([xy.real, -Z, xy.imag], axis=-1)


def apply_mobius_matrix(rays, M) -> np.ndarray:
    """Apply the Möbius map with complex 2x2 matrix ``M = [[a, b], [c, d]]`` to rays ``(..., 3)``."""
    M = np.asarray(M, dtype=np.complex128)
    if M.shape != (2, 2) or abs(np.linalg.det(M)) < 1e-12:
        raise UsageError("a Möbius matrix is 2x2 with a non-zero determinant")
    p, q = rays_to_homogeneous(rays)
    return homogeneous_to_rays(M[0, 0] * p + M[0, 1] * q, M[1, 0] * p + M[1, 1] * q)


def mobius_zoom_matrix(scale: float) -> np.ndarray:
    """``zeta -> scale * zeta``: magnifies the nadir's neighbourhood by ``scale`` (> 0)."""
    if not scale > 0:
        raise UsageError(f"Möbius zoom scale {scale}: expected > 0")
    return np.array([[scale, 0.0], [0.0, 1.0]], dtype=np.complex128)


def mobius_zoom_rays(rays, scale: float, center=None) -> np.ndarray:
    """Zoom the sphere about ``center`` (a ray; default the nadir): content near it grows by ``scale``.

    This is the forward map (input sphere -> output sphere). To resample an image, apply the
    inverse (``1 / scale``) to the output rays: see :func:`panoedge.geometry.mobius_erp`.
    """
    R = np.eye(3) if center is None else rotation_aligning(center, NADIR)
    local = np.asarray(rays, dtype=np.float64) @ R.T  # center -> nadir
    out = apply_mobius_matrix(local, mobius_zoom_matrix(scale))
    return out @ R  # back: R^T applied to column rays
