"""The TensorRT Python builder for an :class:`~panoedge.deploy.trt_plan.EnginePlan` (kept thin).

Every call here exists in the TensorRT 8.5/8.6 and 10.x Python bindings (``tests/data/tensorrt_api``
lists them per version and the tests check each name this module touches). Differences by version:
``EXPLICIT_BATCH`` before 10 (10 is explicit-batch only and ignores it), ``STRONGLY_TYPED`` from 10 for
the ``qdq`` plan, the ``INT8`` flag for ``qdq`` before 10 (Q/DQ layers then set the precisions).
"""

from __future__ import annotations

from pathlib import Path

from panoedge.deploy.trt_plan import STRONGLY_TYPED_MAJOR, EnginePlan, major
from panoedge.errors import DataError, UsageError
from panoedge.home import atomic_write_bytes

WORKSPACE_GB = 1.0  # enough for these students at 512x1024; TensorRT uses less where it can


def cache_calibrator(trt, cache: bytes):
    """An ``IInt8EntropyCalibrator2`` that only hands TensorRT a stored cache (no data, no calibration)."""

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, data):
            return None

    return CacheCalibrator()


def network_flags(trt, plan: EnginePlan) -> int:
    """``create_network`` flags for ``plan`` on the imported TensorRT."""
    flags = 0
    trt_major = major(trt.__version__)
    if trt_major < STRONGLY_TYPED_MAJOR:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed:
        if trt_major < STRONGLY_TYPED_MAJOR:
            raise UsageError(f"plan for TensorRT {plan.tensorrt} is strongly typed; this is TensorRT {trt.__version__}")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def build_with_tensorrt(plan: EnginePlan, trt=None, workspace_gb: float = WORKSPACE_GB) -> None:
    """Build ``plan`` with the TensorRT Python API; writes the engine and the timing cache."""
    if trt is None:
        import tensorrt as trt
    from panoedge.deploy.trt_cache import retag

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DataError(f"{plan.onnx}: TensorRT {trt.__version__} cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if plan.mode == "qdq" and not plan.strongly_typed:
        config.set_flag(trt.BuilderFlag.INT8)
    elif plan.mode == "calib":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        text = retag(Path(plan.calib_source).read_text(), trt.__version__)
        config.int8_calibrator = cache_calibrator(trt, text.encode())
    elif plan.mode == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    tc_path = Path(plan.timing_cache)
    timing = config.create_timing_cache(tc_path.read_bytes() if tc_path.is_file() else b"")
    config.set_timing_cache(timing, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DataError(f"TensorRT {trt.__version__} failed to build {plan.engine} (see the messages above)")
    atomic_write_bytes(plan.engine, bytes(serialized))
    atomic_write_bytes(tc_path, bytes(config.get_timing_cache().serialize()))


def dla_cores(trt) -> int:
    """DLA cores TensorRT sees on this device (0 on desktop GPUs and the Orin Nano)."""
    return int(trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)
