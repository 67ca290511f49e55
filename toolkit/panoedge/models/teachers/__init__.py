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
from panoedge.models.teachers.spec import CombinedTeacher, ResolvedTeacher, load_teacher, resolve_teacher_spec


__all__ = [
    "DEPTH_KINDS",
    "TEACHER_KINDS",
    "BuiltinTeacher",
    "ClassMap",
    "CombinedTeacher",
    "HFTeacher",
    "ModelTeacher",
    "OnnxTeacher",
    "ResolvedTeacher",
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
    "resolve_teacher_spec",
    "save_teacher_folder",
    "shipped_class_maps",
]
