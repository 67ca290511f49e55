"""One training step's loss: the enabled components wired onto the student's outputs.

:func:`step_loss` forwards the student on a batch (plus sphere-transformed copies for the
consistency loss), then adds the pseudo-label cross entropy, the depth loss, PixL and DepthG on
the decoder's features, and the consistency loss, each scaled by its ``cfg.*_weight``.
:func:`init_heads` starts the output biases at the data before the first step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from panoedge.distill.config import DistillConfig
from panoedge.distill.consistency import consistency_loss, random_transforms
from panoedge.distill.depthg import depthg_loss
from panoedge.distill.losses import depth_loss, soft_ce
from panoedge.distill.pixl import downsample_labels, pixl_loss

CONS_SEED_SEED_MULT, CONS_SEED_STEP_MULT = 1_000_003, 97
"""The consistency transforms' generator seed is ``seed * CONS_SEED_SEED_MULT + step * CONS_SEED_STEP_MULT + rank``:
distinct per (seed, step, rank) for any realistic run (both primes, far apart)."""
FREQ_FLOOR = 1e-4
"""Added to each class frequency before the log in :func:`init_heads`: a class the teacher never
predicts starts at a finite, very low logit instead of minus infinity."""
DEPTH_BIAS_CLAMP = 1e-3
"""The median depth's position in ``[min_depth_m, max_depth_m]`` is kept inside ``[c, 1 - c]`` so its logit is finite."""
POOL_EPS = 1e-12
"""Smallest valid-pixel share divided by in :func:`masked_pool`."""


@torch.no_grad()
def init_heads(model, ts) -> None:
    """Start the output biases at the data: the segmentation bias at the log of the pseudo labels'
    (area-weighted) class frequencies, the depth bias at the median pseudo range (metric teachers),
    so a short budget is not spent walking the outputs from their arbitrary initial values."""
    from panoedge.geometry.torch_ops import erp_area_weights

    heads = getattr(model, "heads", {})
    h, w = ts.base.shape[-2:]
    area = erp_area_weights(h, w).expand(h, w)
    if "seg" in heads:
        freq = (ts.base.float() * (ts.base_w.float() * area)[:, None]).sum((0, 2, 3))
        heads["seg"].out.bias.copy_(torch.log(freq / freq.sum() + FREQ_FLOOR))
    if "depth" in heads and ts.depth is not None and ts.depth_kind == "metric":
        valid = ts.depth[torch.isfinite(ts.depth) & (ts.depth > 0)]
        if valid.numel():
            lo, hi = model.config.min_depth_m, model.config.max_depth_m
            p = float(((valid.median() - lo) / (hi - lo)).clamp(DEPTH_BIAS_CLAMP, 1 - DEPTH_BIAS_CLAMP))
            heads["depth"].out.bias.fill_(math.log(p / (1 - p)))


def masked_pool(depth: torch.Tensor, size) -> torch.Tensor:
    """``depth`` ``(B, H, W)`` average-pooled to ``size`` over valid (finite, positive) pixels only; 0 where none."""
    ok = (torch.isfinite(depth) & (depth > 0)).float()[:, None]
    num = F.adaptive_avg_pool2d(torch.nan_to_num(depth)[:, None] * ok, size)
    den = F.adaptive_avg_pool2d(ok, size)
    return torch.where(den > 0, num / den.clamp_min(POOL_EPS), torch.zeros_like(num))[:, 0]


def _n_consistency(cfg: DistillConfig, b: int) -> int:
    """How many of the batch's ``b`` images get a sphere-transformed copy (0: consistency off)."""
    if cfg.consistency and cfg.cons_weight > 0 and cfg.cons_frac > 0:
        return max(1, math.ceil(cfg.cons_frac * b))
    return 0


def _forward(net, model, x: torch.Tensor, need_feats: bool) -> tuple[dict, torch.Tensor | None]:
    """``net(x)`` and, when ``need_feats``, the decoder's features (through a forward hook on ``model``)."""
    store = {}
    hook = model.decoder.register_forward_hook(lambda m, i, o: store.__setitem__("f", o)) if need_feats else None
    try:
        out = net(x)
    finally:
        if hook is not None:
            hook.remove()
    return out, store.get("f")


def step_loss(net, model, batch: dict, cfg: DistillConfig, depth_kind: str | None) -> tuple[torch.Tensor, dict]:
    """Forward ``net`` on the batch (plus sphere-transformed copies for consistency); the total loss and its parts."""
    x, area = batch["x"], cfg.area_weighted
    b = len(x)
    n_c = _n_consistency(cfg, b)
    T = None
    if n_c:
        seed = int(cfg.seed) * CONS_SEED_SEED_MULT + batch["step"] * CONS_SEED_STEP_MULT + batch["rank"]
        T = random_transforms(n_c, tilt_deg=cfg.cons_tilt_deg, max_zoom=cfg.cons_zoom,
                              gen=torch.Generator().manual_seed(seed), device=x.device)
        x = torch.cat([x, T(x[:n_c])])
    use_pixl = cfg.pixl and cfg.pixl_weight > 0
    use_depthg = cfg.depthg and cfg.depthg_weight > 0 and batch["depth"] is not None
    out, feats = _forward(net, model, x, need_feats=use_pixl or use_depthg)
    main = {k: v[:b] for k, v in out.items()}
    parts = {"seg": soft_ce(main["seg"], batch["probs"], weight=batch["weight"], area=area)}
    if batch["depth"] is not None and cfg.depth_weight > 0:
        parts["depth"] = cfg.depth_weight * depth_loss(cfg.depth_loss, main["depth"], batch["depth"], weight=None,
                                                       area=area, depth_kind=depth_kind or "metric")
    if feats is not None:
        f = feats[:b]
        size = tuple(f.shape[-2:])
        if use_pixl:
            sp = F.adaptive_avg_pool2d(torch.softmax(main["seg"].detach().float(), 1), size)
            _, lab, w4 = downsample_labels(batch["probs"], batch["weight"], size)
            parts["pixl"] = cfg.pixl_weight * pixl_loss(f, sp, lab, drift=cfg.pixl_drift, tau=cfg.pixl_tau, area=area,
                                                        weight=w4)
        if use_depthg:
            d4 = masked_pool(batch["depth"].float(), size)
            parts["depthg"] = cfg.depthg_weight * depthg_loss(f, d4, n_points=cfg.depthg_points, area=area,
                                                             relative=depth_kind != "metric")
    if T is not None:
        parts["cons"] = cfg.cons_weight * consistency_loss({k: v[b:] for k, v in out.items()},
                                                           {k: v[:n_c] for k, v in main.items()}, T, area=area)
    total = sum(parts.values())
    return total, {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
