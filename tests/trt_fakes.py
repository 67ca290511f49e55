"""Recording fakes of the ``tensorrt`` module and a CUDA binding, for tests without TensorRT or a GPU.

:func:`fake_tensorrt` exposes only the names listed for a TensorRT release in
``tests/data/tensorrt_api/tensorrt-<version>.txt`` (taken from the real bindings' reference) and
raises ``AttributeError`` on any other, recording every name touched. The fake builder writes the
configuration it was given as the "engine" (JSON), so a test can read back what the code asked
TensorRT to build; the fake engine doubles its input (``out = 2 * in``) so the runner's data path is
checked end to end.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

API_DIR = Path(__file__).parent / "data" / "tensorrt_api"


def api_names(series: str) -> set[str]:
    lines = (API_DIR / f"tensorrt-{series}.txt").read_text().splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


class Api:
    """The allowed names of one release and the ones touched."""

    def __init__(self, version: str, series: str):
        self.version, self.names, self.touched = version, api_names(series), set()

    def touch(self, name: str) -> None:
        if name not in self.names:
            raise AttributeError(f"tensorrt {self.version} has no {name}")
        self.touched.add(name)


class Guard:
    """Public attribute reads and writes are checked against the release's names and recorded."""

    _cls = ""

    def __init__(self, api: Api):
        object.__setattr__(self, "_api", api)

    def __getattribute__(self, name):
        if not name.startswith("_"):
            object.__getattribute__(self, "_api").touch(f"{type(self)._cls}.{name}")
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            self._api.touch(f"{type(self)._cls}.{name}")
        object.__setattr__(self, name, value)


def _enum(api: Api, cls_name: str, values: dict):
    """An enum namespace instance (``trt.BuilderFlag``): member reads are checked and recorded."""

    class E(Guard):
        _cls = cls_name

    for k, v in values.items():
        setattr(E, k, v)
    return E(api)


class FakeModule:
    """Stands in for ``tensorrt`` in ``sys.modules``: every attribute read is checked and recorded."""

    def __init__(self, api: Api, attrs: dict):
        object.__setattr__(self, "_api", api)
        object.__setattr__(self, "_attrs", attrs)

    def __getattribute__(self, name):
        if name.startswith("__") and name != "__version__":
            return object.__getattribute__(self, name)
        api = object.__getattribute__(self, "_api")
        if name == "_api":
            return api
        api.touch(name)
        return object.__getattribute__(self, "_attrs")[name]


def fake_tensorrt(version: str) -> FakeModule:
    """A fake ``tensorrt`` of ``version`` (``"8.6.2"``, ``"10.3.0"``, ...)."""
    major = int(version.split(".")[0])
    api = Api(version, "10.3" if major >= 10 else "8.6")

    Logger = _enum(api, "Logger", {"WARNING": 2, "ERROR": 1, "INFO": 3, "VERBOSE": 4, "INTERNAL_ERROR": 0})
    flags = {"EXPLICIT_BATCH": 0}
    flags.update({"STRONGLY_TYPED": 1} if major >= 10 else {"EXPLICIT_PRECISION": 1})
    NetFlag = _enum(api, "NetworkDefinitionCreationFlag", flags)
    BuilderFlag = _enum(api, "BuilderFlag", {"FP16": "FP16", "INT8": "INT8", "GPU_FALLBACK": "GPU_FALLBACK"})
    Pool = _enum(api, "MemoryPoolType", {"WORKSPACE": "WORKSPACE"})
    Device = _enum(api, "DeviceType", {"GPU": "GPU", "DLA": "DLA"})
    IOMode = _enum(api, "TensorIOMode", {"INPUT": "INPUT", "OUTPUT": "OUTPUT", "NONE": "NONE"})

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    class TimingCache(Guard):
        _cls = "ITimingCache"

        def __init__(self, data: bytes):
            super().__init__(api)
            self._data = data

        def serialize(self):
            return b"TIMING" + self._data

    class Config(Guard):
        _cls = "IBuilderConfig"

        def __init__(self):
            super().__init__(api)
            self._flags, self._pool, self._tc = [], {}, None

        def set_memory_pool_limit(self, pool, size):
            self._pool[pool] = size

        def set_flag(self, flag):
            self._flags.append(flag)

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self._tc = cache
            return True

        def get_timing_cache(self):
            return self._tc

    class Network(Guard):
        _cls = "INetworkDefinition"

        def __init__(self, flags):
            super().__init__(api)
            self._flags = flags

    class Parser(Guard):
        _cls = "OnnxParser"

        def __init__(self, network, logger):
            super().__init__(api)
            self._network = network
            object.__setattr__(self, "num_errors", 0)

        def parse_from_file(self, path):
            self._network._onnx = str(path)
            return Path(path).is_file()

        def get_error(self, i):
            return "no such file"

    class Builder(Guard):
        _cls = "Builder"

        def __init__(self, logger):
            super().__init__(api)
            object.__setattr__(self, "num_DLA_cores", 2)

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            d = config.__dict__
            calib = d.get("int8_calibrator")
            record = {"network_flags": network._flags, "onnx": network._onnx, "flags": config._flags,
                      "device": d.get("default_device_type"), "dla_core": d.get("DLA_core"),
                      "calib_header": calib.read_calibration_cache().decode().splitlines()[0] if calib else None}
            return b"PLAN" + json.dumps(record).encode()

    class Engine(Guard):
        _cls = "ICudaEngine"

        def __init__(self, tensors):
            super().__init__(api)
            self._t = tensors
            object.__setattr__(self, "num_io_tensors", len(tensors))

        def get_tensor_name(self, i):
            return self._t[i][0]

        def get_tensor_shape(self, name):
            return dict((n, s) for n, s, _, _ in self._t)[name]

        def get_tensor_dtype(self, name):
            return dict((n, d) for n, _, d, _ in self._t)[name]

        def get_tensor_mode(self, name):
            return dict((n, m) for n, _, _, m in self._t)[name]

        def create_execution_context(self):
            return Context(self)

    class Context(Guard):
        _cls = "IExecutionContext"

        def __init__(self, engine):
            super().__init__(api)
            self._engine, self._addr = engine, {}

        def set_tensor_address(self, name, ptr):
            self._addr[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            mem = FakeCuda.memory
            mem[self._addr["seg"]][...] = 2 * mem[self._addr["image"]]
            return True

    class Runtime(Guard):
        _cls = "Runtime"

        def __init__(self, logger):
            super().__init__(api)

        def deserialize_cuda_engine(self, data):
            if not data.startswith(b"PLAN"):
                return None
            return Engine([("image", (1, 3, 4, 8), "float32", IOMode.INPUT),
                           ("seg", (1, 3, 4, 8), "float32", IOMode.OUTPUT)])

    attrs = {"__version__": version, "Logger": _Callable(Logger, api, lambda sev: ("logger", sev)),
             "Builder": Builder, "Runtime": Runtime, "OnnxParser": Parser,
             "NetworkDefinitionCreationFlag": NetFlag, "BuilderFlag": BuilderFlag, "MemoryPoolType": Pool,
             "DeviceType": Device, "TensorIOMode": IOMode, "IInt8EntropyCalibrator2": IInt8EntropyCalibrator2,
             "nptype": lambda dtype: np.dtype(dtype).type}
    return FakeModule(api, attrs)


class _Callable:
    """``trt.Logger``: both a constructor and a holder of severity constants."""

    def __init__(self, enum_cls, api, make):
        self._enum, self._api, self._make = enum_cls, api, make

    def __getattr__(self, name):
        self._api.touch(f"Logger.{name}")
        return getattr(self._enum, name)

    def __call__(self, *a):
        return self._make(*a)


class FakeCuda:
    """The runner's CUDA binding interface over NumPy "device" memory (class-wide, like a GPU's)."""

    name = "fake"
    memory: dict[int, np.ndarray] = {}

    def __init__(self, cc: str = "8.7"):
        self.cc, self.pinned_made, self.freed, self.synced = cc, 0, [], 0

    def compute_capability(self, device=0):
        return self.cc

    def stream(self):
        return "stream"

    def stream_handle(self, stream):
        return 7

    def malloc(self, nbytes):
        buf = np.zeros(nbytes // 4, np.float32)
        FakeCuda.memory[id(buf)] = buf
        return id(buf)

    def pinned(self, shape, dtype):
        self.pinned_made += 1
        return np.zeros(shape, dtype)

    def htod(self, ptr, host, stream):
        FakeCuda.memory[ptr][...] = host.ravel()

    def dtoh(self, host, ptr, stream):
        host.ravel()[...] = FakeCuda.memory[ptr]

    def synchronize(self, stream):
        self.synced += 1

    def free(self, ptr):
        self.freed.append(ptr)

    def free_pinned(self, host):
        pass

    def destroy(self, stream):
        pass


class FakeCudart:
    """cuda-python's ``cudart`` surface the runner's :class:`CudaPython` calls, on real host memory (ctypes)."""

    class cudaMemcpyKind:  # noqa: N801 (cuda-python's name)
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self):
        self.buffers, self.calls = {}, []

    def _alloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.buffers[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def cudaGetDeviceProperties(self, dev):
        self.calls.append("cudaGetDeviceProperties")
        return 0, type("Props", (), {"major": 8, "minor": 7})()

    def cudaStreamCreate(self):
        self.calls.append("cudaStreamCreate")
        return 0, 99

    def cudaMalloc(self, n):
        self.calls.append("cudaMalloc")
        return 0, self._alloc(n)

    def cudaMallocHost(self, n):
        self.calls.append("cudaMallocHost")
        return 0, self._alloc(n)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.calls.append("cudaMemcpyAsync")
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamSynchronize(self, s):
        self.calls.append("cudaStreamSynchronize")
        return (0,)

    def cudaFree(self, p):
        self.calls.append("cudaFree")
        return (0,)

    def cudaFreeHost(self, p):
        self.calls.append("cudaFreeHost")
        return (0,)

    def cudaStreamDestroy(self, s):
        self.calls.append("cudaStreamDestroy")
        return (0,)
