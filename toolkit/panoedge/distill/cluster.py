"""Label-free mode: cluster teacher features into pseudo classes, stable across generations.

When the teacher gives features but no (mappable) classes, its per-pixel features are fused
onto the ERP grid from tangent patches (:func:`teacher_erp_features`, the same patches and
weights as the pseudo labels), L2-normalised, and clustered by cosine k-means (k-means++ start,
pixels drawn in proportion to solid angle; STEGO/DepthG cluster their features the same way).
Soft pseudo labels are ``softmax(cos(f, centre) / tau)`` over the ``k`` centres.

From generation 1 on the student's own features are re-clustered; the new cluster ids are
matched to the previous generation's by the RLCC IoU consensus matrix and the Hungarian
algorithm (:func:`panoedge.distill.rlcc.match_clusters`) before the soft labels are ensembled,
so cluster ``j`` means the same thing in every generation. :func:`cluster_miou` scores
clusters against ground-truth classes after the same kind of one-to-one matching.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from panoedge.distill import rlcc


def kmeans(x: torch.Tensor, k: int, iters: int = 30, weights: torch.Tensor | None = None,
           gen: torch.Generator | None = None) -> torch.Tensor:
    """Cosine k-means of ``x`` ``(N, C)``: returns unit centres ``(k, C)``; ``weights`` ``(N,)`` per sample."""
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    x = F.normalize(x.float(), dim=1)
    w = torch.ones(len(x)) if weights is None else weights.float().cpu()
    first = int(torch.multinomial(w / w.sum(), 1, generator=gen))
    centres = [x[first]]
    d = (1.0 - x @ x[first]).clamp_min(0)
    for _ in range(1, k):
        p = w * d * d
        i = int(torch.multinomial(p / p.sum(), 1, generator=gen)) if float(p.sum()) > 0 else int(torch.randint(len(x), (1,), generator=gen))
        centres.append(x[i])
        d = torch.minimum(d, (1.0 - x @ x[i]).clamp_min(0))
    c = torch.stack(centres)
    for _ in range(iters):
        assign = (x @ c.t()).argmax(1)
        onehot = F.one_hot(assign, k).float() * w[:, None]
        sums = onehot.t() @ x
        empty = onehot.sum(0) == 0
        c = torch.where(empty[:, None], c, F.normalize(sums, dim=1))
    return c


def soft_assign(feats: torch.Tensor, centres: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Soft cluster labels ``(k, H, W)`` of features ``(C, H, W)``: ``softmax(cos / tau)`` over centres."""
    c, h, w = feats.shape
    f = F.normalize(feats.reshape(c, -1).t().float(), dim=1)
    return torch.softmax(f @ centres.t() / tau, dim=1).t().reshape(-1, h, w)


def fit_clusters(feats: list[torch.Tensor], k: int, area: torch.Tensor, max_samples: int = 20000,
                 seed: int = 0) -> torch.Tensor:
    """Centres ``(k, C)`` from ERP feature maps ``[(C, H, W), ...]`` with area weights ``(H, W)``."""
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.cat([f.reshape(f.shape[0], -1).t() for f in feats])
    w = area.reshape(-1).repeat(len(feats)).float()
    if len(x) > max_samples:
        sel = torch.multinomial(w / w.sum(), max_samples, replacement=False, generator=gen)
        x, w = x[sel], torch.ones(max_samples)
    return kmeans(x, k, weights=w, gen=gen)


def stable_relabel(new_soft: list[torch.Tensor], prev_soft: list[torch.Tensor] | None, k: int,
                   area: torch.Tensor, momentum: float) -> list[torch.Tensor]:
    """RLCC in the label-free mode: renumber this generation's clusters to match the previous
    ones (IoU consensus + Hungarian), then ensemble with the propagated previous soft labels."""
    if prev_soft is None:
        return [s.float() for s in new_soft]
    cur = torch.stack([s.argmax(0) for s in new_soft])
    prev = torch.stack([s.argmax(0) for s in prev_soft])
    wts = area.expand_as(cur[0]).expand_as(cur)
    perm = rlcc.match_clusters(rlcc.iou_consensus(prev, cur, k, k, wts))
    matched = [rlcc.relabel(s.float(), perm) for s in new_soft]
    c_hat = rlcc.normalize_rows(rlcc.iou_consensus(prev, torch.stack([s.argmax(0) for s in matched]), k, k, wts))
    return [rlcc.ensemble(m, p, momentum, c_hat) for m, p in zip(matched, prev_soft)]


FEATURE_SOURCES = ("features", "probs")
"""What the label-free mode clusters: the teacher's features, or (a teacher that gives none, such
as a TorchScript module returning only its outputs) its class probabilities."""


def feature_source(teacher, layout) -> str:
    """``"features"`` or ``"probs"``: what :func:`teacher_erp_features` will cluster for ``teacher``,
    found by one probe patch, so a teacher that gives neither fails before the pseudo-label pass."""
    from panoedge.errors import UsageError

    probe = teacher.predict(torch.full((1, 3, *layout.patch_hw), 0.5, device=teacher.device), features=True)
    if probe.features is not None:
        return "features"
    if probe.probs is not None:
        return "probs"
    raise UsageError(f"teacher {teacher.name} gives neither features nor classes: the label-free mode (--clusters) "
                     "clusters one of them; add a segmentation teacher (SEG+DEPTH) or one that returns features")


def teacher_erp_features(teacher, erp: torch.Tensor, layout, source: str = "features") -> torch.Tensor:
    """Teacher features fused onto ERP: ``erp`` ``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H, W)``.

    Runs ``teacher.predict(..., features=True)`` on the tangent patches of ``layout``, resizes the
    features to the patch size and fuses them like probabilities, a chunk of patches at a time
    (:class:`~panoedge.distill.tangent.StreamFuser`). ``source="probs"`` fuses the class
    probabilities instead. ``DataError`` if the teacher gives no features.
    """
    from panoedge.distill.tangent import PATCH_BATCH, StreamFuser, erp_to_patches
    from panoedge.errors import DataError

    h, w = erp.shape[-2:]
    outs = []
    for i in range(erp.shape[0]):
        patches = erp_to_patches(erp[i:i + 1].float().clamp(0, 1), layout)
        fuser = None
        for s in range(0, len(patches), PATCH_BATCH):
            out = teacher.predict(patches[s:s + PATCH_BATCH], features=source == "features")
            f = out.features if source == "features" else out.probs
            if f is None:
                raise DataError(f"teacher {teacher.name}: gives no {source}; the label-free mode clusters teacher {source}")
            f = F.interpolate(f, size=layout.patch_hw, mode="bilinear", align_corners=False)
            fuser = fuser or StreamFuser(layout, (h, w), f.shape[1], f.device)
            fuser.add(s, f)
        outs.append(fuser.result())
    return torch.stack(outs)


def cluster_miou(pred: np.ndarray, gt: np.ndarray, k: int, num_classes: int, weights=None) -> float:
    """Mean IoU (fraction) of cluster ids ``pred`` against class ids ``gt`` (255 ignored) after a
    one-to-one Hungarian matching of clusters to classes (the usual unsupervised-segmentation score)."""
    from scipy.optimize import linear_sum_assignment

    from panoedge import metrics

    p, g = np.asarray(pred).reshape(-1).astype(np.int64), np.asarray(gt).reshape(-1).astype(np.int64)
    wts = np.ones(p.size) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    keep = g != 255
    cm = np.zeros((k, num_classes))
    np.add.at(cm, (p[keep], g[keep]), wts[keep])
    rows, cols = linear_sum_assignment(-cm)
    mapping = np.full(k, num_classes, dtype=np.int64)
    mapping[rows] = cols
    conf = metrics.confusion_matrix(mapping[p], g, num_classes + 1, wts)  # class K: unmatched clusters
    iou = metrics.per_class_iou(conf)[:num_classes]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
