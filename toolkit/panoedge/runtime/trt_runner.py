"""TensorRT engine runner (TensorRT 10 tensor API, CUDA through cuda-python); imports lazily.

Kept thin: deserialize the plan, allocate one device buffer per I/O tensor, and per call copy
inputs in, ``execute_async_v3`` on a private stream, copy outputs out. Needs ``tensorrt`` >= 10
and ``cuda-python`` (``pip install 'panoedge[tensorrt]'``; on a Jetson TensorRT comes with
JetPack). Engines are tied to the TensorRT version and GPU that built them
(:mod:`panoedge.deploy.engine` names them accordingly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.runtime.base import Runner, TensorSpec


def cuda_runtime():
    """cuda-python's CUDA runtime module (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise UsageError("trt backend needs cuda-python (pip install 'panoedge[tensorrt]')") from None
    return cudart


def cuda_call(result):
    """cuda-python returns ``(err, *values)``; raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


class TrtRunner(Runner):
    """A serialized TensorRT engine (``.engine`` plan file) on the current CUDA device."""

    backend = "trt"

    def __init__(self, engine_path: str | Path):
        try:
            import tensorrt as trt
        except ImportError:
            raise UsageError("trt backend needs TensorRT (JetPack on a Jetson, or pip install tensorrt)") from None
        if int(trt.__version__.split(".")[0]) < 10:
            raise UsageError(f"trt runner needs TensorRT >= 10 (found {trt.__version__}); use ort-trt instead")
        self.cudart = cuda_runtime()
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such engine file (build it with `panoedge engine BUNDLE`)")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise DataError(f"{self.path}: TensorRT {trt.__version__} cannot deserialize it "
                            "(built by another TensorRT version or for another GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = cuda_call(self.cudart.cudaStreamCreate())
        self.inputs, self.outputs, self._device = [], [], {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise UsageError(f"{self.path}: tensor {name} has dynamic shape {shape}; build a static engine")
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            spec = TensorSpec(name, shape, dtype)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(spec)
            ptr = cuda_call(self.cudart.cudaMalloc(int(np.prod(shape)) * dtype.itemsize))
            self._device[name] = ptr
            self.context.set_tensor_address(name, int(ptr))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cr = self.cudart
        h2d, d2h = cr.cudaMemcpyKind.cudaMemcpyHostToDevice, cr.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for s in self.inputs:
            a = np.ascontiguousarray(feed[s.name])
            cuda_call(cr.cudaMemcpyAsync(self._device[s.name], a.ctypes.data, a.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        out = {s.name: np.empty(s.shape, s.dtype) for s in self.outputs}
        for s in self.outputs:
            cuda_call(cr.cudaMemcpyAsync(out[s.name].ctypes.data, self._device[s.name], out[s.name].nbytes, d2h,
                                      self.stream))
        cuda_call(cr.cudaStreamSynchronize(self.stream))
        return out

    def __del__(self):
        cr = getattr(self, "cudart", None)
        if cr is None:
            return
        for ptr in getattr(self, "_device", {}).values():
            cr.cudaFree(ptr)
        if getattr(self, "stream", None) is not None:
            cr.cudaStreamDestroy(self.stream)
