"""Class-balanced pseudo labels: the teacher's class prior divided out, in part.

A teacher trained briefly, or on another domain, is biased towards the classes that cover most
of the image (wall, floor, road, sky): on rare classes its probability is there but seldom the
largest, so arg-max pseudo labels almost never name them and a student trained on them learns
the same bias. Zou et al.'s class-balanced self-training (CBST, cited by BiSMAP for exactly this
failure) picks per-class confidence thresholds so that every class keeps a share of pseudo labels;
the soft, threshold-free form used here is a logit adjustment by the prior the teacher itself
predicts on the unlabeled set::

    pi_k      = sum_n,p w_np q_npk / sum_n,p w_np        (w: solid angle x label weight)
    q'_npk   ∝ q_npk / pi_k ** tau                        (renormalised over k)

``tau = 0`` leaves the labels unchanged, ``tau = 1`` divides the prior out completely (the labels'
arg-max then favours rare classes as much as common ones). Nothing here looks at ground truth;
``tau`` is chosen by measurement (``DistillConfig.balance_tau``).
"""

from __future__ import annotations

import torch

__all__ = ["balance_labels", "class_prior", "sharpen"]


def class_prior(probs: torch.Tensor, weight: torch.Tensor | None = None, area: torch.Tensor | None = None,
                chunk: int = 16) -> torch.Tensor:
    """The weighted mean class distribution ``(K,)`` of soft labels ``probs`` ``(N, K, H, W)``.

    ``weight`` ``(N, H, W)`` per-pixel label weights, ``area`` ``(H, W)`` solid-angle weights
    (both optional, default 1). Accumulated in float64 over chunks of images.
    """
    n, k, h, w = probs.shape
    acc = torch.zeros(k, dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    a = torch.ones(h, w) if area is None else area.float().reshape(h, w)
    for s in range(0, n, chunk):
        p = probs[s:s + chunk].float()
        wt = a.expand(len(p), h, w) if weight is None else weight[s:s + chunk].float() * a
        acc += (p * wt[:, None]).sum((0, 2, 3)).double()
        total += wt.sum().double()
    return (acc / total.clamp_min(1e-12)).float()


def balance_labels(probs: torch.Tensor, prior: torch.Tensor, tau: float, floor: float = 1e-4) -> torch.Tensor:
    """``probs`` ``(N, K, H, W)`` with the class ``prior`` ``(K,)`` divided out to the power ``tau``.

    Each pixel is renormalised to sum to 1; a class whose prior is below ``floor`` is treated as
    having ``floor`` (a class the teacher never predicts is not blown up from nothing). Returns
    the dtype of ``probs``.
    """
    if not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau {tau}: expected a value in [0, 1]")
    if prior.shape != (probs.shape[1],):
        raise ValueError(f"prior of shape {tuple(prior.shape)} for {probs.shape[1]} classes")
    scale = prior.float().clamp_min(floor).pow(-float(tau)).view(1, -1, 1, 1)
    out = torch.empty_like(probs)
    for s in range(0, len(probs), 16):
        q = probs[s:s + 16].float() * scale
        out[s:s + 16] = (q / q.sum(1, keepdim=True).clamp_min(1e-12)).to(probs.dtype)
    return out


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``probs`` ``(N, K, H, W)`` raised to ``1 / temperature`` and renormalised per pixel.

    ``temperature < 1`` sharpens (the arg-max keeps its class, the runner-up loses mass), ``1``
    is the identity, ``> 1`` softens. Returns the dtype of ``probs``.
    """
    if not float(temperature) > 0:
        raise ValueError(f"temperature {temperature}: expected a positive value")
    out = torch.empty_like(probs)
    for s in range(0, len(probs), 16):
        q = probs[s:s + 16].float().clamp_min(1e-12).log() / float(temperature)
        out[s:s + 16] = torch.softmax(q, 1).to(probs.dtype)
    return out
