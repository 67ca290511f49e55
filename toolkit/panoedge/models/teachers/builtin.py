"""``builtin:PATH``: panoedge's own perspective teacher, a folder written by ``panoedge teacher train``.

Folder format (schema ``panoedge.teacher/1``)::

    PATH/teacher.pt     torch state_dict of a registered teacher network (teacher_net.py)
    PATH/teacher.json   {"schema": "panoedge.teacher/1",
                         "arch": "teacher-large",        # a name in list_teacher_nets()
                         "arch_options": {...},          # optional: create_teacher_net(**options)
                         "num_classes": 10, "classes": ["road", ...],   # len(classes) == num_classes
                         "depth_kind": "metric",         # or null for a segmentation-only net
                         "input_hw": [256, 384],         # multiples of 32
                         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                         "config": {...}}                # resolved TeacherNetConfig, for the record

:func:`save_teacher_folder` writes one (atomically) and is what the trainer calls;
:class:`BuiltinTeacher` loads it, rebuilding the network with ``strict`` weight loading.
"""

from __future__ import annotations

from pathlib import Path

import torch

from panoedge.errors import ConfigError, DataError, UsageError
from panoedge.home import atomic_dir, write_json
from panoedge.models.teacher_net import STRIDE, TeacherNet, create_teacher_net
from panoedge.models.teachers.base import DEPTH_KINDS, ModelTeacher, register_teacher_kind
from panoedge.safe_load import load_json

SCHEMA = "panoedge.teacher/1"
WEIGHTS, META = "teacher.pt", "teacher.json"


def save_teacher_folder(folder: str | Path, model: TeacherNet, classes, input_hw, mean, std,
                        arch_options: dict | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` as a builtin-teacher folder (see the module docstring); returns ``folder``.

    ``classes`` names the ``K`` segmentation channels; ``arch_options`` are the options
    ``model`` was built with (``create_teacher_net(arch, K, **arch_options)`` must rebuild it).
    ``depth_kind`` is ``"metric"`` when the net has a depth head, else ``None``.
    """
    cfg = model.config
    classes = [str(c) for c in classes]
    if len(classes) != cfg.num_classes:
        raise UsageError(f"{len(classes)} class names for a network with {cfg.num_classes} classes")
    meta = {"schema": SCHEMA, "arch": cfg.name, "arch_options": dict(arch_options or {}),
            "num_classes": cfg.num_classes, "classes": classes,
            "depth_kind": "metric" if "depth" in cfg.heads else None,
            "input_hw": [int(v) for v in input_hw], "mean": [float(v) for v in mean],
            "std": [float(v) for v in std], "config": cfg.to_dict()}
    _check_meta(Path(folder) / META, meta)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        write_json(tmp / META, meta)
    return Path(folder)


def read_teacher_meta(folder: str | Path) -> dict:
    """``teacher.json`` of a builtin-teacher folder, validated; ``DataError``/``ConfigError`` otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such teacher folder (expected {WEIGHTS} and {META} inside)")
    path = folder / META
    if not path.is_file():
        raise DataError(f"{path}: missing; a builtin teacher folder holds {WEIGHTS} and {META}")
    meta = load_json(path, expect=None)
    _check_meta(path, meta)
    return meta


def _check_meta(path: Path, meta) -> None:
    if not isinstance(meta, dict):
        raise ConfigError(path, "(top level)", "expected a JSON object")
    if meta.get("schema") != SCHEMA:
        raise ConfigError(path, "schema", f"{meta.get('schema')!r}: expected {SCHEMA!r}")
    for key in ("arch", "num_classes", "classes", "input_hw", "mean", "std"):
        if key not in meta:
            raise ConfigError(path, key, "missing (required)")
    classes, k = meta["classes"], meta["num_classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or len(classes) != k:
        raise ConfigError(path, "classes", f"expected a list of num_classes={k} names")
    hw = meta["input_hw"]
    if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 and v % STRIDE == 0 for v in hw)):
        raise ConfigError(path, "input_hw", f"{hw!r}: expected [height, width], positive multiples of {STRIDE}")
    for key in ("mean", "std"):
        v = meta[key]
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
            raise ConfigError(path, key, f"{v!r}: expected three numbers")
    if min(meta["std"]) <= 0:
        raise ConfigError(path, "std", "every value must be positive")
    if meta.get("depth_kind") is not None and meta["depth_kind"] not in DEPTH_KINDS:
        raise ConfigError(path, "depth_kind", f"{meta['depth_kind']!r}: choose one of {', '.join(DEPTH_KINDS)}")
    if not isinstance(meta.get("arch_options", {}), dict):
        raise ConfigError(path, "arch_options", "expected an object of network options")


class BuiltinTeacher(ModelTeacher):
    """A :class:`~panoedge.models.teacher_net.TeacherNet` loaded from a teacher folder."""

    def __init__(self, folder: str | Path, device: torch.device):
        self.folder = folder = Path(folder)
        meta = self.meta = read_teacher_meta(folder)
        meta_path = folder / META
        try:
            model = create_teacher_net(meta["arch"], meta["num_classes"], **meta.get("arch_options", {}))
        except UsageError as err:
            raise ConfigError(meta_path, "arch", str(err)) from None
        has_depth = "depth" in model.config.heads
        if has_depth != (meta.get("depth_kind") is not None):
            raise ConfigError(meta_path, "depth_kind", f"{meta.get('depth_kind')!r} but the network "
                              f"{'has' if has_depth else 'has no'} depth head")
        weights = folder / WEIGHTS
        if not weights.is_file():
            raise DataError(f"{weights}: missing; a builtin teacher folder holds {WEIGHTS} and {META}")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, EOFError) as err:
            raise DataError(f"{weights}: does not hold the weights of {meta['arch']} "
                            f"{meta.get('arch_options', {})}: {str(err).splitlines()[0]}") from None
        self.model = model.to(device, memory_format=torch.channels_last).eval()  # oneDNN's faster layout on CPU
        self.name, self.device = f"builtin:{folder}", device
        self.classes = tuple(meta["classes"]) if "seg" in model.config.heads else None
        self.depth_kind = meta.get("depth_kind")
        self.input_hw = (int(meta["input_hw"][0]), int(meta["input_hw"][1]))
        self.mean, self.std = tuple(meta["mean"]), tuple(meta["std"])

    def model_hw(self, h: int, w: int) -> tuple[int, int]:
        """The network is fully convolutional: images run at their own size (rounded to multiples
        of 32), so a whole ERP panorama is seen at about the pixel scale of the training views and
        what it gets wrong there is the projection's distortion, not a squeeze into ``input_hw``
        (tangent patches are ``input_hw`` already)."""
        return max(STRIDE, int(round(h / STRIDE)) * STRIDE), max(STRIDE, int(round(w / STRIDE)) * STRIDE)

    def run(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """``x`` ``(B, 3, h, w)`` -> ``{"seg": logits, "depth": metres[, "features"]}`` at ``h x w``."""
        return self.model(x.contiguous(memory_format=torch.channels_last), return_features=features)


@register_teacher_kind("builtin")
def load_builtin_teacher(target: str, device: torch.device) -> BuiltinTeacher:
    """``builtin:PATH`` -> :class:`BuiltinTeacher`."""
    return BuiltinTeacher(target, device)
