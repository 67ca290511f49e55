"""ERP-aware building blocks for the student networks, in torch.

Convention (CONVENTIONS.md): feature maps are ``(B, C, H, W)`` on the equirectangular grid,
so column ``W-1`` neighbours column 0. Every spatial operation here wraps horizontally at
that seam and never zero-pads it; vertically (the poles) it zero-pads.

Deployability: the wrap is built from ``Slice`` + ``Concat`` along the width, and the
vertical zero padding is the convolution's own ``pads`` attribute (``padding=(p, 0)``), so the
exported graph holds no ``Pad`` node and no ``padding_mode='circular'``. Each block also has
``forward_ext(x, ext)``: the same computation on a tensor that already carries wrapped columns
(:mod:`panoedge.models.wrap`), so a network wraps once per stage instead of once per conv (the
DLA runs channel concats only; every width concat is a GPU layer and another DLA loadable). Blocks use only
conv, batch-norm (folded away at export by :meth:`ConvBNAct.fold`), ReLU, add, concat,
slice and bilinear resize. Channel counts are left to the caller (keep them multiples of 8).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from panoedge.errors import UsageError
from panoedge.geometry.sphere import erp_pixel_to_lonlat
from panoedge.models.wrap import Ext, add_ext, chain_ext, conv_geometry, run_ext, wrap_pad_w

__all__ = ["BasicBlock", "ConvBNAct", "SepConvBNAct", "StemConv", "make_stage", "wrap_pad_w", "wrap_upsample"]

LATITUDE_ENCODINGS = ("sin", "cos")


def wrap_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear upsampling by an integer ``scale`` that interpolates across the seam.

    ``(B, C, H, W) -> (B, C, scale*H, scale*W)``, half-pixel centres (``align_corners=False``).
    One wrapped column on each side feeds the interpolation; cropping ``scale`` output columns
    off each side then gives exactly circular bilinear interpolation horizontally (and the
    usual edge clamping vertically). Uses a constant ``scale_factor`` so the exported
    ``Resize`` has static scales and no shape arithmetic.
    """
    y = F.interpolate(wrap_pad_w(x, 1), scale_factor=float(scale), mode="bilinear",
                      align_corners=False)
    return y[..., scale:-scale]


def _activation(act: str | None) -> nn.Module:
    if act is None:
        return nn.Identity()
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "relu6":
        return nn.ReLU6(inplace=True)
    if act == "hardswish":
        return nn.Hardswish(inplace=True)
    raise UsageError(f"unknown activation {act!r}; valid: hardswish, relu, relu6")


class ConvBNAct(nn.Module):
    """Wrap-padded ``k x k`` convolution, batch-norm and activation.

    ``(B, cin, H, W) -> (B, cout, H / stride, W / stride)`` for ``H``, ``W`` divisible by
    ``stride`` and odd ``k``. After :meth:`fold` the batch-norm lives in the conv's weights and
    bias and the block is conv + activation only.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: str | None = "relu", groups: int = 1):
        super().__init__()
        if k % 2 != 1:
            raise UsageError(f"kernel size {k}: must be odd")
        self.pad = k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(self.pad, 0), bias=False, groups=groups)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(wrap_pad_w(x, self.pad))))

    def _geometry(self, ext: Ext) -> tuple[int, Ext]:
        return conv_geometry(ext, self.conv.kernel_size[1], self.conv.stride[1], self.pad)

    def ext_out(self, ext: Ext) -> Ext:
        """The extension :meth:`forward_ext` leaves from ``ext`` (integers only)."""
        return self._geometry(ext)[1]

    def _conv_ext(self, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
        drop, out = self._geometry(ext)
        return self.conv(x[..., drop:] if drop else x), out

    def forward_ext(self, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
        """:meth:`forward` on a tensor extended by ``ext`` wrapped columns: ``(y, y's extension)``."""
        y, out = self._conv_ext(x, ext)
        return self.act(self.bn(y)), out

    @torch.no_grad()
    def _bn_scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return scale, bn.bias - bn.running_mean * scale

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the batch-norm (its running statistics) into the conv; idempotent."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        scale, shift = self._bn_scale_shift()
        conv = self.conv
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                           padding=conv.padding, groups=conv.groups, bias=True)
        folded.to(device=conv.weight.device, dtype=conv.weight.dtype)
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        folded.bias.copy_(bias * scale + shift)
        self.conv = folded
        self.bn = nn.Identity()


class SepConvBNAct(nn.Sequential):
    """Depthwise-separable 3x3: a wrap-padded depthwise :class:`ConvBNAct`, then a pointwise one.

    ``(B, cin, H, W) -> (B, cout, H, W)`` at about ``1/9 + 1/cout`` of a full 3x3's cost: the
    decoder and heads run at stride 4, where a full 3x3 would be half the network's FLOPs.
    """

    def __init__(self, cin: int, cout: int, act: str | None = "relu"):
        super().__init__(ConvBNAct(cin, cin, 3, groups=cin), ConvBNAct(cin, cout, 1, act=act))

    def forward_ext(self, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
        return run_ext(self, x, ext)

    def ext_out(self, ext: Ext) -> Ext:
        return chain_ext(self, ext)


class StemConv(ConvBNAct):
    """The first :class:`ConvBNAct`, optionally fed a latitude channel.

    ``latitude`` is ``"sin"``, ``"cos"`` or ``None``. With it, the block behaves exactly as if
    the input carried a 4th channel holding ``sin(lat)`` (or ``cos(lat)``) of each row's pixel
    centre: because that channel is constant along a row and padding wraps horizontally, its
    convolution collapses to a ``(k, 1)`` kernel over one ``(1, 1, H, 1)`` column, which is
    added before the batch-norm and broadcast over batch and width. No per-pixel cost and no
    batch-dependent shapes. :meth:`bake` turns that term into a constant for one input height.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 2, act: str | None = "relu",
                 latitude: str | None = "sin"):
        super().__init__(cin, cout, k=k, stride=stride, act=act)
        if latitude is not None and latitude not in LATITUDE_ENCODINGS:
            raise UsageError(f"unknown latitude encoding {latitude!r}; valid: cos, sin, or None")
        self.latitude = latitude
        self.lat = None
        if latitude is not None:
            self.lat = nn.Conv2d(1, cout, (k, 1), stride=(stride, 1), padding=(self.pad, 0), bias=False)
        self.register_buffer("lat_baked", None)
        self.baked_h: int | None = None

    def latitude_column(self, h: int, device=None, dtype=None) -> torch.Tensor:
        """``(1, 1, h, 1)``: ``sin`` or ``cos`` of each ERP row's latitude (north row first)."""
        h = int(h)
        _, lat = erp_pixel_to_lonlat(0.0, np.arange(h, dtype=np.float64), h, 2 * h)
        col = np.sin(lat) if self.latitude == "sin" else np.cos(lat)
        return torch.as_tensor(col.astype(np.float32)).view(1, 1, h, 1).to(device=device, dtype=dtype)

    def latitude_term(self, h: int) -> torch.Tensor | None:
        """``(1, cout, h / stride, 1)`` added before the batch-norm, or ``None`` if switched off."""
        if self.lat is None:
            return None
        if self.lat_baked is not None:
            if h != self.baked_h:
                raise UsageError(f"latitude term baked for input height {self.baked_h}, got {h}")
            return self.lat_baked
        w = self.lat.weight
        return self.lat(self.latitude_column(h, device=w.device, dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(wrap_pad_w(x, self.pad))
        term = self.latitude_term(x.shape[-2])
        if term is not None:
            y = y + term
        return self.act(self.bn(y))

    def forward_ext(self, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
        y, out = self._conv_ext(x, ext)
        term = self.latitude_term(x.shape[-2])  # (1, C, h, 1): constant along the width
        if term is not None:
            y = y + term
        return self.act(self.bn(y)), out

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the batch-norm into the conv and into the latitude branch."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        scale, _ = self._bn_scale_shift()
        if self.lat is not None:
            self.lat.weight.mul_(scale.view(-1, 1, 1, 1))
        if self.lat_baked is not None:
            self.lat_baked.mul_(scale.view(1, -1, 1, 1))
        super().fold()

    @torch.no_grad()
    def bake(self, h: int) -> None:
        """Freeze the latitude term for input height ``h`` into a constant buffer (for export)."""
        if self.lat is None:
            return
        self.lat_baked = None
        self.lat_baked = self.latitude_term(h).detach().clone()
        self.baked_h = int(h)


class BasicBlock(nn.Module):
    """ResNet basic block with wrap padding: two 3x3 :class:`ConvBNAct`, residual add, ReLU.

    ``(B, cin, H, W) -> (B, cout, H / stride, W / stride)``. The shortcut is the identity when
    shapes match, else a strided 1x1 :class:`ConvBNAct` without activation.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, 3, stride=stride)
        self.conv2 = ConvBNAct(cout, cout, 3, act=None)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = ConvBNAct(cin, cout, 1, stride=stride, act=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))

    def forward_ext(self, x: torch.Tensor, ext: Ext) -> tuple[torch.Tensor, Ext]:
        y, ey = self.conv2.forward_ext(*self.conv1.forward_ext(x, ext))
        sc, es = (x, ext) if isinstance(self.shortcut, nn.Identity) else self.shortcut.forward_ext(x, ext)
        out, eo = add_ext(y, ey, sc, es)
        return self.act(out), eo

    def ext_out(self, ext: Ext) -> Ext:
        ey = self.conv2.ext_out(self.conv1.ext_out(ext))
        es = ext if isinstance(self.shortcut, nn.Identity) else self.shortcut.ext_out(ext)
        return (min(ey[0], es[0]), min(ey[1], es[1]))


def make_stage(cin: int, cout: int, depth: int, stride: int = 2) -> nn.Sequential:
    """``depth`` :class:`BasicBlock` s, the first one strided: ``(B, cin, H, W) -> (B, cout, H/s, W/s)``."""
    blocks = [BasicBlock(cin, cout, stride)]
    blocks += [BasicBlock(cout, cout) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)
