"""RLCC: temporal ensembling of soft pseudo labels across self-training generations.

Generation ``t`` produces new soft labels ``y_t`` (``(K, H, W)`` per image: the EMA student's
predictions, or cluster assignments in the label-free mode). They are merged with the previous
generation's ensembled labels ``y~_{t-1}`` by momentum (RLCC eq. 5)::

    y~_t = momentum * y_t + (1 - momentum) * C^T y~_{t-1}

where ``C`` maps the previous generation's classes onto the current ones. With a fixed class
set (teacher classes) ``C`` is the identity. When labels come from clustering, classes of two
generations are unrelated ids: ``C`` is the IoU consensus matrix between the previous and the
current hard assignments (RLCC eq. 1), row-normalised (eq. 2). :func:`match_clusters` also
gives the one-to-one matching (Hungarian, maximum total IoU) used to renumber the current
clusters so ids stay stable across generations. IoUs count pixels by solid angle when given
area weights.
"""

from __future__ import annotations

import numpy as np
import torch


def iou_consensus(prev: torch.Tensor, cur: torch.Tensor, m_prev: int, m_cur: int,
                  weights: torch.Tensor | None = None, ignore_index: int = 255) -> torch.Tensor:
    """IoU matrix ``(m_prev, m_cur)`` between hard assignments ``prev`` and ``cur`` (same shape, int).

    ``C[i, j] = |prev == i and cur == j| / |prev == i or cur == j|``, counting ``weights`` (e.g.
    solid angles) per sample; samples with ``ignore_index`` in either are skipped.
    """
    p, c = prev.reshape(-1).long(), cur.reshape(-1).long()
    w = torch.ones_like(p, dtype=torch.float64) if weights is None else weights.reshape(-1).double()
    keep = (p != ignore_index) & (c != ignore_index)
    p, c, w = p[keep], c[keep], w[keep]
    inter = torch.zeros(m_prev * m_cur, dtype=torch.float64).index_add_(0, p * m_cur + c, w).reshape(m_prev, m_cur)
    size_p = inter.sum(1, keepdim=True)
    size_c = inter.sum(0, keepdim=True)
    union = size_p + size_c - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-300), torch.zeros_like(inter)).float()


def normalize_rows(c: torch.Tensor) -> torch.Tensor:
    """Row-normalise ``C`` so each row sums to 1 (RLCC eq. 2); all-zero rows stay zero."""
    s = c.sum(1, keepdim=True)
    return torch.where(s > 0, c / s.clamp_min(1e-12), torch.zeros_like(c))


def propagate(prev_soft: torch.Tensor, c_hat: torch.Tensor) -> torch.Tensor:
    """``C^T y`` over the class axis 0: ``prev_soft`` ``(M_prev, ...)`` -> ``(M_cur, ...)``."""
    flat = prev_soft.reshape(prev_soft.shape[0], -1).float()
    return (c_hat.t().float() @ flat).reshape(c_hat.shape[1], *prev_soft.shape[1:])


def match_clusters(c: torch.Tensor) -> np.ndarray:
    """Hungarian matching maximising total IoU: ``perm`` with ``perm[j]`` = the previous id for current
    cluster ``j`` (square ``C``). Relabelling the current clusters by ``perm`` keeps ids stable."""
    from scipy.optimize import linear_sum_assignment

    cost = -c.detach().double().cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = np.arange(c.shape[1])
    perm[cols] = rows
    return perm


def ensemble(new: torch.Tensor, prev: torch.Tensor | None, momentum: float,
             c_hat: torch.Tensor | None = None) -> torch.Tensor:
    """RLCC eq. 5 on soft labels with the class axis first: ``momentum * new + (1 - momentum) * C^T prev``.

    ``c_hat`` ``None`` means the identity (same classes). The result is renormalised to sum 1 per pixel.
    """
    if prev is None:
        return new.float()
    old = prev.float() if c_hat is None else propagate(prev, c_hat)
    out = momentum * new.float() + (1.0 - momentum) * old
    return out / out.sum(0, keepdim=True).clamp_min(1e-12)


def relabel(soft: torch.Tensor, perm: np.ndarray) -> torch.Tensor:
    """Reorder the class axis 0 of ``soft`` so current cluster ``j`` becomes id ``perm[j]``."""
    out = torch.empty_like(soft)
    out[torch.as_tensor(perm, dtype=torch.long)] = soft
    return out
