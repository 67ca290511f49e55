"""Distillation losses on ERP maps, every pixel weighted by its solid angle.

Shapes: logits/probabilities ``(B, K, H, W)``, hard labels ``(B, H, W)`` int64 with 255 = ignore,
depth ``(B, 1, H, W)`` or ``(B, H, W)``, per-pixel weights ``(B, H, W)`` (optional). Every
loss is a weighted mean ``sum(w a l) / sum(w a)`` where ``a`` is
:func:`panoedge.geometry.torch_ops.erp_area_weights` (``(H, 1)``, mean 1) when ``area`` is true,
so a polar row, stretched over as many pixels as the equator, counts for its true solid angle.
A batch with no valid pixel gives a zero loss that still carries the graph.

Depth: ``log_l1_depth`` compares metric range in log space; ``ssi_depth`` is MiDaS-style
scale-and-shift-invariant, for teachers whose depth is relative (affine-ambiguous): per image
it fits ``s, t`` (area-weighted least squares, closed form, differentiable) so that
``s * pred + t`` matches the target, then takes the L1 residual divided by the target's mean
absolute deviation. Changing ``pred`` to ``a * pred + b`` leaves it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panoedge.geometry.torch_ops import erp_area_weights

IGNORE = 255


def pixel_weights(shape, device, area: bool = True, weight: torch.Tensor | None = None,
                  dtype=torch.float32) -> torch.Tensor:
    """``(B, H, W)`` weights: solid angle (if ``area``) times the optional per-pixel ``weight``."""
    b, h, w = int(shape[0]), int(shape[-2]), int(shape[-1])
    a = erp_area_weights(h, w, device, dtype).expand(h, w) if area else torch.ones(h, w, device=device, dtype=dtype)
    a = a.expand(b, h, w)
    return a * weight.to(dtype) if weight is not None else a


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(v w) / sum(w)``; zero (keeping the graph) when the weights sum to zero."""
    total = weights.sum()
    if float(total) <= 0:
        return (values * 0.0).sum()
    return (values * weights).sum() / total


def soft_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
            area: bool = True) -> torch.Tensor:
    """Cross entropy against soft targets ``(B, K, H, W)`` (rows summing to 1), weighted per pixel."""
    logp = F.log_softmax(logits.float(), dim=1)
    per = -(target.float() * logp).sum(1)
    return weighted_mean(per, pixel_weights(per.shape, per.device, area, weight))


def hard_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
            area: bool = True, ignore_index: int = IGNORE) -> torch.Tensor:
    """Cross entropy against class ids ``(B, H, W)``; ``ignore_index`` pixels count zero."""
    valid = labels != ignore_index
    per = F.cross_entropy(logits.float(), torch.where(valid, labels, 0), reduction="none")
    w = pixel_weights(per.shape, per.device, area, weight) * valid
    return weighted_mean(per, w)


def kl_consistency(logits: torch.Tensor, target_logits: torch.Tensor, weight: torch.Tensor | None = None,
                   area: bool = True) -> torch.Tensor:
    """``KL(softmax(target) || softmax(logits))`` per pixel, weighted; zero when the logits agree."""
    logq = F.log_softmax(target_logits.float(), dim=1)
    logp = F.log_softmax(logits.float(), dim=1)
    per = (logq.exp() * (logq - logp)).sum(1)
    return weighted_mean(per, pixel_weights(per.shape, per.device, area, weight))


def _valid_depth(pred: torch.Tensor, target: torch.Tensor):
    pred = pred[:, 0] if pred.dim() == 4 else pred
    target = target[:, 0] if target.dim() == 4 else target
    valid = torch.isfinite(target) & (target > 0)
    return pred.float(), torch.where(valid, target.float(), torch.ones_like(target, dtype=torch.float32)), valid


def log_l1_depth(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 area: bool = True) -> torch.Tensor:
    """``|log pred - log target|`` over valid target pixels (positive, finite), weighted; metres in."""
    pred, target, valid = _valid_depth(pred, target)
    per = (pred.clamp_min(1e-6).log() - target.log()).abs()
    w = pixel_weights(per.shape, per.device, area, weight) * valid
    return weighted_mean(per, w)


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image ``(s, t)`` ``(B,)`` minimising ``sum w (s pred + t - target)^2`` (closed form)."""
    dims = (1, 2)
    sw = w.sum(dims).clamp_min(1e-12)
    mp = (w * pred).sum(dims) / sw
    mt = (w * target).sum(dims) / sw
    dp, dt = pred - mp[:, None, None], target - mt[:, None, None]
    var = (w * dp * dp).sum(dims)
    s = (w * dp * dt).sum(dims) / var.clamp_min(1e-12)
    s = torch.where(var > 1e-12, s, torch.zeros_like(s))
    return s, mt - s * mp


def ssi_depth(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
              area: bool = True, inverse: bool = False) -> torch.Tensor:
    """Scale-and-shift-invariant L1 (MiDaS), weighted; ``inverse`` aligns ``1 / pred`` (disparity targets).

    Each image's residual is divided by the weighted mean absolute deviation of its target, so
    the loss is unit-free; images with fewer than 2 valid pixels count zero.
    """
    pred, target, valid = _valid_depth(pred, target)
    if inverse:
        pred = 1.0 / pred.clamp_min(1e-6)
    w = pixel_weights(pred.shape, pred.device, area, weight) * valid
    s, t = align_scale_shift(pred, target, w)
    aligned = s[:, None, None] * pred + t[:, None, None]
    sw = w.sum((1, 2)).clamp_min(1e-12)
    mt = (w * target).sum((1, 2)) / sw
    mad = ((w * (target - mt[:, None, None]).abs()).sum((1, 2)) / sw).clamp_min(1e-6)
    per = (aligned - target).abs() / mad[:, None, None]
    return weighted_mean(per, w * ((valid.sum((1, 2)) >= 2)[:, None, None]))


def depth_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               area: bool = True, depth_kind: str = "metric") -> torch.Tensor:
    """The depth loss ``kind`` (``log_l1``, ``ssi`` or ``auto``: log-L1 for metric targets, SSI otherwise)."""
    if kind == "auto":
        kind = "log_l1" if depth_kind == "metric" else "ssi"
    if kind == "log_l1":
        return log_l1_depth(pred, target, weight, area)
    return ssi_depth(pred, target, weight, area, inverse=depth_kind == "inverse-relative")
