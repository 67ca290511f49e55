"""``torchscript:PATH``: a TorchScript module as a teacher, described by the same YAML sidecar.

The module is called with one positional image batch (``layout`` NCHW or NHWC) and may
return a tensor, a tuple/list of tensors, or a dict of tensors; the sidecar's ``outputs``
name tuple indices (``seg: 0``) or dict keys (``seg: out``). A single tensor is index 0.
TorchScript cannot be inspected for outputs, so loading runs the module once on a zero
batch at ``input_hw``: a wrong input rank or an unknown output fails then, not mid-training.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from panoedge.errors import ConfigError, DataError
from panoedge.models.teachers.base import ModelTeacher, as_depth, check_seg, register_teacher_kind
from panoedge.models.teachers.sidecar import read_sidecar


class TorchScriptTeacher(ModelTeacher):
    """A teacher running a ``torch.jit`` module (see the module docstring)."""

    def __init__(self, path: str | Path, device: torch.device):
        self.path = path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such TorchScript file")
        sc = self.sidecar = read_sidecar(path, allow_input_name=False, index_outputs=True)
        try:
            with warnings.catch_warnings():  # torch 2.9+ marks torch.jit deprecated; the format is still what users bring
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise DataError(f"{path}: not a loadable TorchScript module: {err}") from None
        self.name, self.device = f"torchscript:{path}", device
        self.input_hw, self.mean, self.std = sc.input_hw, sc.mean, sc.std
        self.pixel_scale, self.seg_is_probs = sc.pixel_scale, sc.seg_output == "probs"
        self.classes, self.depth_kind = sc.classes, sc.depth_kind
        self._dry_run()

    def _call(self, x: torch.Tensor):
        if self.sidecar.layout == "NHWC":
            x = x.permute(0, 2, 3, 1).contiguous()
        return self.module(x)

    def _dry_run(self) -> None:
        """Run once on zeros ``(1, 3, *input_hw)`` and check every output the sidecar names."""
        x = torch.zeros(1, 3, *self.input_hw, device=self.device)
        try:
            with torch.no_grad():
                raw = self._call(x)
        except Exception as err:  # TorchScript surfaces any failure inside the model as a RuntimeError
            first = str(err).strip().splitlines()
            raise DataError(f"{self.path}: fails on a (1, 3, {self.input_hw[0]}, {self.input_hw[1]}) image batch "
                            f"({self.sidecar.layout}); a teacher takes a rank-4 batch: "
                            f"{first[-1] if first else type(err).__name__}") from None
        self._pick(raw, 1)

    def _pick(self, raw, batch: int) -> dict[str, torch.Tensor]:
        """Select the sidecar's outputs from the module's return value, checked."""
        sc, out = self.sidecar, {}
        for role, key in sc.outputs.items():
            if isinstance(raw, torch.Tensor):
                available, value = "a single tensor (index 0)", raw if key == 0 else None
            elif isinstance(raw, (tuple, list)):
                ok = isinstance(key, int) and key < len(raw)
                available, value = f"a {len(raw)}-tuple (indices 0-{len(raw) - 1})", raw[key] if ok else None
            elif isinstance(raw, dict):
                available, value = f"a dict with keys {', '.join(map(str, raw))}", raw.get(key)
            else:
                raise DataError(f"{self.path}: returns {type(raw).__name__}; expected a tensor, tuple or dict")
            if not isinstance(value, torch.Tensor):
                raise ConfigError(sc.path, f"outputs.{role}", f"{key!r}: no such output; the module returns {available}")
            out[role] = value.float()
        if "seg" in out:
            check_seg(self.name, out["seg"], self.classes, batch)
        if "depth" in out:
            out["depth"] = as_depth(self.name, out["depth"], batch)
        if "features" in out and out["features"].ndim != 4:
            raise DataError(f"{self.name}: features output of shape {tuple(out['features'].shape)}; expected (B, C, h, w)")
        return out

    def run(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """``x`` ``(B, 3, h, w)`` -> the sidecar's outputs (``"features"`` only when asked)."""
        out = self._pick(self._call(x), x.shape[0])
        if not features:
            out.pop("features", None)
        return out


@register_teacher_kind("torchscript")
def load_torchscript_teacher(target: str, device: torch.device) -> TorchScriptTeacher:
    """``torchscript:PATH`` -> :class:`TorchScriptTeacher`."""
    return TorchScriptTeacher(target, device)
