"""PyTorch runner for a ``student.pt`` (the reference the exported models are checked against).

torch and the training side are imported only when a :class:`TorchRunner` is created. It lives in
:mod:`panoedge.deploy`, beside the training side it loads, so :mod:`panoedge.runtime` stays
torch-free; importing this module registers the ``torch`` backend
(:func:`panoedge.runtime.registry.create_runner`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoedge.errors import UsageError
from panoedge.runtime.base import Runner, TensorSpec
from panoedge.runtime.registry import register_backend


class TorchRunner(Runner):
    """A student checkpoint (file or run folder) at a fixed input size ``hw``, batch 1."""

    backend = "torch"

    def __init__(self, student: str | Path, hw: tuple[int, int], device: str = "cpu", threads: int | None = None):
        try:
            import torch
        except ImportError:
            raise UsageError("torch backend needs PyTorch (pip install 'panoedge[train]')") from None
        from panoedge.models import load_student

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.model, self.info = load_student(student, map_location=device)
        self.device = device
        h, w = (int(v) for v in hw)
        k = self.model.config.num_classes
        self.inputs = [TensorSpec("image", (1, 3, h, w), np.dtype(np.float32))]
        shapes = {"seg": (1, k, h, w), "depth": (1, 1, h, w)}
        self.outputs = [TensorSpec(n, shapes[n], np.dtype(np.float32)) for n in self.model.config.heads]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(feed["image"]).to(self.device))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    def _release(self) -> None:
        """Drop the model (its weights are the memory this runner holds)."""
        self.model = None


def _torch_available(_name: str) -> tuple[bool, str]:
    from importlib.util import find_spec

    if find_spec("torch") is None:  # found, not imported: a probe stays cheap
        return False, "torch is not installed (pip install 'panoedge[train]')"
    return True, ""


@register_backend("torch", available=_torch_available)
def open_torch(path: str | Path, *, backend: str = "torch", threads: int | None = None,
               hw: tuple[int, int] | None = None) -> TorchRunner:
    """The registry's factory for ``torch``: a student checkpoint at input size ``hw`` (required: a
    checkpoint, unlike an ONNX file, does not fix its input size)."""
    if hw is None:
        raise UsageError("--backend torch needs --size HxW")
    return TorchRunner(path, hw, threads=threads)
