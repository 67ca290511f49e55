"""Pluggable teacher models: one contract over panoedge's own, ONNX, TorchScript and Hugging Face models.

A teacher takes perspective images ``(B, 3, H, W)`` float RGB in [0, 1] and returns a
:class:`TeacherOutput` at ``H x W``: softmax ``probs`` ``(B, K, H, W)`` with its ``classes``,
and/or ``depth`` ``(B, 1, H, W)`` with its ``depth_kind`` (``metric``, ``relative`` or
``inverse-relative``). Specs name the kind and where the model is:

=========================  ==================================================================
``builtin:FOLDER``         ``teacher.pt`` + ``teacher.json`` from ``panoedge teacher train``
``onnx:MODEL.onnx``        any ONNX model plus its sidecar ``MODEL.yaml`` (see ``sidecar.py``)
``torchscript:MODEL.pt``   a TorchScript module plus its sidecar ``MODEL.yaml``
``hf:ID_OR_DIR``           a transformers segmenter or depth model (``hf-seg:``/``hf-depth:``
                           force the task); a local folder, or a hub id through the hub cache
``A+B``                    a :class:`CombinedTeacher`: classes from the first part that has
                           them, depth from the first part that has depth
=========================  ==================================================================

Example, a real teacher pair for an outdoor student (needs ``transformers``, and the hub or its
cache)::

    from panoedge.models.teachers import apply_class_map, load_class_map, load_teacher
    from panoedge.synth.world import class_names

    teacher = load_teacher("hf:nvidia/segformer-b2-finetuned-cityscapes-1024-1024"
                           "+hf:depth-anything/Depth-Anything-V2-Small-hf", device="cuda")
    cmap = load_class_map("cityscapes19_to_outdoor", teacher.classes, class_names("outdoor"))
    out = teacher.predict(images)                   # images (B, 3, H, W) in [0, 1]
    probs, ignore = apply_class_map(out.probs, cmap)  # (B, 10, H, W), (B, 1, H, W)
    out.depth, out.depth_kind                       # (B, 1, H, W), "inverse-relative"

Importing the adapter modules below registers their kinds in :data:`TEACHER_KINDS`; heavy imports
(``onnxruntime``, ``transformers``) happen only when such a teacher is loaded.
"""

from __future__ import annotations

import re

import torch

from panoedge.errors import UsageError, unknown_name
from panoedge.models.teachers.base import (
    DEPTH_KINDS,
    TEACHER_KINDS,
    ModelTeacher,
    Teacher,
    TeacherOutput,
    register_teacher_kind,
    resolve_device,
)
from panoedge.models.teachers.builtin import BuiltinTeacher, read_teacher_meta, save_teacher_folder
from panoedge.models.teachers.classmap import (
    ClassMap,
    apply_class_map,
    load_class_map,
    shipped_class_maps,
)
from panoedge.models.teachers.hf_teacher import HFTeacher
from panoedge.models.teachers.onnx_teacher import OnnxTeacher
from panoedge.models.teachers.sidecar import Sidecar, read_sidecar
from panoedge.models.teachers.torchscript_teacher import TorchScriptTeacher


class CombinedTeacher(Teacher):
    """Several teachers as one: ``probs``/``classes`` from the first part that has classes,
    ``depth``/``depth_kind`` from the first part that has depth (one call when that is the
    same part). Every part must contribute something. ``features`` come from the part that
    gives the classes, else the depth part.
    """

    def __init__(self, parts: list[Teacher]):
        seg = next((p for p in parts if p.classes is not None), None)
        depth = next((p for p in parts if p.depth_kind is not None), None)
        unused = [p.name for p in parts if p is not seg and p is not depth]
        if unused:
            raise UsageError(f"teacher {' + '.join(p.name for p in parts)}: {', '.join(unused)} adds nothing "
                             "(classes come from the first part that has them, depth likewise)")
        self.parts, self.seg_part, self.depth_part = parts, seg, depth
        self.name = "+".join(p.name for p in parts)
        self.classes = seg.classes if seg else None
        self.depth_kind = depth.depth_kind if depth else None
        first = seg or depth
        self.input_hw, self.device = first.input_hw, first.device

    def predict(self, images: torch.Tensor, features: bool = False) -> TeacherOutput:
        """Each used part's :meth:`Teacher.predict`, merged (shapes as in :class:`TeacherOutput`)."""
        first = self.seg_part or self.depth_part
        out = first.predict(images, features=features)
        if self.seg_part is None:
            return out
        merged = TeacherOutput(probs=out.probs, classes=out.classes, features=out.features)
        if self.depth_part is self.seg_part:
            merged.depth, merged.depth_kind = out.depth, out.depth_kind
        elif self.depth_part is not None:
            d = self.depth_part.predict(images, features=features and out.features is None)
            merged.depth, merged.depth_kind = d.depth, d.depth_kind
            if merged.features is None:
                merged.features = d.features
        return merged


def _split_spec(spec: str) -> list[str]:
    """``"hf:A+onnx:b+c.onnx"`` -> ``["hf:A", "onnx:b+c.onnx"]``: splits only before ``+KIND:``."""
    kinds = "|".join(re.escape(k) for k in sorted(TEACHER_KINDS, key=len, reverse=True))
    return re.split(rf"\+(?=(?:{kinds}):)", spec)


def _load_one(spec: str, device: torch.device) -> Teacher:
    kind, sep, target = spec.partition(":")
    if not sep or not kind:
        raise UsageError(f"teacher spec {spec!r}: expected KIND:PATH_OR_ID with KIND one of "
                         f"{', '.join(sorted(TEACHER_KINDS))}")
    if kind not in TEACHER_KINDS:
        raise unknown_name("teacher kind", kind, TEACHER_KINDS)
    if not target:
        raise UsageError(f"teacher spec {spec!r}: nothing after {kind}:; give a path or id")
    return TEACHER_KINDS[kind](target, device)


def load_teacher(spec: str, device: str | torch.device = "cpu") -> Teacher:
    """Load the teacher ``spec`` (see the module docstring) onto ``device``.

    Raises ``UsageError`` for a malformed spec or unknown kind (listing the valid kinds),
    ``DataError`` for a missing or unreadable model, ``ConfigError`` for a bad sidecar or
    ``teacher.json`` field; all before any image is processed.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"teacher spec {spec!r}: expected KIND:PATH_OR_ID, e.g. hf:nvidia/segformer-b0-finetuned-ade-512-512")
    dev = resolve_device(device)
    parts = [_load_one(s, dev) for s in _split_spec(spec.strip())]
    return parts[0] if len(parts) == 1 else CombinedTeacher(parts)


__all__ = [
    "DEPTH_KINDS",
    "TEACHER_KINDS",
    "BuiltinTeacher",
    "ClassMap",
    "CombinedTeacher",
    "HFTeacher",
    "ModelTeacher",
    "OnnxTeacher",
    "Sidecar",
    "Teacher",
    "TeacherOutput",
    "TorchScriptTeacher",
    "apply_class_map",
    "load_class_map",
    "load_teacher",
    "read_sidecar",
    "read_teacher_meta",
    "register_teacher_kind",
    "save_teacher_folder",
    "shipped_class_maps",
]
