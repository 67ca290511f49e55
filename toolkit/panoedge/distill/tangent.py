"""Teachers on tangent-plane (gnomonic) patches, fused back onto the ERP grid.

A perspective teacher sees an ERP image badly (its distortion grows with latitude). Here the
sphere is covered by ``N`` overlapping pinhole patches (:class:`PatchLayout`), the teacher runs
on each, and the answers are fused into ERP:

* class probabilities: a weighted mean over the patches that see each ERP pixel, the weight
  ``cos^2(pi a / 2) cos^2(pi b / 2)`` of the angular offsets ``a = atan(x/z) / (hfov/2)`` and
  ``b = atan(y/z) / (vfov/2)`` from the patch centre (1 at the centre, 0 on the patch border);
* depth, by kind (:func:`fuse_depth`): metric z-depth becomes range through each patch
  pixel's ray, then the same weighted mean; relative depth gets a per-patch scale and shift
  from one global least-squares solve over the overlaps, and the fused result is "relative".

Everything works on rays, so the ERP seam and the poles need no special case. Patch ``n`` of
image ``b`` is row ``b * N + n`` of a ``(B * N, C, h, w)`` patch batch. Fusion tables are
built once per ``(layout, erp_hw)`` (NumPy, cached) and sample all patches in one
``grid_sample`` per image. The layout, tables and solve live in
:mod:`panoedge.distill.tangent_layout`; this module holds the torch-side API.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from panoedge.distill.tangent_layout import (PatchLayout, default_layout, fusion_table, make_layout, patch_rays,
                                             solve_alignment)
from panoedge.errors import UsageError
from panoedge.models.teachers import DEPTH_KINDS, ClassMap, TeacherOutput, apply_class_map

__all__ = ["PatchLayout", "StreamFuser", "default_layout", "erp_to_patches", "fuse_depth", "fuse_probs", "make_layout", "tangent_predict"]

PATCH_BATCH = 16
"""Most patches the teacher sees per call in :func:`tangent_predict`."""
PATCH_CHUNK_BYTES = 256 << 20
"""Bound on one call's class-probability maps (``patches x K x h x w`` float32, counted three
times for the logits, their resize and the softmax): a 150-class teacher at 512 x 512 sees one
patch per call, a 10-class one at 64 x 64 :data:`PATCH_BATCH`."""


def patches_per_call(n_classes: int, patch_hw) -> int:
    """How many patches go to the teacher at once (see :data:`PATCH_CHUNK_BYTES`)."""
    per_patch = 3 * 4 * max(1, int(n_classes)) * int(patch_hw[0]) * int(patch_hw[1])
    return int(min(PATCH_BATCH, max(1, PATCH_CHUNK_BYTES // per_patch)))


def erp_to_patches(erp: torch.Tensor, layout: PatchLayout) -> torch.Tensor:
    """Gnomonic patches of ERP images: ``(B, C, H, W)`` -> ``(B * N, C, h, w)`` (bilinear, seam-safe).

    Convention: patch ``n`` looks along ``layout.centres()[n]`` with camera-to-world rotation
    ``layout.rotations()[n]``; its pixels are those of ``layout.camera()``.
    """
    if erp.ndim != 4:
        raise UsageError(f"erp of shape {tuple(erp.shape)}: expected (B, C, H, W)")
    from panoedge.geometry.torch_ops import sample_erp

    b, c = erp.shape[:2]
    n, (h, w) = layout.n_patches, layout.patch_hw
    rays = _torch_const(layout, "rays", erp.device, erp.dtype)  # (N*h, w, 3)
    strip = sample_erp(erp, rays.unsqueeze(0).expand(b, -1, -1, -1))      # (B, C, N*h, w)
    return strip.view(b, c, n, h, w).permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w)


@lru_cache(maxsize=16)
def _torch_const(layout: PatchLayout, what: str, device, dtype) -> torch.Tensor:
    """Cached tensors of a layout: ``"rays"`` the patch strip's world rays ``(N * h, w, 3)``,
    ``"cos"`` the z of each patch pixel's unit ray in its own frame ``(h, w)``."""
    arr = patch_rays(layout) if what == "rays" else layout.camera().rays()[0][..., 2]
    return torch.tensor(np.asarray(arr), device=device, dtype=dtype)


def _split(patches: torch.Tensor, layout: PatchLayout, what: str) -> tuple[int, torch.Tensor]:
    """``(B, strip)``: a ``(B * N, C, h, w)`` patch batch as ``(B, C, N * h, w)`` strips."""
    n, (h, w) = layout.n_patches, layout.patch_hw
    if patches.ndim != 4 or patches.shape[0] % n or tuple(patches.shape[-2:]) != (h, w):
        raise UsageError(f"{what} of shape {tuple(patches.shape)}: expected (B * {n}, C, {h}, {w}) for this layout")
    b, c = patches.shape[0] // n, patches.shape[1]
    return b, patches.reshape(b, n, c, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, n * h, w)


def _sample(strip: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of one strip ``(C, N*h, w)`` at ``grid`` ``(M, 2)`` -> ``(C, M)``."""
    out = F.grid_sample(strip[None], grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0]


def fuse_probs(patch_probs: torch.Tensor, layout: PatchLayout, erp_hw) -> torch.Tensor:
    """Fuse per-patch maps ``(B * N, K, h, w)`` into ERP ``(B, K, H, W)``.

    Each ERP pixel is the weighted mean of the patches that see it (weights: module
    docstring), so probabilities that sum to 1 per patch pixel still sum to 1. Works for any
    per-pixel quantity that may be averaged (features, logits). :class:`StreamFuser` does the
    same a few patches at a time.
    """
    b, _ = _split(patch_probs, layout, "patch_probs")
    n = layout.n_patches
    outs = []
    for i in range(b):
        fuser = StreamFuser(layout, erp_hw, patch_probs.shape[1], patch_probs.device, patch_probs.dtype)
        fuser.add(0, patch_probs[i * n:(i + 1) * n])
        outs.append(fuser.result())
    return torch.stack(outs)


class StreamFuser:
    """Fuses one panorama's per-patch maps into ERP ``(K, H, W)`` as they come, a chunk of patches
    at a time (:meth:`add`), so no more than one chunk of patch maps is ever held: memory is the
    ERP accumulator plus one chunk, whatever the patch count or the number of classes.

    Convention: patch ``n`` of ``layout``; a chunk ``[start, start + len)`` is ``(len, K, h, w)``.
    """

    def __init__(self, layout: PatchLayout, erp_hw, channels: int, device, dtype=torch.float32):
        self.layout, self.table = layout, fusion_table(layout, tuple(int(v) for v in erp_hw))
        self.device, self.dtype = device, dtype
        self.acc = torch.zeros(channels, self.table.hw[0] * self.table.hw[1], device=device, dtype=dtype)
        self.seen = np.zeros(layout.n_patches, bool)

    def add(self, start: int, chunk: torch.Tensor) -> None:
        """Accumulate patches ``start .. start + len(chunk) - 1`` (``(len, K, h, w)``)."""
        n, (h, w) = self.layout.n_patches, self.layout.patch_hw
        m = int(chunk.shape[0])
        if chunk.ndim != 4 or tuple(chunk.shape[-2:]) != (h, w) or not 0 <= start <= start + m <= n:
            raise UsageError(f"patch chunk of shape {tuple(chunk.shape)} at {start}: expected (m, K, {h}, {w}) "
                             f"within the layout's {n} patches")
        if self.seen[start:start + m].any():
            raise UsageError(f"patches {start}..{start + m - 1}: some were added twice")
        sel = _chunk_entries(self.table, start, start + m)
        dev, dt = self.device, self.dtype
        grid = self.table.torch("grid", dev, dt)[sel].clone()
        grid[:, 1] = ((grid[:, 1] + 1) / 2 * n - start) / m * 2 - 1  # full strip -> this chunk's strip
        strip = chunk.to(dev, dt).permute(1, 0, 2, 3).reshape(chunk.shape[1], m * h, w)
        vals = _sample(strip, grid) * self.table.torch("weight", dev, dt)[sel]
        self.acc.index_add_(1, self.table.torch("pix", dev)[sel], vals)
        self.seen[start:start + m] = True

    def result(self) -> torch.Tensor:
        """The fused ``(K, H, W)`` (every patch must have been added)."""
        if not self.seen.all():
            raise UsageError(f"fused {int(self.seen.sum())} of {self.layout.n_patches} patches")
        out = self.acc / self.table.torch("wsum", self.device, self.dtype)
        return out.view(-1, *self.table.hw)


def _chunk_entries(table, start: int, stop: int) -> torch.Tensor:
    """Indices of the fusion-table entries of patches ``start .. stop - 1`` (cached order by patch)."""
    if "by_patch" not in table._torch:
        order = np.argsort(table.patch, kind="stable")
        bounds = np.searchsorted(table.patch[order], np.arange(table.n_patches + 1))
        table._torch["by_patch"] = (torch.from_numpy(order), bounds)
    order, bounds = table._torch["by_patch"]
    return order[int(bounds[start]):int(bounds[stop])]


def fuse_depth(patch_depth: torch.Tensor, layout: PatchLayout, erp_hw, kind: str) -> torch.Tensor:
    """Fuse per-patch depth ``(B * N, 1, h, w)`` of ``kind`` into ERP range ``(B, 1, H, W)``, 0 = invalid.

    * ``metric``: patch z-depth in metres becomes range (``z / cos``, the ray's z in the patch
      frame) per patch pixel, then the weighted mean: the result is metric range.
    * ``relative`` (z-depth up to scale and shift) and ``inverse-relative`` (disparity up to
      scale and shift): per patch ``n`` a scale ``s_n`` and shift ``t_n`` make the patches
      agree where they overlap, from one weighted least-squares solve per image (see
      :func:`panoedge.distill.tangent_layout.solve_alignment`: ``relative`` aligns ranges
      ``(s d + t) / cos``, ``inverse-relative`` inverse ranges ``cos (s d + t)``; gauge mean
      ``s_n`` = 1, a weak pull of mean ``t_n`` to 0). The fused result is **relative**: range up
      to one global scale (and, with a real teacher, approximately a shift), normalised to a
      median of 1 per image. Train on it with a scale-and-shift-invariant loss.
    """
    if kind not in DEPTH_KINDS:
        raise UsageError(f"depth kind {kind!r}: choose one of {', '.join(DEPTH_KINDS)}")
    table = fusion_table(layout, tuple(int(v) for v in erp_hw))
    d = patch_depth.float()
    valid = (torch.isfinite(d) & (d > 0)) if kind == "metric" else torch.isfinite(d)
    d = torch.where(valid, d, torch.zeros_like(d))
    if kind == "metric":
        d = d / _torch_const(layout, "cos", d.device, d.dtype)
    b, strips = _split(torch.cat([d * valid, valid.to(d.dtype)], 1), layout, "patch_depth")
    dev = d.device
    grid, pix, wts = table.torch("grid", dev), table.torch("pix", dev), table.torch("weight", dev)
    hw = table.hw[0] * table.hw[1]
    out = d.new_zeros(b, hw)
    for i in range(b):
        num, den = _sample(strips[i], grid)
        ok = den > 0.5
        val = num / den.clamp_min(1e-6)
        if kind != "metric":
            val, ok = _align(table, val, ok, kind)
        w = wts * ok
        acc = torch.zeros(hw, device=dev).index_add_(0, pix, w * val)
        wsum = torch.zeros(hw, device=dev).index_add_(0, pix, w)
        fused = torch.where(wsum > 0, acc / wsum.clamp_min(1e-12), torch.zeros_like(acc))
        if kind != "metric":
            fused = _to_relative_range(fused, kind)
        out[i] = fused
    return out.view(b, 1, *table.hw)


def _align(table, val: torch.Tensor, ok: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned per-entry values ``f * (s_n d + t_n)`` (``f = 1/cos`` or ``cos``) and their validity."""
    v = val.detach().cpu().double().numpy()
    m = ok.cpu().numpy()
    scale = float(np.median(np.abs(v[m]))) if m.any() else 1.0
    scale = scale if scale > 0 else 1.0
    s, t = solve_alignment(table, v / scale, m, kind)
    f = 1.0 / table.cos if kind == "relative" else table.cos
    q = f * (s[table.patch] * (v / scale) + t[table.patch])
    return torch.from_numpy(q).to(val.device, val.dtype), ok & torch.from_numpy(q > 0).to(ok.device)


def _to_relative_range(q: torch.Tensor, kind: str) -> torch.Tensor:
    """Fused aligned values -> positive range-like values with median 1 (0 = invalid)."""
    r = q if kind == "relative" else torch.where(q > 0, 1.0 / q.clamp_min(1e-12), torch.zeros_like(q))
    ok = torch.isfinite(r) & (r > 0)
    if not ok.any():
        return torch.zeros_like(r)
    r = torch.where(ok, r, torch.zeros_like(r))
    return r / r[ok].median()


def tangent_predict(teacher, erp_batch: torch.Tensor, layout: PatchLayout | None = None,
                    class_map: ClassMap | None = None, out_hw=None) -> TeacherOutput:
    """Run ``teacher`` on tangent patches of ``erp_batch`` ``(B, 3, H, W)`` in [0, 1]; fuse to ERP.

    Returns a :class:`TeacherOutput` at ``H x W``: ``probs`` ``(B, K, H, W)`` on the teacher's
    classes, or with ``class_map`` on its target (student) classes, summed per
    :func:`~panoedge.models.teachers.apply_class_map` (so ``probs.sum(1)`` is 1 minus the
    ignored mass); ``depth`` ``(B, 1, H, W)`` range with ``depth_kind`` ``"metric"`` for a metric
    teacher, else ``"relative"`` (see :func:`fuse_depth`); ``features`` are not fused (``None``).
    ``layout`` defaults to :func:`default_layout` for the teacher's ``input_hw``.
    Patches go to the teacher :func:`patches_per_call` at a time and their class probabilities are
    fused as they come (:class:`StreamFuser`): peak memory is one chunk of patch outputs plus the
    ERP result, whatever the number of patches or classes (depth, one channel, is kept for the
    global alignment of relative depth). ``out_hw`` fuses at another ERP
    size than the input's (patches sampled from a sharp panorama, labels at the training size).
    """
    layout = layout or default_layout(teacher.input_hw)
    b, _, h, w = erp_batch.shape
    if out_hw is not None:
        h, w = (int(v) for v in out_hw)
    n = layout.n_patches
    step = patches_per_call(len(teacher.classes) if teacher.classes else 1, layout.patch_hw)
    probs, depth = [], []
    for i in range(b):  # one panorama at a time, a bounded chunk of patches at a time
        patches = erp_to_patches(erp_batch[i:i + 1].float().clamp(0.0, 1.0), layout)
        fuser = None
        for start in range(0, n, step):
            out = teacher.predict(patches[start:start + step])
            if out.probs is not None:
                p = apply_class_map(out.probs, class_map)[0] if class_map is not None else out.probs
                fuser = fuser or StreamFuser(layout, (h, w), p.shape[1], p.device)
                fuser.add(start, p)
            if out.depth is not None:
                depth.append(out.depth)
        if fuser is not None:
            probs.append(fuser.result())
        del patches
    res = TeacherOutput()
    if probs:
        res.probs = torch.stack(probs)
        res.classes = tuple(class_map.target) if class_map is not None else tuple(teacher.classes)
    if depth:
        res.depth = fuse_depth(torch.cat(depth), layout, (h, w), teacher.depth_kind)
        res.depth_kind = "metric" if teacher.depth_kind == "metric" else "relative"
    return res
