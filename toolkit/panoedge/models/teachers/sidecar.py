"""The YAML sidecar that describes an ONNX or TorchScript teacher: ``model.onnx`` -> ``model.yaml``.

Example (a segmenter with depth, fed ImageNet-normalised 512x512 NCHW images)::

    input_hw: [512, 512]            # the model's input height and width, pixels
    mean: [0.485, 0.456, 0.406]     # per RGB channel: x = (rgb * pixel_scale - mean) / std
    std: [0.229, 0.224, 0.225]
    input_name: pixel_values        # ONNX only; optional when the model has one input
    layout: NCHW                    # or NHWC; default NCHW
    outputs:                        # role -> ONNX output name (TorchScript: dict key or tuple index)
      seg: logits                   # (B, K, h, w) logits, or probabilities with seg_output: probs
      depth: predicted_depth        # (B, 1, h, w) or (B, h, w)
      features: last_hidden         # optional (B, C, h, w)
    seg_output: logits              # logits (default) or probs
    classes: [road, sidewalk, ...]  # required with outputs.seg, one name per channel
    depth_kind: metric              # required with outputs.depth: metric | relative | inverse-relative
    pixel_scale: 1.0                # optional, default 1 (rgb in [0, 1]); 255 for models fed 0-255

Every problem raises :class:`~panoedge.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from panoedge.errors import ConfigError, DataError
from panoedge.models.teachers.base import DEPTH_KINDS
from panoedge.safe_load import check_keys, load_file

ROLES = ("seg", "depth", "features")
LAYOUTS = ("NCHW", "NHWC")
SEG_OUTPUTS = ("logits", "probs")
KEYS = ("input_hw", "mean", "std", "input_name", "layout", "outputs", "seg_output", "classes",
        "depth_kind", "pixel_scale")


@dataclass(frozen=True)
class Sidecar:
    """A validated sidecar; ``outputs`` maps roles (``seg``, ``depth``, ``features``) to output names."""

    path: Path
    input_hw: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_name: str | None
    layout: str
    outputs: dict[str, str | int]
    seg_output: str
    classes: tuple[str, ...] | None
    depth_kind: str | None
    pixel_scale: float


def sidecar_path(model_path: str | Path) -> Path:
    """The sidecar of ``model_path``: same folder and stem, suffix ``.yaml``."""
    return Path(model_path).with_suffix(".yaml")


def read_sidecar(model_path: str | Path, allow_input_name: bool = True, index_outputs: bool = False) -> Sidecar:
    """Read and validate the sidecar of ``model_path``.

    ``allow_input_name`` is false for backends whose inputs have no names (TorchScript);
    ``index_outputs`` lets output names be integers (tuple indices). Raises ``DataError`` if
    the file is missing or not YAML, ``ConfigError(file, key, problem)`` for a bad field.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        raise DataError(f"{path}: no sidecar beside {Path(model_path).name} (a YAML file giving "
                        "input_hw, mean, std, outputs, classes and/or depth_kind)")
    doc = load_file(path, expect=None)
    if not isinstance(doc, dict):
        raise ConfigError(path, "(top level)", "expected a mapping of keys such as input_hw, mean, std, outputs")
    check_keys(doc, KEYS, path)
    if "input_name" in doc and not allow_input_name:
        raise ConfigError(path, "input_name", "this backend takes its input by position; remove the key")

    def need(key: str):
        if key not in doc or doc[key] is None:
            raise ConfigError(path, key, "missing (required)")
        return doc[key]

    hw = need("input_hw")
    if not (isinstance(hw, list) and len(hw) == 2 and all(_is_int(v) and v > 0 for v in hw)):
        raise ConfigError(path, "input_hw", f"{hw!r}: expected [height, width], two positive integers")
    mean, std = _triple(path, "mean", need("mean")), _triple(path, "std", need("std"))
    if min(std) <= 0:
        raise ConfigError(path, "std", f"{list(std)}: every value must be positive")
    outputs = _outputs(path, need("outputs"), index_outputs)
    classes = depth_kind = None
    if "seg" in outputs:
        classes = _classes(path, need("classes"))
    elif doc.get("classes") is not None:
        raise ConfigError(path, "classes", "given without outputs.seg; name the segmentation output")
    if "depth" in outputs:
        depth_kind = need("depth_kind")
        if depth_kind not in DEPTH_KINDS:
            raise ConfigError(path, "depth_kind", f"{depth_kind!r}: choose one of {', '.join(DEPTH_KINDS)}")
    elif doc.get("depth_kind") is not None:
        raise ConfigError(path, "depth_kind", "given without outputs.depth; name the depth output")
    layout = doc.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise ConfigError(path, "layout", f"{layout!r}: choose {' or '.join(LAYOUTS)}")
    seg_output = doc.get("seg_output", "logits")
    if seg_output not in SEG_OUTPUTS:
        raise ConfigError(path, "seg_output", f"{seg_output!r}: choose {' or '.join(SEG_OUTPUTS)}")
    input_name = doc.get("input_name")
    if input_name is not None and not isinstance(input_name, str):
        raise ConfigError(path, "input_name", f"{input_name!r}: expected a string")
    scale = doc.get("pixel_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError(path, "pixel_scale", f"{scale!r}: expected a positive number")
    return Sidecar(path=path, input_hw=(int(hw[0]), int(hw[1])), mean=mean, std=std, input_name=input_name,
                   layout=layout, outputs=outputs, seg_output=seg_output, classes=classes, depth_kind=depth_kind,
                   pixel_scale=float(scale))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _triple(path: Path, key: str, value) -> tuple[float, float, float]:
    ok = isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok:
        raise ConfigError(path, key, f"{value!r}: expected three numbers, one per RGB channel")
    return (float(value[0]), float(value[1]), float(value[2]))


def _outputs(path: Path, value, index_outputs: bool) -> dict[str, str | int]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, "outputs", f"{value!r}: expected a mapping such as {{seg: logits, depth: depth}}")
    out: dict[str, str | int] = {}
    for role, name in value.items():
        if role not in ROLES:
            raise ConfigError(path, f"outputs.{role}", f"unknown role; valid: {', '.join(ROLES)}")
        if not (isinstance(name, str) and name) and not (index_outputs and _is_int(name) and name >= 0):
            kind = "an output name or a tuple index" if index_outputs else "an output name (string)"
            raise ConfigError(path, f"outputs.{role}", f"{name!r}: expected {kind}")
        out[role] = name
    if "seg" not in out and "depth" not in out:
        raise ConfigError(path, "outputs", "name at least one of seg and depth")
    return out


def _classes(path: Path, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(path, "classes", "expected a non-empty list of class names (strings), one per channel; "
                          "quote names YAML would read as numbers or booleans ('no', 'on')")
    names = tuple(v.strip() for v in value)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(path, "classes", f"repeated name(s): {', '.join(dup)}")
    return names
