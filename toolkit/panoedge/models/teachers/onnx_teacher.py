"""``onnx:PATH``: any ONNX model as a teacher, described by its YAML sidecar (``PATH`` -> ``.yaml``).

Runs on ONNX Runtime: the CUDA execution provider when the teacher's device is CUDA and
ORT has it, else the CPU provider. Everything that can be checked before running is checked
at load: the file, the sidecar, the input's name, rank (4), channels (3) and fixed size
(must equal ``input_hw``), the output names, and a fixed class count (must equal the
sidecar's ``classes``). A model with a fixed batch of 1 is run image by image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from panoedge.errors import ConfigError, DataError
from panoedge.models.teachers.base import ModelTeacher, as_depth, check_seg, register_teacher_kind
from panoedge.models.teachers.sidecar import Sidecar, read_sidecar

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxTeacher(ModelTeacher):
    """A teacher running an ONNX file on ONNX Runtime (see the module docstring)."""

    def __init__(self, path: str | Path, device: torch.device):
        import onnxruntime as ort

        self.path = path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such ONNX file")
        sc: Sidecar = read_sidecar(path)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as err:  # ORT raises its own exception types for unreadable models
            raise DataError(f"{path}: ONNX Runtime cannot load it: {err}") from None
        self.name, self.device, self.sidecar = f"onnx:{path}", device, sc
        self.input_hw, self.mean, self.std = sc.input_hw, sc.mean, sc.std
        self.pixel_scale, self.seg_is_probs = sc.pixel_scale, sc.seg_output == "probs"
        self.classes, self.depth_kind = sc.classes, sc.depth_kind
        self.input = self._check_input()
        self.dtype = _FLOAT_TYPES[self.input.type]
        self.batch_one = self.input.shape[0] == 1
        self._check_outputs()

    def _check_input(self):
        """The model input the sidecar names (or its only one), checked against the sidecar."""
        sc, inputs = self.sidecar, self.session.get_inputs()
        names = [i.name for i in inputs]
        if sc.input_name is None:
            if len(inputs) != 1:
                raise ConfigError(sc.path, "input_name", f"missing, and the model has {len(inputs)} inputs: "
                                  f"{', '.join(names)}; name the image input")
            inp = inputs[0]
        elif sc.input_name in names:
            inp = inputs[names.index(sc.input_name)]
        else:
            raise ConfigError(sc.path, "input_name", f"{sc.input_name!r}: the model has no such input; "
                              f"its inputs: {', '.join(names)}")
        shape = list(inp.shape)
        if len(shape) != 4:
            raise DataError(f"{self.path}: input {inp.name!r} has rank {len(shape)} (shape {shape}); a teacher "
                            f"takes a rank-4 image batch ({sc.layout})")
        if inp.type not in _FLOAT_TYPES:
            raise DataError(f"{self.path}: input {inp.name!r} is {inp.type}; a teacher takes a float image batch")
        cax, hax = (1, 2) if sc.layout == "NCHW" else (3, 1)
        if isinstance(shape[cax], int) and shape[cax] != 3:
            raise ConfigError(sc.path, "layout", f"{sc.layout}: the model's input {inp.name!r} of shape {shape} "
                              f"has {shape[cax]} channels on that axis, not 3")
        fixed = shape[hax:hax + 2]
        if all(isinstance(v, int) for v in fixed) and tuple(fixed) != sc.input_hw:
            raise ConfigError(sc.path, "input_hw", f"{list(sc.input_hw)}: the model's input {inp.name!r} is "
                              f"fixed at {fixed[0]}x{fixed[1]}")
        return inp

    def _check_outputs(self) -> None:
        sc = self.sidecar
        outs = {o.name: o for o in self.session.get_outputs()}
        for role, name in sc.outputs.items():
            if name not in outs:
                raise ConfigError(sc.path, f"outputs.{role}", f"{name!r}: the model has no such output; "
                                  f"its outputs: {', '.join(outs)}")
        if "seg" in sc.outputs:
            shape = outs[sc.outputs["seg"]].shape
            if len(shape) != 4:
                raise DataError(f"{self.path}: output {sc.outputs['seg']!r} has rank {len(shape)}; segmentation "
                                "is (B, K, h, w)")
            if isinstance(shape[1], int) and shape[1] != len(sc.classes):
                raise ConfigError(sc.path, "classes", f"{len(sc.classes)} names, but output "
                                  f"{sc.outputs['seg']!r} has {shape[1]} channels")

    def run(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """``x`` ``(B, 3, h, w)`` -> the sidecar's outputs as torch tensors on ``x.device``."""
        roles = [r for r in self.sidecar.outputs if r != "features" or features]
        names = [self.sidecar.outputs[r] for r in roles]
        arr = x.permute(0, 2, 3, 1) if self.sidecar.layout == "NHWC" else x
        arr = np.ascontiguousarray(arr.cpu().numpy().astype(self.dtype, copy=False))
        chunks = [arr[i:i + 1] for i in range(len(arr))] if self.batch_one else [arr]
        results = [self.session.run(names, {self.input.name: c}) for c in chunks]
        out = {}
        for k, role in enumerate(roles):
            t = torch.from_numpy(np.concatenate([r[k] for r in results]).astype(np.float32, copy=False))
            out[role] = t.to(x.device)
        batch = x.shape[0]
        if "seg" in out:
            check_seg(self.name, out["seg"], self.classes, batch)
        if "depth" in out:
            out["depth"] = as_depth(self.name, out["depth"], batch)
        if "features" in out and out["features"].ndim != 4:
            raise DataError(f"{self.name}: features output of shape {tuple(out['features'].shape)}; expected (B, C, h, w)")
        return out


@register_teacher_kind("onnx")
def load_onnx_teacher(target: str, device: torch.device) -> OnnxTeacher:
    """``onnx:PATH`` -> :class:`OnnxTeacher`."""
    return OnnxTeacher(target, device)
