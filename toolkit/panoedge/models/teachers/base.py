"""The teacher contract, shared pre/post-processing and the teacher-kind registry.

A teacher takes a batch of perspective images ``(B, 3, H, W)`` float RGB in [0, 1] and returns
a :class:`TeacherOutput` at the same ``H x W``: softmax class probabilities with the teacher's
own class names, and/or depth with its kind. Adapters implement :meth:`ModelTeacher.run` on the
model's own input (resized to its size and normalised); :meth:`ModelTeacher.predict` does the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from panoedge.errors import DataError, UsageError

DEPTH_KINDS = ("metric", "relative", "inverse-relative")
"""``metric``: metres; ``relative``: depth up to scale (and shift); ``inverse-relative``: disparity-like."""


@dataclass
class TeacherOutput:
    """What a teacher says about a batch, at the input image size ``H x W``.

    ``probs`` ``(B, K, H, W)`` float32 softmax probabilities (sum 1 over ``K``) with ``classes``
    naming the ``K`` channels; ``depth`` ``(B, 1, H, W)`` float32 of kind ``depth_kind``;
    ``features`` optional ``(B, C, h, w)`` model features (any ``h x w``) for label-free modes.
    Fields a teacher does not provide are ``None``.
    """

    probs: torch.Tensor | None = None
    classes: tuple[str, ...] | None = None
    depth: torch.Tensor | None = None
    depth_kind: str | None = None
    features: torch.Tensor | None = None


class Teacher(ABC):
    """A loaded teacher: ``name`` (its spec), ``classes``, ``depth_kind``, ``input_hw``, ``device``.

    ``classes`` is ``None`` for a depth-only teacher and ``depth_kind`` ``None`` for a
    segmentation-only one. ``input_hw`` is the size the model runs at (nominal where it
    adapts to the image's aspect ratio).
    """

    name: str
    classes: tuple[str, ...] | None = None
    depth_kind: str | None = None
    input_hw: tuple[int, int]
    device: torch.device = torch.device("cpu")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, classes={len(self.classes) if self.classes else None}, "
                f"depth_kind={self.depth_kind!r}, input_hw={self.input_hw})")

    @abstractmethod
    def predict(self, images: torch.Tensor, features: bool = False) -> TeacherOutput:
        """Teach on ``images`` ``(B, 3, H, W)`` float RGB in [0, 1]: a :class:`TeacherOutput` at ``H x W``.

        Outputs are float32 on ``images.device``; ``features`` asks for model features too
        (returned where the model offers them).
        """


class ModelTeacher(Teacher):
    """A teacher wrapping one model: shared resizing, normalisation and softmax around :meth:`run`.

    Subclasses set the :class:`Teacher` attributes, ``pixel_scale`` and ``mean``/``std`` (the
    model sees ``(rgb * pixel_scale - mean) / std`` per channel, ``rgb`` in [0, 1]; ``pixel_scale``
    is 255 for models fed 0-255),
    ``seg_is_probs`` (whether :meth:`run`'s ``"seg"`` is already probabilities rather than
    logits), and implement :meth:`run`.
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_scale: float = 1.0
    seg_is_probs: bool = False

    @abstractmethod
    def run(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """Run the model on its own input ``x`` ``(B, 3, h, w)`` (resized, normalised, on ``device``).

        Returns a dict with ``"seg"`` ``(B, K, h', w')`` logits (or probabilities, see
        ``seg_is_probs``) if the teacher has classes, ``"depth"`` ``(B, 1, h', w')`` if it has a
        depth kind and, when ``features`` is true and the model offers them, ``"features"``
        ``(B, C, h'', w'')``. Output sizes may differ from ``h x w``; :meth:`predict` resizes.
        """

    def model_hw(self, h: int, w: int) -> tuple[int, int]:
        """The model's input size for images of size ``h x w`` (default: fixed ``input_hw``)."""
        return self.input_hw

    def predict(self, images: torch.Tensor, features: bool = False) -> TeacherOutput:
        """Teach on ``images`` ``(B, 3, H, W)`` float RGB in [0, 1]; outputs at ``H x W``, on ``images.device``.

        Resizes to the model's input size (bilinear, antialiased when shrinking), normalises,
        runs :meth:`run` under ``torch.no_grad``, resizes outputs back (bilinear) and turns
        segmentation logits into softmax probabilities.
        """
        check_images(images)
        h, w = int(images.shape[-2]), int(images.shape[-1])
        with torch.no_grad():
            x = images.to(self.device, torch.float32)
            mh, mw = self.model_hw(h, w)
            if (mh, mw) != (h, w):
                x = F.interpolate(x, size=(mh, mw), mode="bilinear", align_corners=False,
                                  antialias=mh < h or mw < w)
            mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
            raw = self.run((x * self.pixel_scale - mean) / std, features)
            out = TeacherOutput(features=raw.get("features"))
            if self.classes is not None:
                seg = _resize(raw["seg"].float(), h, w)
                out.probs = (seg if self.seg_is_probs else torch.softmax(seg, dim=1)).to(images.device)
                out.classes = self.classes
            if self.depth_kind is not None:
                out.depth = _resize(raw["depth"].float(), h, w).to(images.device)
                out.depth_kind = self.depth_kind
            if out.features is not None:
                out.features = out.features.float().to(images.device)
        return out


def _resize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h', w')`` to ``(B, C, h, w)`` (no-op when equal)."""
    if t.shape[-2:] == (h, w):
        return t
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)


def check_images(images: torch.Tensor) -> None:
    """Raise ``UsageError`` unless ``images`` is a floating ``(B, 3, H, W)`` batch in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"teacher images of shape {shape}: expected (B, 3, H, W) RGB")
    if not images.is_floating_point():
        raise UsageError(f"teacher images of dtype {images.dtype}: expected float RGB in [0, 1]")
    if images.numel() and (float(images.min()) < -1e-3 or float(images.max()) > 1.0 + 1e-3):
        raise UsageError(f"teacher images range [{float(images.min()):.3g}, {float(images.max()):.3g}]: "
                         "expected RGB in [0, 1] (divide 8-bit images by 255)")


def check_seg(name: str, seg: torch.Tensor, classes: tuple[str, ...], batch: int) -> None:
    """Raise ``DataError`` unless a model's ``seg`` output is ``(batch, len(classes), h, w)``."""
    if seg.ndim != 4 or seg.shape[0] != batch or seg.shape[1] != len(classes):
        raise DataError(f"{name}: segmentation output of shape {tuple(seg.shape)}; expected "
                        f"({batch}, {len(classes)}, h, w) for its {len(classes)} classes")


def as_depth(name: str, depth: torch.Tensor, batch: int) -> torch.Tensor:
    """A model's depth output ``(B, h, w)`` or ``(B, 1, h, w)`` as ``(B, 1, h, w)``; else ``DataError``."""
    if depth.ndim == 3 and depth.shape[0] == batch:
        return depth.unsqueeze(1)
    if depth.ndim == 4 and depth.shape[0] == batch and depth.shape[1] == 1:
        return depth
    raise DataError(f"{name}: depth output of shape {tuple(depth.shape)}; expected ({batch}, 1, h, w) or ({batch}, h, w)")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; a CUDA device on a machine without CUDA is a ``UsageError``."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r}: CUDA is not available on this machine")
    return dev


# --- registry of teacher kinds (the part of a spec before the first ':') ------------------

TEACHER_KINDS: dict[str, Callable[[str, torch.device], Teacher]] = {}
"""Kind name -> loader ``fn(target, device) -> Teacher``; fill it with :func:`register_teacher_kind`."""


def register_teacher_kind(kind: str):
    """Decorator registering ``fn(target: str, device: torch.device) -> Teacher`` for specs ``kind:target``."""

    def decorate(fn: Callable[[str, torch.device], Teacher]):
        if kind in TEACHER_KINDS:
            raise RuntimeError(f"teacher kind {kind!r} registered twice")
        TEACHER_KINDS[kind] = fn
        return fn

    return decorate
