"""panoedge's own teacher network: a large student-like net for perspective images.

Shapes: input ``image`` ``(B, 3, H, W)`` float32 RGB, normalised as the teacher folder's
``teacher.json`` says (``(rgb - mean) / std`` with ``rgb`` in [0, 1]), ``H`` and ``W``
multiples of 32. Outputs, as a dict: ``"seg"`` logits ``(B, K, H, W)`` and ``"depth"``
metric z-depth in metres ``(B, 1, H, W)`` in ``(min_depth_m, max_depth_m)`` (pinhole depth,
CONVENTIONS.md); with ``return_features=True`` also ``"features"`` ``(B, decoder, H/4, W/4)``,
the decoder's output that both heads read.

Architecture: the students' blocks (:mod:`panoedge.models.blocks`) at a larger size, a
ResNet-34-like encoder (stride-2 stem, four stages at strides 4/8/16/32), the same FPN
decoder back to stride 4 and a 3x3 + 1x1 head per task, upsampled x4 bilinearly.

Perspective images have no seam, so by default (``erp=False``) every block's horizontal wrap
padding becomes ordinary zero padding (the conv's own ``padding``) and upsampling does not
interpolate across the left/right border; ``erp=True`` keeps the students' ERP behaviour.
No latitude channel either way (it means nothing on a pinhole image).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from panoedge.errors import UsageError, unknown_name
from panoedge.models.blocks import ConvBNAct, StemConv, make_stage, wrap_upsample
from panoedge.models.students import HEADS, STRIDE, FPNDecoder, Head

OPTIONS = ("heads", "max_depth_m", "min_depth_m", "erp", "width_mult")


@dataclass(frozen=True)
class TeacherNetConfig:
    """Everything that defines a teacher network; ``teacher.json`` stores the options that built it.

    ``widths``/``depths`` are the channels and block counts of the stride 4/8/16/32 stages;
    ``erp`` switches the ERP wrap padding on (see the module docstring).
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
    erp: bool = False

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
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def use_zero_padding(model: nn.Module) -> nn.Module:
    """Turn every :class:`ConvBNAct`'s horizontal wrap padding into zero padding, in place.

    A block pads ``pad`` columns by wrapping and ``pad`` rows through its conv; afterwards the
    conv zero-pads both (``padding=(pad, pad)``) and nothing wraps. Shapes are unchanged.
    """
    for mod in model.modules():
        if isinstance(mod, ConvBNAct) and mod.pad:
            mod.conv.padding = (mod.pad, mod.pad)
            mod.pad = 0
    return model


def _plain_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear ``(B, C, H, W) -> (B, C, scale*H, scale*W)`` clamping at every border."""
    return F.interpolate(x, scale_factor=float(scale), mode="bilinear", align_corners=False)


class TeacherFPN(FPNDecoder):
    """The students' FPN decoder with a choice of upsampling (wrapping or not)."""

    def __init__(self, widths: tuple[int, ...], out: int, upsample: Callable):
        super().__init__(widths, out)
        self.upsample = upsample

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = self.smooth[i](self.upsample(y, 2) + self.lateral[i](feats[i]))
        return y


class TeacherNet(nn.Module):
    """Shared-encoder segmentation + metric depth network for perspective images."""

    def __init__(self, config: TeacherNetConfig):
        super().__init__()
        self.config = c = config
        self.upsample = wrap_upsample if c.erp else _plain_upsample
        self.stem = StemConv(3, c.stem, 3, stride=2, latitude=None)
        cins = (c.stem,) + c.widths[:-1]
        self.stages = nn.ModuleList(make_stage(i, o, d) for i, o, d in zip(cins, c.widths, c.depths))
        self.decoder = TeacherFPN(c.widths, c.decoder, self.upsample)
        self.heads = nn.ModuleDict()
        if "seg" in c.heads:
            self.heads["seg"] = Head(c.decoder, c.head, c.num_classes)
        if "depth" in c.heads:
            self.heads["depth"] = Head(c.decoder, c.head, 1)
        if not c.erp:
            use_zero_padding(self)

    def forward(self, image: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        """``image`` ``(B, 3, H, W)`` -> ``{"seg": (B, K, H, W), "depth": (B, 1, H, W)}``.

        With ``return_features`` the dict also holds ``"features"`` ``(B, decoder, H/4, W/4)``.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise UsageError(f"image of shape {tuple(image.shape)}: expected (B, 3, H, W)")
        h, w = int(image.shape[-2]), int(image.shape[-1])
        if h <= 0 or w <= 0 or h % STRIDE or w % STRIDE:
            raise UsageError(f"image size {h}x{w}: H and W must be positive multiples of {STRIDE}")
        x = self.stem(image)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = self.decoder(feats)
        out = {}
        if "seg" in self.heads:
            out["seg"] = self.upsample(self.heads["seg"](y), 4)
        if "depth" in self.heads:
            lo, hi = self.config.min_depth_m, self.config.max_depth_m
            out["depth"] = self.upsample(torch.sigmoid(self.heads["depth"](y)) * (hi - lo) + lo, 4)
        if return_features:
            out["features"] = y
        return out


# --- registry (timm style, like the students') ---------------------------------------------

_TEACHER_NETS: dict[str, Callable[..., TeacherNet]] = {}


def register_teacher_net(fn: Callable[..., TeacherNet]) -> Callable[..., TeacherNet]:
    """Decorator registering a factory ``fn(num_classes, **kw)``; ``teacher_large`` -> ``"teacher-large"``."""
    key = fn.__name__.replace("_", "-")
    if key in _TEACHER_NETS:
        raise RuntimeError(f"teacher network {key!r} registered twice")
    _TEACHER_NETS[key] = fn
    return fn


def list_teacher_nets() -> list[str]:
    """Names of every registered teacher network, sorted."""
    return sorted(_TEACHER_NETS)


def create_teacher_net(name: str, num_classes: int, **kw) -> TeacherNet:
    """Build teacher network ``name``; ``kw`` are ``OPTIONS`` (unknown names raise ``UsageError``).

    ``width_mult`` scales every channel count (rounded to a multiple of 8, at least 8); 1.0 is
    the registered size, smaller values make quick test models of the same shape.
    """
    if name not in _TEACHER_NETS:
        raise unknown_name("teacher network", name, _TEACHER_NETS)
    return _TEACHER_NETS[name](num_classes, **kw)


def _build(arch: dict, num_classes: int, kw: dict) -> TeacherNet:
    unknown = sorted(set(kw) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown teacher network option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    kw = dict(kw)
    mult = float(kw.pop("width_mult", 1.0))
    if not mult > 0:
        raise UsageError(f"width_mult {mult}: must be positive")

    def scale(c: int) -> int:
        return max(8, int(round(c * mult / 8)) * 8)

    arch = dict(arch, stem=scale(arch["stem"]), widths=tuple(scale(w) for w in arch["widths"]),
                decoder=scale(arch["decoder"]), head=scale(arch["head"]))
    return TeacherNet(TeacherNetConfig(num_classes=num_classes, **arch, **kw))


@register_teacher_net
def teacher_large(num_classes: int, **kw) -> TeacherNet:
    """~24M params: ResNet-34-sized encoder, 256-channel FPN; trained by ``panoedge teacher train``."""
    return _build(dict(name="teacher-large", stem=64, widths=(64, 128, 256, 512), depths=(3, 4, 6, 3),
                       decoder=256, head=128), num_classes, kw)
