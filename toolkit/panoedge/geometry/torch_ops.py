"""Torch twins of the sphere maths: batched, differentiable, on any device.

Same conventions as the NumPy functions (CONVENTIONS.md): x right, y down, z forward;
``lon = atan2(x, z)``, ``lat = -asin(y)``; ERP pixel centres ``u = (lon/2pi + 0.5) W - 0.5``.
Images are ``(B, C, H, W)``; rays ``(..., 3)``. Sampling wraps at the ERP seam by padding one
column from the other side (``F.pad(..., mode='circular')``) before ``grid_sample``.

Import this module only on the training side: ``runtime``, ``live`` and ``stitch`` stay
torch-free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def lonlat_to_ray(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Unit rays ``(..., 3)`` from longitude/latitude (radians)."""
    c = torch.cos(lat)
    return torch.stack([c * torch.sin(lon), -torch.sin(lat), c * torch.cos(lon)], dim=-1)


def ray_to_lonlat(ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lon, lat)`` of rays ``(..., 3)`` (normalised here)."""
    ray = F.normalize(ray, dim=-1)
    lon = torch.atan2(ray[..., 0], ray[..., 2])
    lat = -torch.asin(ray[..., 1].clamp(-1.0, 1.0))
    return lon, lat


def erp_lonlat_grid(h: int, w: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lon, lat)`` of every ERP pixel centre, each ``(H, W)``."""
    u = torch.arange(w, device=device, dtype=torch.float64)
    v = torch.arange(h, device=device, dtype=torch.float64)
    lon = ((u + 0.5) / w - 0.5) * (2 * math.pi)
    lat = (0.5 - (v + 0.5) / h) * math.pi
    lat, lon = torch.meshgrid(lat, lon, indexing="ij")
    return lon.to(dtype), lat.to(dtype)


def erp_rays(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Unit rays ``(H, W, 3)`` through the ERP pixel centres."""
    lon, lat = erp_lonlat_grid(h, w, device, torch.float64)
    return lonlat_to_ray(lon, lat).to(dtype)


def erp_area_weights(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Solid-angle weights ``(H, 1)`` normalised to mean 1 over the image (broadcast over W)."""
    edges = (0.5 - torch.arange(h + 1, device=device, dtype=torch.float64) / h) * math.pi
    rows = torch.sin(edges[:-1]) - torch.sin(edges[1:])
    return (rows / rows.mean()).to(dtype)[:, None]


def sample_erp(erp: torch.Tensor, rays: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ERP images ``(B, C, H, W)`` along rays ``(B, h, w, 3)`` -> ``(B, C, h, w)``.

    Differentiable in ``erp`` (and in ``rays`` for bilinear); wraps at the seam, clamps at the poles.
    """
    b, _, h, w = erp.shape
    lon, lat = ray_to_lonlat(rays.to(erp.dtype))
    u = (lon / (2 * math.pi) + 0.5) * w - 0.5
    v = (0.5 - lat / math.pi) * h - 0.5
    u = torch.remainder(u, w)
    padded = F.pad(erp, (1, 1, 0, 0), mode="circular")
    gx = (u + 1.0 + 0.5) / (w + 2) * 2.0 - 1.0
    gy = (v + 0.5) / h * 2.0 - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    if grid.shape[0] != b:
        grid = grid.expand(b, *grid.shape[1:])
    return F.grid_sample(padded, grid, mode=mode, padding_mode="border", align_corners=False)


def rotate_erp(erp: torch.Tensor, R: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``out(d) = in(R @ d)`` for ERP images ``(B, C, H, W)`` and rotations ``(B, 3, 3)`` or ``(3, 3)``."""
    b, _, h, w = erp.shape
    rays = erp_rays(h, w, erp.device, erp.dtype)
    R = R.to(erp.dtype)
    if R.dim() == 2:
        R = R.expand(b, 3, 3)
    src = torch.einsum("bij,hwj->bhwi", R, rays)
    return sample_erp(erp, src, mode)


def mobius_zoom_rays(rays: torch.Tensor, scale) -> torch.Tensor:
    """Möbius zoom ``zeta -> scale * zeta`` about the nadir, on rays ``(B, ..., 3)``.

    Same stereographic frame as :mod:`panoedge.geometry.mobius`; ``scale`` is a float or ``(B,)``.
    """
    X, Y, Z = rays[..., 0], rays[..., 2], -rays[..., 1]
    s = torch.as_tensor(scale, dtype=rays.dtype, device=rays.device)
    s = s.reshape(-1, *([1] * (rays.dim() - 2))) if s.dim() else s
    # |zeta|^2 = (1 + Z) / (1 - Z); zooming scales |zeta| by s and keeps its argument.
    # Z' = (s^2 (1+Z) - (1-Z)) / (s^2 (1+Z) + (1-Z)); (X', Y') keep the direction of (X, Y).
    a = s * s * (1.0 + Z)
    b = 1.0 - Z
    z_new = (a - b) / (a + b)
    rho = torch.sqrt((X * X + Y * Y).clamp_min(1e-24))
    rho_new = torch.sqrt((1.0 - z_new * z_new).clamp_min(0.0))
    k = rho_new / rho
    return torch.stack([X * k, -z_new, Y * k], dim=-1)


def mobius_erp(erp: torch.Tensor, scale, R: torch.Tensor | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Möbius zoom of ERP images: content around the direction ``R @ nadir`` grows by ``scale``.

    ``R`` ``(B, 3, 3)`` or ``(3, 3)`` rotates the nadir to the zoom centre (identity: nadir).
    """
    b, _, h, w = erp.shape
    rays = erp_rays(h, w, erp.device, erp.dtype).expand(b, h, w, 3)
    if R is not None:
        R = R.to(erp.dtype).expand(b, 3, 3)
        rays = torch.einsum("bji,bhwj->bhwi", R, rays)  # R^T d: centre -> nadir
    s = torch.as_tensor(scale, dtype=erp.dtype, device=erp.device)
    src = mobius_zoom_rays(rays, 1.0 / s)
    if R is not None:
        src = torch.einsum("bij,bhwj->bhwi", R, src)
    return sample_erp(erp, src, mode)


def rotation_from_ypr(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``Ry(yaw) Rx(pitch) Rz(roll)`` for tensors of angles ``(B,)`` -> ``(B, 3, 3)``."""
    def mat(rows):
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    cy, sy, cp, sp, cr, sr = (torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch),
                              torch.cos(roll), torch.sin(roll))
    ry = mat([[cy, z, sy], [z, o, z], [-sy, z, cy]])
    rx = mat([[o, z, z], [z, cp, -sp], [z, sp, cp]])
    rz = mat([[cr, -sr, z], [sr, cr, z], [z, z, o]])
    return ry @ rx @ rz
