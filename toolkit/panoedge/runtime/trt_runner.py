"""TensorRT engine runner for TensorRT 8.5/8.6 and 10.x, over cuda-python 12.x or pycuda; imports lazily.

Kept thin: deserialize the plan, allocate one device buffer and one page-locked host buffer per
I/O tensor, and per call copy inputs in, execute on a private stream, copy outputs out.

TensorRT API by version (``tests/data/tensorrt_api`` lists the names of each release's bindings):

* The name-based tensor API (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
  ``set_tensor_address``, ``execute_async_v3``) exists from 8.5 on: JetPack 5.1 (8.5.2),
  6.0 (8.6.2) and 6.1/6.2 (10.3) all have it, so one code path serves every target.
* The binding-index API (``num_bindings``, ``binding_is_input``, ``execute_async_v2``) is
  deprecated from 8.5 and gone in 10: not used.

Engines are tied to the TensorRT version and GPU that built them; :mod:`panoedge.runtime.trt_select`
picks the matching one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.runtime.base import Runner, TensorSpec
from panoedge.runtime.registry import register_backend

#: Oldest TensorRT the runner accepts: the first with ``execute_async_v3`` and ``TensorIOMode``,
#: and the one JetPack 5.1 ships (8.5.2).
MIN_TENSORRT = (8, 5)


def import_tensorrt():
    """``tensorrt``, or a ``UsageError`` naming how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UsageError("trt backend needs TensorRT (JetPack on a Jetson, or pip install 'panoedge[tensorrt]')") from None
    return trt


class TrtRunner(Runner):
    """A serialized TensorRT engine (``.engine`` plan file) on CUDA device 0."""

    backend = "trt"

    def __init__(self, engine_path: str | Path, trt=None, cuda=None):
        from panoedge.runtime.cuda_binding import load_binding
        from panoedge.runtime.trt_select import version_key

        trt = trt or import_tensorrt()
        if version_key(trt.__version__)[:2] < MIN_TENSORRT:
            raise UsageError(f"trt runner needs TensorRT >= {'.'.join(map(str, MIN_TENSORRT))} "
                             f"(found {trt.__version__}); use ort-trt instead")
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such engine file (build it with `panoedge engine BUNDLE`)")
        self.trt = trt
        self.cuda = cuda or load_binding()
        self._device, self._host, self.stream = {}, {}, None
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise DataError(f"{self.path}: TensorRT {trt.__version__} cannot deserialize it "
                            "(built by another TensorRT version or for another GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        self.inputs, self.outputs = [], []
        for name, shape, dtype, is_input in self._io():
            if any(d < 0 for d in shape):
                raise UsageError(f"{self.path}: tensor {name} has dynamic shape {shape}; build a static engine")
            spec = TensorSpec(name, shape, dtype)
            (self.inputs if is_input else self.outputs).append(spec)
            self._device[name] = self.cuda.malloc(max(int(np.prod(shape)) * dtype.itemsize, 1))
            self._host[name] = self.cuda.pinned(shape, dtype)
            self.context.set_tensor_address(name, int(self._device[name]))

    def _io(self):
        """``(name, shape, dtype, is_input)`` of every I/O tensor."""
        trt, e = self.trt, self.engine
        for i in range(e.num_io_tensors):
            name = e.get_tensor_name(i)
            yield (name, tuple(int(d) for d in e.get_tensor_shape(name)),
                   np.dtype(trt.nptype(e.get_tensor_dtype(name))), e.get_tensor_mode(name) == trt.TensorIOMode.INPUT)

    def _execute(self) -> bool:
        return self.context.execute_async_v3(self.cuda.stream_handle(self.stream))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for s in self.inputs:
            host = self._host[s.name]
            np.copyto(host, feed[s.name])
            self.cuda.htod(self._device[s.name], host, self.stream)
        if not self._execute():
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        for s in self.outputs:
            self.cuda.dtoh(self._host[s.name], self._device[s.name], self.stream)
        self.cuda.synchronize(self.stream)
        return {s.name: self._host[s.name].copy() for s in self.outputs}

    def _release(self) -> None:
        """Free device and page-locked host buffers and the stream, then the TensorRT objects
        (execution context before engine before runtime, the order TensorRT requires)."""
        cuda = getattr(self, "cuda", None)
        if cuda is not None:
            for ptr in getattr(self, "_device", {}).values():
                cuda.free(ptr)
            for host in getattr(self, "_host", {}).values():
                cuda.free_pinned(host)
            self._device, self._host = {}, {}
            if getattr(self, "stream", None) is not None:
                cuda.destroy(self.stream)
                self.stream = None
        for name in ("context", "engine", "runtime"):
            if hasattr(self, name):
                setattr(self, name, None)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass


def trt_available() -> tuple[bool, str]:
    """Whether the ``trt`` backend can run here (TensorRT and a CUDA binding installed), and why not.

    ``panoedge doctor`` and backend selection both ask this, so they agree. Nothing is imported.
    """
    from panoedge.runtime.cuda_binding import INSTALL_HINT, binding_name, cuda_python_problem, installed

    if not installed("tensorrt"):
        return False, "TensorRT is not installed (JetPack on a Jetson, or pip install 'panoedge[tensorrt]')"
    if binding_name() is None:
        return False, f"TensorRT is installed but no usable CUDA binding: {cuda_python_problem() or INSTALL_HINT}"
    return True, ""


def pick_engine(engines, precision: str, trt=None, cuda=None) -> Path:
    """The engine of ``engines`` built for this machine's TensorRT and GPU (by sidecar or name, not sort order)."""
    from panoedge.runtime.cuda_binding import load_binding
    from panoedge.runtime.trt_select import select_engine

    trt = trt or import_tensorrt()
    cuda = cuda or load_binding()
    return select_engine(engines, tensorrt=trt.__version__, cc=cuda.compute_capability(), precision=precision).path


def open_bundle_engine(engines, precision: str) -> TrtRunner:
    """A :class:`TrtRunner` on the engine of ``engines`` built for this TensorRT and GPU."""
    from panoedge.runtime.cuda_binding import load_binding

    trt, cuda = import_tensorrt(), load_binding()
    return TrtRunner(pick_engine(engines, precision=precision, trt=trt, cuda=cuda), trt=trt, cuda=cuda)


@register_backend("trt", available=lambda _name: trt_available())
def open_trt(path: str | Path, *, backend: str = "trt", threads: int | None = None) -> TrtRunner:
    """The registry's factory for ``trt``: a plan file (``threads`` does not apply to TensorRT)."""
    return TrtRunner(path)
