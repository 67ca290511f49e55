"""The compact panoramic student: one shared encoder-decoder, a segmentation and a depth head.

Shapes: input ``image`` ``(B, 3, H, W)`` float32 RGB, normalised as ``model.preprocess`` says,
``H`` and ``W`` multiples of 32 (ERP, so normally ``W == 2 H``). Outputs, as a dict:
``"seg"`` logits ``(B, K, H, W)`` and ``"depth"`` range in metres ``(B, 1, H, W)`` in
``(min_depth_m, max_depth_m)`` (CONVENTIONS.md: Euclidean distance along the ray).

Architecture: a stride-2 stem (optionally fed the row latitude), four ResNet stages at strides
4/8/16/32, a light FPN decoder back to stride 4 (depthwise-separable smoothing), then per head a
depthwise-separable 3x3 conv, a 1x1 conv and a circular bilinear upsample x4. At stride 4 a full
3x3 conv would cost half the network's FLOPs for little accuracy: the separable one is what
lets ``pano-small`` run 512x1024 live on two CPU cores. Depth is ``min + (max - min) * sigmoid(z)``: positive, bounded,
and built from ops a TensorRT DLA runs (no exp or softplus).

Seam: the input is wrapped once for the stem and stage 1, then once at the start of each later
stage and once per decoder level; convolutions run "valid" across the width on the wrapped
columns, upsampling keeps the exact ones (:mod:`panoedge.models.wrap`). Eight width concats
instead of one per 3x3 conv and upsample (24 in ``pano-small``), with outputs equal to the
per-conv wrap (:meth:`PanoStudent.forward_per_conv`) to float rounding: what lets the TensorRT
DLA take the network in few loadables (``panoedge build`` lints the count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from panoedge.errors import UsageError
from panoedge.models.blocks import LATITUDE_ENCODINGS, ConvBNAct, SepConvBNAct, StemConv, make_stage, wrap_upsample
from panoedge.models.wrap import add_ext, crop_w, rewrap, run_ext, stage_wrap, upsample_ext, wrap_pad_w
from panoedge.models.registry import register_student

HEADS = ("seg", "depth")
STRIDE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIONS = ("heads", "max_depth_m", "min_depth_m", "latitude", "mean", "std")


@dataclass(frozen=True)
class StudentConfig:
    """Everything that defines a student; written into every exported artifact.

    ``widths``/``depths`` are the channels and block counts of the stride 4/8/16/32 stages.
    ``mean``/``std`` describe preprocessing: ``x = (rgb_uint8 / 255 - mean) / std`` per channel.
    """

    name: str
    num_classes: int
    stem: int
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder: int
    head: int
    heads: tuple[str, ...] = HEADS
    max_depth_m: float = 80.0
    min_depth_m: float = 0.1
    latitude: str | None = "sin"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        heads = (self.heads,) if isinstance(self.heads, str) else tuple(self.heads)
        if not heads or any(h not in HEADS for h in heads):
            raise UsageError(f"heads {heads!r}: choose one or both of {', '.join(HEADS)}")
        object.__setattr__(self, "heads", tuple(h for h in HEADS if h in heads))
        if int(self.num_classes) != self.num_classes or self.num_classes < 1:
            raise UsageError(f"num_classes {self.num_classes!r}: must be a positive integer")
        if not 0.0 < self.min_depth_m < self.max_depth_m:
            raise UsageError(f"depth range ({self.min_depth_m}, {self.max_depth_m}) m: "
                             "need 0 < min_depth_m < max_depth_m")
        if self.latitude is not None and self.latitude not in LATITUDE_ENCODINGS:
            raise UsageError(f"latitude {self.latitude!r}: choose sin, cos or None")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UsageError("mean and std: three values each, std positive")
        for key in ("widths", "depths", "mean", "std"):
            object.__setattr__(self, key, tuple(getattr(self, key)))

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class FPNDecoder(nn.Module):
    """Top-down FPN: strides 4/8/16/32 features -> one ``(B, decoder, H/4, W/4)`` map.

    Each level gets a 1x1 lateral; the coarser map is upsampled x2 (circularly), added, and
    smoothed by a depthwise-separable 3x3 conv.
    """

    def __init__(self, widths: tuple[int, ...], out: int):
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNAct(w, out, 1) for w in widths)
        self.smooth = nn.ModuleList(SepConvBNAct(out, out) for _ in widths[:-1])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = self.smooth[i](wrap_upsample(y, 2) + self.lateral[i](feats[i]))
        return y

    def forward_ext(self, feats: list[tuple[torch.Tensor, tuple[int, int]]]):
        """:meth:`forward` on stage outputs ``[(f, ext), ...]``: ``(y, ext)``, extended by :data:`HEAD_NEED`.

        Each lateral output is wrapped once (by :data:`LEVEL_NEED`, the top one by :data:`TOP_NEED`):
        cheaper than carrying those columns through every block of the stage before it.
        """
        y, ey = rewrap(*self.lateral[-1].forward_ext(*feats[-1]), TOP_NEED)
        for i in range(len(feats) - 2, -1, -1):
            up, eu = upsample_ext(y, ey, 2)
            lat, el = rewrap(*self.lateral[i].forward_ext(*feats[i]), LEVEL_NEED)
            y, ey = self.smooth[i].forward_ext(*add_ext(up, eu, lat, el))
        return y, ey


class Head(nn.Module):
    """Depthwise-separable 3x3 + 1x1 conv at stride 4: ``(B, cin, h, w) -> (B, cout, h, w)`` (not yet upsampled)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.conv = SepConvBNAct(cin, mid)
        self.out = nn.Conv2d(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x))

    def forward_ext(self, x: torch.Tensor, ext):
        y, ey = self.conv.forward_ext(x, ext)
        return self.out(y), ey  # 1x1, no padding: the extension passes through


#: Wrapped columns the decoder gives each level: the heads' depthwise 3x3 and x4 upsample need 2
#: on the decoder output, each FPN level's depthwise 3x3 one more, and a x2 upsample of ``a``
#: columns leaves ``2a - 1`` (:func:`panoedge.models.wrap.upsample_geometry`).
HEAD_NEED = 2
LEVEL_NEED = HEAD_NEED + 1
TOP_NEED = (LEVEL_NEED + 1 + 1) // 2


class PanoStudent(nn.Module):
    """Shared-encoder segmentation + depth network for ERP images (see module docstring)."""

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = c = config
        self.stem = StemConv(3, c.stem, 3, stride=2, latitude=c.latitude)
        cins = (c.stem,) + c.widths[:-1]
        self.stages = nn.ModuleList(make_stage(i, o, d) for i, o, d in zip(cins, c.widths, c.depths))
        self.decoder = FPNDecoder(c.widths, c.decoder)
        self.heads = nn.ModuleDict()
        if "seg" in c.heads:
            self.heads["seg"] = Head(c.decoder, c.head, c.num_classes)
        if "depth" in c.heads:
            self.heads["depth"] = Head(c.decoder, c.head, 1)
        #: wrap of the input (feeding the stem and stage 1), then of each later stage's input
        self.wraps = [stage_wrap([self.stem, *self.stages[0]], 0)]
        self.wraps += [stage_wrap(list(st), 0) for st in list(self.stages)[1:]]

    @property
    def preprocess(self) -> dict:
        """How to turn an 8-bit RGB ERP frame into ``image``, without torch."""
        return {"layout": "NCHW", "color": "RGB", "dtype": "float32", "scale": 1.0 / 255.0,
                "mean": list(self.config.mean), "std": list(self.config.std),
                "formula": "(rgb_uint8 * scale - mean) / std", "size_multiple": STRIDE}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image`` ``(B, 3, H, W)`` -> ``{"seg": (B, K, H, W), "depth": (B, 1, H, W)}``.

        In eval mode (inference, export) one wrap per stage; in training mode the per-conv wrap
        (:meth:`forward_per_conv`), so batch-norm statistics never count a wrapped column twice.
        """
        if self.training:
            return self.forward_per_conv(image)
        check_input(image)
        x, e = self.stem.forward_ext(wrap_pad_w(image, self.wraps[0]), (self.wraps[0],) * 2)
        feats = []
        for i, stage in enumerate(self.stages):
            if i:
                x, e = rewrap(x, e, self.wraps[i])
            x, e = run_ext(stage, x, e)
            feats.append((x, e))
        y, ey = self.decoder.forward_ext(feats)
        out = {}
        if "seg" in self.heads:
            out["seg"] = crop_w(*upsample_ext(*self.heads["seg"].forward_ext(y, ey), 4), (0, 0))
        if "depth" in self.heads:
            lo, hi = self.config.min_depth_m, self.config.max_depth_m
            z, ez = self.heads["depth"].forward_ext(y, ey)
            out["depth"] = crop_w(*upsample_ext(torch.sigmoid(z) * (hi - lo) + lo, ez, 4), (0, 0))
        return out

    def forward_per_conv(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference: every conv and upsample wraps its own input (what :meth:`forward` equals)."""
        check_input(image)
        x = self.stem(image)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = self.decoder(feats)
        out = {}
        if "seg" in self.heads:
            out["seg"] = wrap_upsample(self.heads["seg"](y), 4)
        if "depth" in self.heads:
            lo, hi = self.config.min_depth_m, self.config.max_depth_m
            out["depth"] = wrap_upsample(torch.sigmoid(self.heads["depth"](y)) * (hi - lo) + lo, 4)
        return out


def check_input(image: torch.Tensor) -> None:
    """Raise ``UsageError`` unless ``image`` is ``(B, 3, H, W)`` with ``H``, ``W`` multiples of 32."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise UsageError(f"image of shape {tuple(image.shape)}: expected (B, 3, H, W)")
    h, w = int(image.shape[-2]), int(image.shape[-1])
    if h <= 0 or w <= 0 or h % STRIDE or w % STRIDE:
        raise UsageError(f"image size {h}x{w}: H and W must be positive multiples of {STRIDE}")


def build_student(arch: dict, num_classes: int, kw: dict) -> PanoStudent:
    """A :class:`PanoStudent` from an architecture dict plus user options (``OPTIONS``)."""
    unknown = sorted(set(kw) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown student option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    return PanoStudent(StudentConfig(num_classes=num_classes, **arch, **kw))



@register_student(nominal_params=500_000)
def pano_nano(num_classes: int, **kw) -> PanoStudent:
    """~0.5M params: the smallest, for DLA-class accelerators and tight CPU budgets."""
    return build_student(dict(name="pano-nano", stem=16, widths=(16, 32, 64, 144), depths=(1, 1, 2, 1),
                              decoder=48, head=32), num_classes, kw)


@register_student(nominal_params=1_500_000)
def pano_small(num_classes: int, **kw) -> PanoStudent:
    """~1.5M params: the default balance of accuracy and speed."""
    return build_student(dict(name="pano-small", stem=24, widths=(24, 48, 96, 176), depths=(1, 2, 2, 2),
                              decoder=64, head=48), num_classes, kw)


@register_student(nominal_params=4_000_000)
def pano_base(num_classes: int, **kw) -> PanoStudent:
    """~4M params: the most accurate, for GPU-class edge devices."""
    return build_student(dict(name="pano-base", stem=32, widths=(32, 64, 128, 256), depths=(2, 2, 4, 2),
                              decoder=96, head=64), num_classes, kw)
