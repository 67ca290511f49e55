"""PiXL for ERP students: entropy-quantile pixel partition and drift-pixel asymmetric contrast.

Each image is one "local distribution" of pixels (PiXL, Pix-Par). Its pixels are ranked by the
entropy of the student's predicted class distribution; the ``1 - drift`` fraction with the
lowest entropy are *joint* pixels, the rest *drift* pixels. The quantile is taken over solid
angle (area-weighted), so the ERP's oversampled polar rows do not decide it.

Per class ``k``, the prototype ``p_k`` is the area-weighted mean of the L2-normalised features
of the batch's joint pixels labelled ``k`` (the pseudo label), renormalised, with the gradient
stopped (asymmetric: prototypes never move toward drift pixels). Each drift pixel labelled ``k``
is pulled toward ``p_k`` and pushed from the other prototypes with InfoNCE over the prototypes
present in the batch, at temperature ``tau`` (PiXL, DPA). The loss is the area-weighted mean over
drift pixels. Features ``(B, C, h, w)`` come from the student's decoder (stride 4); probabilities
and labels are brought to ``h x w`` by the caller (:func:`downsample_labels`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panoedge.distill.losses import pixel_weights, weighted_mean

IGNORE = 255


def entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Shannon entropy (nats) along ``dim`` of probabilities (0 log 0 = 0)."""
    p = probs.float().clamp_min(0)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


def weighted_quantile(values: torch.Tensor, weights: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q`` quantile of 1-D ``values`` where each value counts with its ``weight``."""
    order = torch.argsort(values)
    v, w = values[order], weights[order].float()
    cum = torch.cumsum(w, 0)
    idx = torch.searchsorted(cum, q * cum[-1])
    return v[idx.clamp(max=v.numel() - 1)]


def partition(probs: torch.Tensor, drift: float, weight: torch.Tensor | None = None,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """Joint-pixel mask ``(B, h, w)`` bool: per image, entropy below its ``1 - drift`` (weighted) quantile.

    ``probs`` ``(B, K, h, w)``; ``weight`` ``(B, h, w)`` (default: solid angle); ``valid`` restricts
    both the ranking and the result. Ties at the threshold go to the drift side.
    """
    ent = entropy(probs)
    b = ent.shape[0]
    weight = pixel_weights(ent.shape, ent.device) if weight is None else weight
    valid = torch.ones_like(ent, dtype=torch.bool) if valid is None else valid
    joint = torch.zeros_like(valid)
    for i in range(b):
        m = valid[i]
        if not m.any():
            continue
        thr = weighted_quantile(ent[i][m], weight[i][m], 1.0 - drift)
        joint[i] = m & (ent[i] < thr)
    return joint


def prototypes(feats: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
               num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised class prototypes ``(K, C)`` (detached) and a presence mask ``(K,)``.

    ``feats`` ``(N, C)`` normalised features, ``labels`` ``(N,)``, ``mask`` ``(N,)`` which pixels
    count (joint ones), ``weight`` ``(N,)`` their solid angles.
    """
    w = (weight * mask).float().detach()
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).float() * w[:, None]
    sums = onehot.t() @ feats.detach().float()
    present = onehot.sum(0) > 0
    return F.normalize(sums, dim=1), present


def pixl_loss(feats: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, drift: float = 0.2,
              tau: float = 0.1, area: bool = True, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The PiXL drift-pixel asymmetric contrast loss (see the module docstring).

    ``feats`` ``(B, C, h, w)`` (gradients flow into them), ``probs`` ``(B, K, h, w)`` the student's
    predicted probabilities (detached here) for the entropy partition, ``labels`` ``(B, h, w)``
    pseudo labels (255 = ignore), ``weight`` ``(B, h, w)`` optional per-pixel weights.
    """
    b, c, h, w = feats.shape
    k = probs.shape[1]
    valid = labels != IGNORE
    if weight is not None:
        valid = valid & (weight > 0)
    wts = pixel_weights((b, h, w), feats.device, area)
    joint = partition(probs.detach(), drift, wts, valid)
    drift_mask = valid & ~joint
    f = F.normalize(feats.float().permute(0, 2, 3, 1).reshape(-1, c), dim=1)
    lab, wt = labels.reshape(-1), wts.reshape(-1)
    protos, present = prototypes(f, lab, joint.reshape(-1), wt, k)
    use = drift_mask.reshape(-1) & present[lab.clamp(0, k - 1)]
    if not bool(use.any()) or int(present.sum()) < 2:
        return (feats * 0.0).sum()
    logits = (f[use] @ protos.t()) / tau
    logits = logits.masked_fill(~present[None, :], float("-inf"))
    per = F.cross_entropy(logits, lab[use], reduction="none")
    return weighted_mean(per, wt[use])


def downsample_labels(probs: torch.Tensor, weight: torch.Tensor | None, size: tuple[int, int]):
    """Soft labels ``(B, K, H, W)`` -> ``(probs (B, K, h, w), labels (B, h, w), weight (B, h, w) | None)``.

    Area-averages probabilities (and weights) down to ``size``; labels are their argmax, 255 where
    the averaged weight is zero.
    """
    p = F.adaptive_avg_pool2d(probs.float(), size)
    lab = p.argmax(1)
    wt = None
    if weight is not None:
        wt = F.adaptive_avg_pool2d(weight.float()[:, None], size)[:, 0]
        lab = torch.where(wt > 0, lab, torch.full_like(lab, IGNORE))
    return p, lab, wt
