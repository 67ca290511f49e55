"""ONNX Runtime runner: ``ort-cpu``, ``ort-cuda`` and ``ort-trt`` by execution provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.runtime.base import Runner, TensorSpec
from panoedge.runtime.registry import register_backend

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


#: ``$PANOEDGE_HOME`` subfolder of the TensorRT EP's engine and timing caches.
ORT_TRT_CACHE = "ort-trt"


def trt_ep_options(model: str | Path, int8: bool | None = None) -> dict:
    """TensorRT EP options with engine and timing caches under ``$PANOEDGE_HOME/ort-trt/<key>``.

    Without a cache every session start rebuilds the engines (minutes on an Orin). The key names
    what a TensorRT engine depends on, like ``panoedge engine``'s names: the model's content hash,
    the TensorRT version and the GPU's compute capability (ONNX Runtime does not notice a changed
    TensorRT or GPU in a shared cache). ``int8`` (default: a ``.int8.`` model name) sets
    ``trt_int8_enable`` for the QDQ model (explicit quantization; no calibration table).
    """
    from panoedge.versions import package_version as _version
    from panoedge.home import cache_dir, sha256_file
    from panoedge.runtime.cuda_binding import compute_capability

    model = Path(model)
    cc = str(compute_capability() or "unknown").replace(".", "")
    trt = _version("tensorrt") or "unknown"
    key = f"{model.name.split('.')[0]}.{sha256_file(model)[:16]}.trt{trt}.sm{cc}"
    root = cache_dir(ORT_TRT_CACHE, key)
    (root / "timing").mkdir(parents=True, exist_ok=True)
    opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(root),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(root / "timing")}
    if int8 if int8 is not None else ".int8." in model.name:
        opts["trt_int8_enable"] = True
    return opts


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

    ``provider_options`` maps a provider name to its options; ``ort-trt`` defaults to
    :func:`trt_ep_options` (engine and timing caches under ``$PANOEDGE_HOME``). An unavailable provider is a ``UsageError`` naming what is
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
        opts = dict(provider_options or {})
        if backend == "ort-trt" and "TensorrtExecutionProvider" not in opts:
            opts["TensorrtExecutionProvider"] = trt_ep_options(self.path)
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

    def _release(self) -> None:
        """Drop the session (ONNX Runtime frees its arena and provider state with it)."""
        self.session = None

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props`` (e.g. ``panoedge.preprocess`` as JSON text)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)


def ort_available(backend: str) -> tuple[bool, str]:
    """Whether ``backend``'s execution provider is in this onnxruntime, and why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed"
    provider = PROVIDERS[backend][0]
    if provider in ort.get_available_providers():
        return True, ""
    return False, f"no {provider} in this onnxruntime"


@register_backend(*PROVIDERS, available=ort_available)
def open_ort(path: str | Path, *, backend: str, threads: int | None = None,
             provider_options: dict[str, dict] | None = None) -> OrtRunner:
    """The registry's factory for the ONNX Runtime backends."""
    return OrtRunner(path, backend, threads=threads, provider_options=provider_options)
