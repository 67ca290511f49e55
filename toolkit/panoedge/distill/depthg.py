"""DepthG on the sphere: depth-feature correlation with farthest-point-sampled 3D points.

ERP depth (range along each pixel's ray) unprojects to a point cloud ``P = depth * ray``
(CONVENTIONS.md rays, camera at the origin). Per image, :func:`farthest_point_sample` picks
``n`` points spread evenly in 3D (DepthG sec. 3.4), not evenly in pixels, so the poles are
not oversampled and near and far surfaces are both covered.

For the sampled pixels ``a, b`` with student features ``f`` (centred over the sample, then
L2-normalised, so post-ReLU features can correlate negatively) the feature correlation is
``S_ab = f_a . f_b``; the depth correlation is ``D_ab = exp(-|P_a - P_b| / s)``,
``s`` the mean pairwise distance of the sample (so relative, affine-ambiguous teacher depth
works after its shift is removed; for metric depth ``s`` is just a length scale). DepthG's loss
(eq. 6, STEGO-style with zero clamping and a bias ``b``, here the mean of ``D``, i.e. centred)::

    L = - mean_ab  w_a w_b (D_ab - b) max(S_ab, 0)

pulls features of nearby 3D points together and pushes far ones apart; ``w`` are solid angles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panoedge.geometry.torch_ops import erp_area_weights, erp_rays


def farthest_point_sample(points: torch.Tensor, n: int, valid: torch.Tensor | None = None,
                          start: int | None = None) -> torch.Tensor:
    """Indices ``(n,)`` of ``n`` points of ``points`` ``(N, 3)`` chosen by farthest point sampling.

    Starts at ``start`` (default: the valid point farthest from the centroid, deterministic) and
    adds, each time, the point farthest from those chosen. ``valid`` ``(N,)`` bool excludes points.
    If fewer than ``n`` points are valid, indices repeat.
    """
    pts = points.float()
    ok = torch.ones(len(pts), dtype=torch.bool, device=pts.device) if valid is None else valid
    if not bool(ok.any()):
        return torch.zeros(n, dtype=torch.long, device=pts.device)
    starts = None if start is None else torch.tensor([int(start)], device=pts.device)
    return farthest_point_sample_batch(pts[None], n, ok[None], starts)[0]


def farthest_point_sample_batch(points: torch.Tensor, n: int, valid: torch.Tensor,
                                start: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`farthest_point_sample` for a batch at once: indices ``(B, n)`` from ``points`` ``(B, N, 3)``.

    Every image runs the same greedy steps in lockstep (one ``argmax`` per step for the whole
    batch instead of one per image), so each row equals the single-image result. ``valid``
    ``(B, N)`` bool; each image needs at least one valid point.
    """
    pts = points.float()
    b = len(pts)
    rows = torch.arange(b, device=pts.device)
    if start is None:
        okf = valid.float()[..., None]
        centroid = (pts * okf).sum(1) / okf.sum(1).clamp_min(1.0)
        start = ((pts - centroid[:, None]) ** 2).sum(2).masked_fill(~valid, -1.0).argmax(1)
    idx = torch.empty(b, n, dtype=torch.long, device=pts.device)
    idx[:, 0] = start
    dist = ((pts - pts[rows, start][:, None]) ** 2).sum(2).masked_fill(~valid, -1.0)
    for i in range(1, n):  # invalid points stay at -1: the minimum with a distance >= 0 keeps them there
        j = dist.argmax(1)
        idx[:, i] = j
        torch.minimum(dist, ((pts - pts[rows, j][:, None]) ** 2).sum(2), out=dist)
    return idx


def erp_points(depth: torch.Tensor) -> torch.Tensor:
    """Points ``(B, h, w, 3)`` from ERP range ``(B, h, w)`` (metres or relative units)."""
    b, h, w = depth.shape
    rays = erp_rays(h, w, depth.device, torch.float32)
    return depth.float()[..., None] * rays[None]


def depth_correlation(points: torch.Tensor) -> torch.Tensor:
    """``D`` ``(..., n, n)`` = ``exp(-dist / mean pairwise dist)`` for ``points`` ``(..., n, 3)`` (per leading index)."""
    d = torch.cdist(points.float(), points.float())
    n = points.shape[-2]
    scale = d.sum((-2, -1), keepdim=True) / max(1, n * n - n)
    return torch.exp(-d / scale.clamp_min(1e-6))


def depthg_loss(feats: torch.Tensor, depth: torch.Tensor, n_points: int = 64, area: bool = True,
                valid: torch.Tensor | None = None, relative: bool = False) -> torch.Tensor:
    """DepthG's depth-feature correlation loss, averaged over the batch.

    ``feats`` ``(B, C, h, w)`` student features (gradients flow), ``depth`` ``(B, h, w)`` ERP range
    at the same size (0 or non-finite = invalid), ``valid`` optional extra mask. ``relative``
    removes the per-image minimum valid depth first (affine-ambiguous teachers), keeping range
    ordering but not the unknown shift.
    """
    b, c, h, w = feats.shape
    ok = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok = ok & valid
    d = torch.where(ok, depth, torch.zeros_like(depth)).float()
    if relative:
        lo = torch.stack([d[i][ok[i]].min() if ok[i].any() else d.new_zeros(()) for i in range(b)])
        d = torch.where(ok, d - lo[:, None, None] + 1e-3, d)
    pts = erp_points(d).reshape(b, -1, 3)
    area_w = (erp_area_weights(h, w, feats.device) if area else torch.ones(h, 1, device=feats.device)).expand(h, w)
    area_w = area_w.reshape(-1)
    f = feats.float().reshape(b, c, -1)
    count = ok.reshape(b, -1).sum(1)
    full = count >= n_points  # images sampled together; the rest (few valid points) one by one
    losses = []
    if bool(full.any()):
        sel = full.nonzero()[:, 0]
        idx = farthest_point_sample_batch(pts[sel], n_points, ok.reshape(b, -1)[sel])
        p = torch.gather(pts[sel], 1, idx[..., None].expand(-1, -1, 3))
        fi = torch.gather(f[sel], 2, idx[:, None].expand(-1, c, -1))
        losses.append(_correlation_loss(fi, p, area_w[idx]))
    for i in (~full).nonzero()[:, 0].tolist():
        m = ok[i].reshape(-1)
        if int(m.sum()) < 2:
            continue
        idx = farthest_point_sample(pts[i], int(m.sum()), m)
        losses.append(_correlation_loss(f[i][None][..., idx], pts[i][idx][None], area_w[idx][None]))
    if not losses:
        return (feats * 0.0).sum()
    return torch.cat(losses).mean()


def _correlation_loss(fi: torch.Tensor, p: torch.Tensor, aw: torch.Tensor) -> torch.Tensor:
    """Per-image DepthG losses ``(B,)`` of sampled features ``(B, C, n)``, points ``(B, n, 3)``, solid angles ``(B, n)``."""
    dc = depth_correlation(p)
    fi = F.normalize(fi - fi.mean(2, keepdim=True), dim=1)  # centred over the sample (STEGO's spatial centring)
    s = fi.transpose(1, 2) @ fi
    wab = aw[:, :, None] * aw[:, None, :]
    bias = (wab * dc).sum((1, 2)) / wab.sum((1, 2))
    return -((wab * (dc - bias[:, None, None]) * s.clamp_min(0)).sum((1, 2)) / wab.sum((1, 2)))
