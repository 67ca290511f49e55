"""Spherical consistency (PanDA): outputs agree under rotations and Möbius zooms of the input sphere.

A :class:`SphereTransform` ``T`` is a random rotation ``R`` (any yaw, pitch and roll up to a tilt
limit) followed by a Möbius zoom by ``scale`` about a random direction ``Rc @ nadir``; it maps any
ERP map to another (:func:`panoedge.geometry.torch_ops.rotate_erp` and ``mobius_erp``, bilinear,
seam-wrapping). Both are bijections of the sphere, so nothing is cropped or padded.

The loss compares the student on the transformed input, ``f(T x)``, with the transformed
output on the original, ``T f(x)``, held fixed (gradient stopped): ``KL(softmax(T logits) ||
softmax(f(T x).seg))`` plus ``|log f(T x).depth - T log f(x).depth|``, both area-weighted in
the transformed frame. Logits and log-depth are what get resampled, so a model that commutes
with ``T`` (e.g. the identity) scores zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from panoedge.distill.losses import kl_consistency, pixel_weights, weighted_mean
from panoedge.geometry.torch_ops import mobius_erp, rotate_erp, rotation_from_ypr


@dataclass
class SphereTransform:
    """Rotations ``R`` ``(B, 3, 3)``, zoom ``scale`` ``(B,)`` and zoom centres ``Rc`` ``(B, 3, 3)``.

    Convention: ``T(x) = mobius_erp(rotate_erp(x, R), scale, Rc)``, i.e. ``out(d) = in(R @ d')``
    with ``d'`` the Möbius pre-image of ``d`` (see :mod:`panoedge.geometry.torch_ops`).
    """

    R: torch.Tensor
    scale: torch.Tensor
    Rc: torch.Tensor

    def __call__(self, erp: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Apply to ERP maps ``(B, C, H, W)`` (float)."""
        dtype = erp.dtype
        x = rotate_erp(erp.float(), self.R.to(erp.device), mode)
        if bool((self.scale != 1).any()):
            x = mobius_erp(x, self.scale.to(erp.device), self.Rc.to(erp.device), mode)
        return x.to(dtype)

    @staticmethod
    def identity(b: int, device=None) -> "SphereTransform":
        eye = torch.eye(3, device=device).expand(b, 3, 3).clone()
        return SphereTransform(eye, torch.ones(b, device=device), eye.clone())


def random_transforms(b: int, tilt_deg: float = 20.0, max_zoom: float = 1.5,
                      gen: torch.Generator | None = None, device=None) -> SphereTransform:
    """``b`` random transforms: yaw uniform over the circle, pitch and roll uniform in ``±tilt_deg``,
    zoom ``exp(U(-log max_zoom, log max_zoom))`` about a uniformly random direction."""
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    u = torch.rand(b, 6, generator=gen, dtype=torch.float64)
    tilt = math.radians(tilt_deg)
    yaw = (u[:, 0] * 2 - 1) * math.pi
    pitch, roll = (u[:, 1] * 2 - 1) * tilt, (u[:, 2] * 2 - 1) * tilt
    R = rotation_from_ypr(yaw, pitch, roll)
    scale = torch.exp((u[:, 3] * 2 - 1) * math.log(max_zoom)) if max_zoom > 1 else torch.ones(b, dtype=torch.float64)
    # zoom centre: a uniform direction; Rc maps the nadir (0, 1, 0) onto it
    cz = u[:, 4] * 2 - 1
    lon = u[:, 5] * 2 * math.pi
    lat = torch.asin(cz)
    Rc = rotation_from_ypr(lon, lat + math.pi / 2, torch.zeros_like(lon))  # Ry(lon) Rx(lat + pi/2) (0,1,0)
    return SphereTransform(R.float().to(device), scale.float().to(device), Rc.float().to(device))


def consistency_loss(out_t: dict[str, torch.Tensor], out_ref: dict[str, torch.Tensor], T: SphereTransform,
                     area: bool = True, depth_weight: float = 1.0) -> torch.Tensor:
    """Spherical consistency between ``out_t = f(T x)`` and ``T f(x)`` (from ``out_ref``, detached).

    ``out_*`` are student outputs ``{"seg": (B, K, H, W), "depth": (B, 1, H, W)}`` (either key may be
    missing: it then does not count).
    """
    total = None
    if "seg" in out_t and "seg" in out_ref:
        target = T(out_ref["seg"].detach().float())
        total = kl_consistency(out_t["seg"], target, area=area)
    if "depth" in out_t and "depth" in out_ref and depth_weight > 0:
        target = T(out_ref["depth"].detach().float().clamp_min(1e-6).log())
        pred = out_t["depth"].float().clamp_min(1e-6).log()
        per = (pred - target)[:, 0].abs()
        d = weighted_mean(per, pixel_weights(per.shape, per.device, area))
        total = depth_weight * d if total is None else total + depth_weight * d
    if total is None:
        raise ValueError("consistency_loss: outputs share neither 'seg' nor 'depth'")
    return total
