"""Seam wrapping with few width-axis concats: pad once, run the convolutions "valid" across the width.

Convention (CONVENTIONS.md): ERP feature maps wrap horizontally. Padding every 3x3 conv by one
wrapped column costs a ``Concat`` along the width per conv; TensorRT's DLA concatenates along
channels only, so each such concat runs on the GPU and splits the network into another DLA
loadable (at most 16 per core). Here a tensor travels with its *extension* ``(l, r)``: ``l``
wrapped columns on the left of the ``W`` core columns and ``r`` on the right. A convolution
with horizontal padding 0 on an extended tensor computes exactly what the wrap-padded
convolution computes on the core, and leaves a smaller extension; strides keep phase by
dropping a column where needed; bilinear upsampling keeps the columns whose interpolation
does not touch the clamped edge. One wrap at the start of a stage then feeds all its blocks,
and the decoder and heads need none. Outputs equal the per-conv wrap to float rounding.

Integers only in :func:`conv_geometry` and :func:`upsample_geometry`, shared by the tensor code and the
planner (:func:`stage_wrap`) so both agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Ext = tuple[int, int]


def wrap_pad_w(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` by ``p`` columns on each side, wrapping around the seam (one ``Concat``).

    Returns ``(B, C, H, W + 2p)``: the left pad is the last ``p`` columns, the right pad the first
    ``p`` (``p`` may exceed ``W``: the panorama then repeats). ``p == 0`` returns ``x``.
    """
    if p == 0:
        return x
    q, r = divmod(int(p), int(x.shape[-1]))
    left = ([x[..., -r:]] if r else []) + [x] * q
    right = [x] * q + ([x[..., :r]] if r else [])
    return torch.cat(left + [x] + right, dim=-1)


def crop_w(x: torch.Tensor, ext: Ext, to: Ext) -> torch.Tensor:
    """Drop extension columns: ``x`` extended by ``ext`` -> extended by ``to`` (each side no larger)."""
    (l, r), (l2, r2) = ext, to
    if l2 > l or r2 > r:
        raise ValueError(f"cannot crop extension {ext} to the larger {to}")
    if (l, r) == (l2, r2):
        return x
    return x[..., l - l2:] if r == r2 else x[..., l - l2: r2 - r]  # negative end: no shape arithmetic in ONNX


def rewrap(x: torch.Tensor, ext: Ext, p: int) -> tuple[torch.Tensor, Ext]:
    """The core of ``x`` wrapped by ``p`` on each side (one ``Concat``)."""
    return wrap_pad_w(crop_w(x, ext, (0, 0)), p), (p, p)


def conv_geometry(ext: Ext, k: int, s: int, p: int) -> tuple[int, Ext]:
    """For a width-``k``, stride-``s`` conv that wraps by ``p`` on a tensor extended by ``ext``:
    ``(columns to drop on the left first, the output's extension)``.

    The first output centre must sit on a core column that is a multiple of ``s`` (where the
    wrap-padded conv puts its centres) and at least ``p`` columns in. The core width must be a
    multiple of ``s`` (ERP students: multiples of 32). Raises ``ValueError`` if ``ext`` is too
    small for the conv to see every column it needs.
    """
    l, r = ext
    if l < p or r < p:
        raise ValueError(f"extension {ext} is smaller than the conv's padding {p}")
    c = p + (l - p) % s           # first centre, in extended coordinates
    lo = (l - c) // s
    ro = _right_ext(l, r, k=k, s=s, p=p, c=c)
    if ro < 0:
        raise ValueError(f"extension {ext} leaves the conv short of columns on the right")
    return c - p, (lo, ro)


def _right_ext(l: int, r: int, k: int, s: int, p: int, c: int) -> int:
    """Output columns past the core on the right (see :func:`conv_geometry`), by counting on a nominal width."""
    w = 64 * s                     # any multiple of s gives the same answer
    total = l + w + r - (c - p)
    n = (total - k) // s + 1
    return n - (l - c) // s - w // s


def upsample_geometry(ext: Ext, s: int) -> tuple[int, Ext]:
    """Bilinear x``s`` (half-pixel) of a tensor extended by ``ext``: ``(columns to drop per side, output ext)``.

    Output column ``o`` reads input ``(o + 0.5) / s - 0.5``; the first ``ceil((s - 1) / 2)``
    columns on each side read the clamped edge and are dropped.
    """
    m = s // 2
    l, r = ext
    if s * l - m < 0 or s * r - m < 0:
        raise ValueError(f"extension {ext} is too small for a x{s} upsample across the seam")
    return m, (s * l - m, s * r - m)


def upsample_ext(x: torch.Tensor, ext: Ext, s: int) -> tuple[torch.Tensor, Ext]:
    """Bilinear x``s`` across the seam of an extended tensor (see :func:`upsample_geometry`)."""
    m, out = upsample_geometry(ext, s)
    y = F.interpolate(x, scale_factor=float(s), mode="bilinear", align_corners=False)
    return (y[..., m: -m] if m else y), out


def add_ext(a: torch.Tensor, ea: Ext, b: torch.Tensor, eb: Ext) -> tuple[torch.Tensor, Ext]:
    """``a + b`` on their common extension."""
    common = (min(ea[0], eb[0]), min(ea[1], eb[1]))
    return crop_w(a, ea, common) + crop_w(b, eb, common), common


def run_ext(modules, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
    """Chain ``forward_ext`` through ``modules``."""
    for m in modules:
        x, ext = m.forward_ext(x, ext)
    return x, ext


def chain_ext(modules, ext: Ext) -> Ext:
    """The extension ``modules`` leave from an input extended by ``ext`` (integers only)."""
    for m in modules:
        ext = m.ext_out(ext)
    return ext


def stage_wrap(modules, need: int, start: int = 0, limit: int = 1024) -> int:
    """The smallest wrap ``p`` for which ``modules`` fed ``(p, p)`` leave at least ``need`` each side."""
    for p in range(max(start, 0), limit):
        try:
            lo, ro = chain_ext(modules, (p, p))
        except ValueError:
            continue
        if lo >= need and ro >= need:
            return p
    raise ValueError(f"no wrap up to {limit} columns leaves {need} columns for these blocks")
