"""ONNX Runtime runner: ``ort-cpu``, ``ort-cuda`` and ``ort-trt`` by execution provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.runtime.base import Runner, TensorSpec

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))


def session_options(threads: int | None = None):
    """``SessionOptions`` with all graph optimisations and ``threads`` intra-op threads (None: ORT's choice)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    return so


class OrtRunner(Runner):
    """An ONNX model in an ONNX Runtime session on ``backend`` (``ort-cpu``, ``ort-cuda``, ``ort-trt``).

    ``provider_options`` maps a provider name to its options (e.g. the TensorRT EP's
    ``trt_engine_cache_path``). An unavailable provider is a ``UsageError`` naming what is
    available; an unreadable model a ``DataError``.
    """

    def __init__(self, path: str | Path, backend: str = "ort-cpu", threads: int | None = None,
                 provider_options: dict[str, dict] | None = None):
        import onnxruntime as ort

        if backend not in PROVIDERS:
            raise UsageError(f"unknown ONNX Runtime backend {backend!r}; valid: {', '.join(PROVIDERS)}")
        available = ort.get_available_providers()
        if PROVIDERS[backend][0] not in available:
            raise UsageError(f"{backend}: {PROVIDERS[backend][0]} is not available in this onnxruntime "
                             f"(available: {', '.join(available)})")
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such ONNX file")
        opts = provider_options or {}
        providers = [(p, opts[p]) if p in opts else p for p in PROVIDERS[backend] if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=providers)
        except Exception as e:  # ORT raises its own pybind types (InvalidProtobuf, Fail, ...)
            raise DataError(f"{self.path}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None
        self.backend = backend
        self.threads = threads
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self._names = [o.name for o in self.outputs]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self.session.run(self._names, feed)))

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props`` (e.g. ``panoedge.preprocess`` as JSON text)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)
