"""The CUDA calls the TensorRT runner needs, over cuda-python 12.x or pycuda (whichever is installed).

JetPack 6 ships CUDA 12, so cuda-python is bounded ``>=12,<13`` in the ``tensorrt``/``jetson``
extras (13.x is built for CUDA 13); many Jetson setups already carry pycuda, which works as well.
Host buffers are page-locked (``cudaMallocHost`` / ``pagelocked_empty``): only then are
``cudaMemcpyAsync`` copies truly asynchronous and overlap with other work.

:func:`binding_name` finds an importable binding without importing CUDA (``doctor`` and backend
selection use it, so both agree); :func:`load_binding` imports and initialises it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
from pathlib import Path

import numpy as np

from panoedge.errors import UsageError

#: Bindings in order of preference, with the module that proves each is installed.
BINDINGS = {"cuda-python": ("cuda.bindings.runtime", "cuda.cudart"), "pycuda": ("pycuda.driver",)}
INSTALL_HINT = "pip install 'panoedge[tensorrt]' (cuda-python 12.x) or pycuda"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (a broken parent counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing or broken
        return False


#: JetPack's CUDA toolkit (``version.json`` exists from CUDA 11.1); the Jetson marker file.
CUDA_VERSION_FILE = Path("/usr/local/cuda/version.json")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def jetson_cuda_major() -> int | None:
    """The CUDA major version JetPack installed (11 on JetPack 5, 12 on JetPack 6), or None off a Jetson."""
    if not TEGRA_RELEASE.exists():
        return None
    try:
        return int(json.loads(CUDA_VERSION_FILE.read_text())["cuda"]["version"].split(".")[0])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def cuda_python_major() -> int | None:
    """The installed cuda-python's major version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("cuda-python", "cuda-bindings"):
        try:
            return int(version(dist).split(".")[0])
        except (PackageNotFoundError, ValueError):
            continue
    return None


def cuda_python_problem() -> str | None:
    """Why the installed cuda-python cannot drive this Jetson's CUDA (a 13.x build on JetPack 6's CUDA 12), or None."""
    system, binding = jetson_cuda_major(), cuda_python_major()
    if system is None or binding is None or system == binding:
        return None
    return (f"cuda-python {binding}.x is built for CUDA {binding}, this Jetson has CUDA {system}: "
            f"pip install 'cuda-python>={system},<{system + 1}' (or use pycuda)")


def binding_name(prefer: str | None = None) -> str | None:
    """The CUDA binding the runner would use here (``"cuda-python"`` or ``"pycuda"``), or None.

    cuda-python built for another CUDA major than the Jetson's (:func:`cuda_python_problem`) is skipped.
    """
    names = [prefer] if prefer else list(BINDINGS)
    for name in names:
        if name not in BINDINGS:
            raise UsageError(f"unknown CUDA binding {name!r}; valid: {', '.join(BINDINGS)}")
        if any(installed(m) for m in BINDINGS[name]) and not (name == "cuda-python" and cuda_python_problem()):
            return name
    return None


class CudaPython:
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""

    name = "cuda-python"

    def __init__(self, cudart=None):
        if cudart is None:
            try:
                from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
            except ImportError:
                from cuda import cudart  # cuda-python 12.0-12.5
        self.rt = cudart

    def _call(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return values[0] if len(values) == 1 else values

    def compute_capability(self, device: int = 0) -> str:
        props = self._call(self.rt.cudaGetDeviceProperties(device))
        return f"{props.major}.{props.minor}"

    def stream(self):
        return self._call(self.rt.cudaStreamCreate())

    def stream_handle(self, stream) -> int:
        return int(stream)

    def malloc(self, nbytes: int):
        return self._call(self.rt.cudaMalloc(nbytes))

    def pinned(self, shape, dtype) -> np.ndarray:
        """A page-locked host array; freed by :meth:`free_pinned` (the runner owns it)."""
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        ptr = int(self._call(self.rt.cudaMallocHost(nbytes)))
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        arr = np.frombuffer(buf, dtype=np.uint8, count=nbytes)[: int(np.prod(shape)) * dtype.itemsize]
        return arr.view(dtype).reshape(shape)

    def htod(self, device_ptr, host: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, kind, stream))

    def dtoh(self, host: np.ndarray, device_ptr, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes, kind, stream))

    def synchronize(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream))

    def free(self, device_ptr) -> None:
        self.rt.cudaFree(device_ptr)

    def free_pinned(self, host: np.ndarray) -> None:
        self.rt.cudaFreeHost(host.ctypes.data)

    def destroy(self, stream) -> None:
        self.rt.cudaStreamDestroy(stream)

    def release(self) -> None:
        """Nothing to undo (the runtime API manages its context)."""


class PyCuda:
    """pycuda's driver API on the device's primary context (the one TensorRT's runtime API uses)."""

    name = "pycuda"

    def __init__(self, driver=None, device: int = 0):
        if driver is None:
            import pycuda.driver as driver
        self.drv = driver
        self.drv.init()
        self.device = self.drv.Device(device)
        self.context = self.device.retain_primary_context()
        self.context.push()

    def compute_capability(self, device: int = 0) -> str:
        major, minor = self.drv.Device(device).compute_capability()
        return f"{major}.{minor}"

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def malloc(self, nbytes: int):
        return self.drv.mem_alloc(nbytes)

    def pinned(self, shape, dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(tuple(shape), np.dtype(dtype))

    def htod(self, device_ptr, host: np.ndarray, stream) -> None:
        self.drv.memcpy_htod_async(device_ptr, host, stream)

    def dtoh(self, host: np.ndarray, device_ptr, stream) -> None:
        self.drv.memcpy_dtoh_async(host, device_ptr, stream)

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def free(self, device_ptr) -> None:
        device_ptr.free()

    def free_pinned(self, host: np.ndarray) -> None:
        base = getattr(host, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def destroy(self, stream) -> None:
        self.release()

    def release(self) -> None:
        """Pop the primary context this binding pushed (once)."""
        if self.context is not None:
            self.context.pop()
            self.context = None


def load_binding(prefer: str | None = None):
    """An initialised :class:`CudaPython` or :class:`PyCuda` (preferring cuda-python); a ``UsageError``
    naming the extra where neither is installed."""
    name = binding_name(prefer)
    if name is None:
        raise UsageError(f"the trt backend needs a CUDA binding: {cuda_python_problem() or INSTALL_HINT}")
    return CudaPython() if name == "cuda-python" else PyCuda()


def compute_capability() -> str | None:
    """This GPU's compute capability (``"8.7"``) without torch: the CUDA binding, else ``nvidia-smi``; None if neither."""
    try:
        binding = load_binding()
        try:
            return binding.compute_capability()
        finally:
            binding.release()
    except Exception:  # no binding, no driver or no device: try nvidia-smi
        pass
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return None
