"""Teacher specs: parsing, loading, and the :class:`ResolvedTeacher` a run carries.

A spec (``builtin:DIR``, ``onnx:FILE``, ``hf:ID``, ``A+B``: see the package docstring) is read once,
by :func:`resolve_teacher_spec`, into a :class:`ResolvedTeacher`: the spec, its parts, the files its
outputs depend on, and the loaded model (per device, loaded on first use and kept). Distillation,
pseudo labels and evaluation all receive that one object instead of re-reading the string.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from panoedge.errors import UsageError, unknown_name
from panoedge.models.teachers.base import TEACHER_KINDS, Teacher, TeacherOutput, resolve_device

__all__ = ["CombinedTeacher", "ResolvedTeacher", "load_teacher", "resolve_teacher_spec", "split_spec"]


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


def split_spec(spec: str) -> list[str]:
    """``"hf:A+onnx:b+c.onnx"`` -> ``["hf:A", "onnx:b+c.onnx"]``: splits only before ``+KIND:``."""
    kinds = "|".join(re.escape(k) for k in sorted(TEACHER_KINDS, key=len, reverse=True))
    return re.split(rf"\+(?=(?:{kinds}):)", spec)


def load_teacher(spec: str, device: str | torch.device = "cpu") -> Teacher:
    """Load the teacher ``spec`` (see the module docstring) onto ``device``.

    Raises ``UsageError`` for a malformed spec or unknown kind (listing the valid kinds),
    ``DataError`` for a missing or unreadable model, ``ConfigError`` for a bad sidecar or
    ``teacher.json`` field; all before any image is processed.
    """
    return resolve_teacher_spec(spec).load(device)


def _check_part(spec: str) -> None:
    """Raise ``UsageError`` unless ``spec`` is ``KIND:TARGET`` with a registered ``KIND`` (nothing loaded)."""
    kind, sep, target = spec.partition(":")
    if not sep or not kind:
        raise UsageError(f"teacher spec {spec!r}: expected KIND:PATH_OR_ID with KIND one of "
                         f"{', '.join(sorted(TEACHER_KINDS))}")
    if kind not in TEACHER_KINDS:
        raise unknown_name("teacher kind", kind, TEACHER_KINDS)
    if not target:
        raise UsageError(f"teacher spec {spec!r}: nothing after {kind}:; give a path or id")


class ResolvedTeacher:
    """One teacher spec, resolved once; what a distillation run hands to its stages.

    ``spec`` is the normalised spec string (what ``config.json`` and reports record), ``parts``
    its ``KIND:TARGET`` parts. :meth:`load` gives the runnable :class:`Teacher` on a device
    (loaded on first use, then kept: the pseudo labels, the label-free clustering and the
    evaluation share one load); ``classes``, ``depth_kind`` and ``input_hw`` are the loaded
    teacher's (loaded on the CPU unless a device was loaded first); :meth:`release` frees the
    models (the trainer calls it once the labels are built, so a large teacher does not sit in
    memory through training). :meth:`fingerprint` names the files the teacher's outputs depend
    on (the pseudo-label cache key).
    """

    def __init__(self, spec: str, parts: tuple[str, ...]):
        self.spec, self.parts = spec, parts
        self._loaded: dict[str, Teacher] = {}

    def __repr__(self) -> str:
        return f"ResolvedTeacher({self.spec!r})"

    def __str__(self) -> str:
        return self.spec

    @property
    def name(self) -> str:
        return self.spec

    def load(self, device: str | torch.device = "cpu") -> Teacher:
        """The runnable teacher on ``device`` (see the class docstring; errors as :func:`load_teacher`)."""
        dev = resolve_device(device)
        key = str(dev)
        if key not in self._loaded:
            loaded = [TEACHER_KINDS[p.partition(":")[0]](p.partition(":")[2], dev) for p in self.parts]
            self._loaded[key] = loaded[0] if len(loaded) == 1 else CombinedTeacher(loaded)
        return self._loaded[key]

    def _any(self) -> Teacher:
        return next(iter(self._loaded.values())) if self._loaded else self.load("cpu")

    @property
    def classes(self) -> tuple[str, ...] | None:
        return self._any().classes

    @property
    def depth_kind(self) -> str | None:
        return self._any().depth_kind

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._any().input_hw

    def release(self) -> None:
        """Drop the loaded models (the next :meth:`load` loads again)."""
        self._loaded.clear()

    def fingerprint(self) -> list:
        """``[part, [(file, sha256), ...]]`` per part: what the teacher's outputs depend on.

        ``builtin:`` hashes ``teacher.pt`` and ``teacher.json``; a model file hashes itself and its
        ``.yaml`` sidecar; a local folder (``hf:DIR``) every file in it; a hub id only its name.
        """
        from panoedge.home import sha256_file

        out = []
        for part in self.parts:
            kind, _, target = part.partition(":")
            p = Path(target).expanduser()
            if kind == "builtin":
                files = [p / "teacher.pt", p / "teacher.json"]
            elif p.is_file():
                files = [p, p.with_suffix(".yaml")]
            elif p.is_dir():
                files = sorted(f for f in p.rglob("*") if f.is_file())
            else:
                files = []
            out.append([part, [(str(f.relative_to(p)) if p.is_dir() else f.name, sha256_file(f))
                               for f in files if f.is_file()]])
        return out


def resolve_teacher_spec(spec: str | ResolvedTeacher) -> ResolvedTeacher:
    """``spec`` parsed and checked (malformed specs and unknown kinds are a ``UsageError`` listing the
    valid kinds); nothing is loaded yet. A :class:`ResolvedTeacher` passes through unchanged."""
    if isinstance(spec, ResolvedTeacher):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"teacher spec {spec!r}: expected KIND:PATH_OR_ID, e.g. hf:nvidia/segformer-b0-finetuned-ade-512-512")
    parts = tuple(split_spec(spec.strip()))
    for part in parts:
        _check_part(part)
    return ResolvedTeacher(spec.strip(), parts)


