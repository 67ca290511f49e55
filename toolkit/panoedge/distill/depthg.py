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
    if start is None:
        centroid = pts[ok].mean(0)
        d0 = ((pts - centroid) ** 2).sum(1).masked_fill(~ok, -1.0)
        start = int(d0.argmax())
    idx = torch.empty(n, dtype=torch.long, device=pts.device)
    idx[0] = start
    dist = ((pts - pts[start]) ** 2).sum(1).masked_fill(~ok, -1.0)
    for i in range(1, n):
        j = int(dist.argmax())
        idx[i] = j
        dist = torch.minimum(dist, ((pts - pts[j]) ** 2).sum(1).masked_fill(~ok, -1.0))
    return idx


def erp_points(depth: torch.Tensor) -> torch.Tensor:
    """Points ``(B, h, w, 3)`` from ERP range ``(B, h, w)`` (metres or relative units)."""
    b, h, w = depth.shape
    rays = erp_rays(h, w, depth.device, torch.float32)
    return depth.float()[..., None] * rays[None]


def depth_correlation(points: torch.Tensor) -> torch.Tensor:
    """``D`` ``(n, n)`` = ``exp(-dist / mean pairwise dist)`` for ``points`` ``(n, 3)``."""
    d = torch.cdist(points.float(), points.float())
    scale = d.sum() / max(1, d.numel() - len(points))
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
    losses = []
    for i in range(b):
        m = ok[i].reshape(-1)
        if int(m.sum()) < 2:
            continue
        idx = farthest_point_sample(pts[i], min(n_points, int(m.sum())), m)
        dc = depth_correlation(pts[i][idx])
        fi = f[i][:, idx]
        fi = F.normalize(fi - fi.mean(1, keepdim=True), dim=0)  # centred over the sample (STEGO's spatial centring)
        s = fi.t() @ fi
        wab = area_w[idx][:, None] * area_w[idx][None, :]
        bias = (wab * dc).sum() / wab.sum()
        losses.append(-((wab * (dc - bias) * s.clamp_min(0)).sum() / wab.sum()))
    if not losses:
        return (feats * 0.0).sum()
    return torch.stack(losses).mean()
