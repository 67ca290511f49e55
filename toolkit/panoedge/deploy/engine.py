"""``panoedge engine BUNDLE``: build the TensorRT engine on the device, or print the trtexec command.

How the engine is built depends on the TensorRT that builds it:

* TensorRT 10+: the QDQ INT8 ONNX as a strongly typed network (explicit quantization; from
  TensorRT 11 every network is strongly typed).
* TensorRT 8.x (JetPack 5, JetPack 6.0): the FP32 ONNX with the INT8 and FP16 builder flags and
  the bundle's calibration cache fed through an ``IInt8EntropyCalibrator2`` (no calibration runs
  on the device).
* FP16 / FP32 engines from the FP32 ONNX.

DLA: where the target has DLA cores (and TensorRT reports them) the engine defaults to DLA
core 0 with GPU fallback. A timing cache beside the engines makes rebuilds fast.

Engines are named ``<model>.<precision>.trt<version>.sm<cc>.<H>x<W>.b<batch>[.dla<core>].engine``
and carry a JSON sidecar with the hashes of the inputs they were built from: a different
TensorRT, GPU, precision or shape gives another name, changed ONNX or cache a rebuild.
Without an importable TensorRT the exact ``trtexec`` command is returned instead (version and
compute capability then come from the target profile, or ``--trt-version``/``--cc``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from panoedge.errors import DataError, UsageError
from panoedge.home import atomic_write_bytes, sha256_file, write_json

ENGINE_DIR = "engines"
TIMING_CACHE = "timing.cache"
PRECISIONS = ("int8", "fp16", "fp32")


@dataclass(frozen=True)
class EnginePlan:
    """Everything one engine build depends on, and where it goes."""

    onnx: str
    precision: str
    mode: str            # "strongly_typed", "implicit_int8", "fp16" or "fp32"
    tensorrt: str
    compute_capability: str
    hw: tuple[int, int]
    batch: int
    dla_core: int | None
    calib_cache: str | None
    engine: str
    timing_cache: str

    def key(self) -> dict:
        """What the sidecar records: the build's inputs, with content hashes."""
        d = asdict(self)
        d["onnx_sha256"] = sha256_file(self.onnx)
        d["calib_sha256"] = sha256_file(self.calib_cache) if self.calib_cache else None
        d["hw"] = list(self.hw)
        return {k: v for k, v in d.items() if k not in ("engine", "timing_cache")}


def engine_name(model: str, precision: str, tensorrt: str, cc: str, hw, batch: int, dla_core: int | None) -> str:
    """``model.int8.trt10.3.0.sm87.512x1024.b1.dla0.engine``-style file name."""
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"{model}.{precision}.trt{tensorrt}.sm{str(cc).replace('.', '')}.{hw[0]}x{hw[1]}.b{batch}{dla}.engine"


def _major(version: str) -> int:
    return int(str(version).split(".")[0])


def plan_engine(bundle: str | Path, manifest: dict, tensorrt: str, cc: str, precision: str | None = None,
                dla_core: int | None = None) -> EnginePlan:
    """The build plan for a bundle on TensorRT ``tensorrt`` and a GPU of compute capability ``cc``."""
    bundle = Path(bundle)
    target = manifest["target"]
    precision = precision or target["precision"]
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: choose {', '.join(PRECISIONS)}")
    models = manifest["models"]
    if precision == "int8" and _major(tensorrt) >= 10:
        if manifest["calibration"].get("activations") != "int8":
            raise UsageError(f"{bundle}: its INT8 model has {manifest['calibration'].get('activations')} activations "
                             f"(target {target['name']}); TensorRT takes symmetric int8 only: build the bundle for a "
                             "TensorRT target")
        mode, onnx, cache = "strongly_typed", models["int8"], None
    elif precision == "int8":
        mode, onnx, cache = "implicit_int8", models["fp32"], manifest["calibration"]["trt_cache"]
    else:
        if precision == "fp16" and _major(tensorrt) >= 11:
            raise UsageError("fp16 engines need TensorRT < 11 (its networks are strongly typed: use int8 or fp32)")
        mode, onnx, cache = precision, models["fp32"], None
    if precision == "fp32":
        dla_core = None  # the DLA runs FP16/INT8 only
    inp = manifest["input"]
    hw, batch = tuple(inp["shape"][2:]), int(inp["shape"][0] or 1)
    name = engine_name(Path(onnx).name.split(".")[0], precision, tensorrt, cc, hw, batch, dla_core)
    return EnginePlan(onnx=str(bundle / onnx), precision=precision, mode=mode, tensorrt=str(tensorrt),
                      compute_capability=str(cc), hw=hw, batch=batch, dla_core=dla_core,
                      calib_cache=str(bundle / cache) if cache else None,
                      engine=str(bundle / ENGINE_DIR / name), timing_cache=str(bundle / ENGINE_DIR / TIMING_CACHE))


def trtexec_command(plan: EnginePlan) -> list[str]:
    """The ``trtexec`` command line that builds ``plan`` (argv list)."""
    cmd = ["trtexec", f"--onnx={plan.onnx}", f"--saveEngine={plan.engine}", f"--timingCacheFile={plan.timing_cache}"]
    if plan.mode == "strongly_typed":
        cmd.append("--stronglyTyped")
    elif plan.mode == "implicit_int8":
        cmd += ["--int8", "--fp16", f"--calib={plan.calib_cache}"]
    elif plan.mode == "fp16":
        cmd.append("--fp16")
    if plan.dla_core is not None:
        cmd += [f"--useDLACore={plan.dla_core}", "--allowGPUFallback"]
    return cmd


def _cache_calibrator(trt, cache: bytes):
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


def build_with_tensorrt(plan: EnginePlan, workspace_gb: float = 1.0) -> None:
    """Build ``plan`` with the TensorRT Python API; writes the engine and the timing cache."""
    import tensorrt as trt

    from panoedge.deploy.trt_cache import retag

    major = _major(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.mode == "strongly_typed" and major == 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(plan.onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DataError(f"{plan.onnx}: TensorRT {trt.__version__} cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if plan.mode == "implicit_int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        text = retag(Path(plan.calib_cache).read_text(), trt.__version__)
        config.int8_calibrator = _cache_calibrator(trt, text.encode())
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


def device_facts(target: dict) -> dict:
    """TensorRT version, compute capability, DLA cores and Jetson module of this machine (TensorRT importable)."""
    import tensorrt as trt

    from panoedge.env import gpu_info, jetson_model

    cc = None
    try:
        from panoedge.runtime.trt_runner import cuda_call, cuda_runtime

        props = cuda_call(cuda_runtime().cudaGetDeviceProperties(0))
        cc = f"{props.major}.{props.minor}"
    except Exception:  # cuda-python absent or no device: fall back to other probes
        info = gpu_info() or {}
        cc = info.get("compute_capability")
    module = None
    if target.get("kind") == "jetson":
        from panoedge.deploy.targets import detect_module, load_target

        found = detect_module(load_target(target["name"]), jetson_model())
        module = found.name if found else None
        cc = cc or target.get("compute_capability")
    if not cc or cc in ("detect", "none"):
        raise UsageError("cannot tell this GPU's compute capability; pass --cc (e.g. 8.7)")
    dla = int(trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)
    return {"tensorrt": trt.__version__, "compute_capability": cc, "dla_cores": dla, "module": module}


def build_engine(bundle: str | Path, precision: str | None = None, dla_core: int | str | None = "auto",
                 tensorrt: str | None = None, cc: str | None = None, force: bool = False) -> dict:
    """Build (or reuse) the bundle's engine, or return the ``trtexec`` command where TensorRT is absent.

    Returns ``{"built", "cached", "engine", "command", "plan", ...}``. ``dla_core``: ``"auto"``
    (core 0 where the target and this device have a DLA), an integer, or ``None`` (GPU only).
    """
    from panoedge.deploy.bundle import read_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    target = manifest["target"]
    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except ImportError:
        have_trt = False
    facts = device_facts(target) if have_trt else {
        "tensorrt": tensorrt or target.get("tensorrt"), "compute_capability": cc or target.get("compute_capability"),
        "dla_cores": target.get("dla_cores", 0), "module": None}
    if have_trt and (tensorrt or cc):
        raise UsageError("--trt-version/--cc are for printing a trtexec command; with TensorRT here they are detected")
    if not facts["tensorrt"]:
        raise UsageError(f"target {target['name']} names no TensorRT version; pass --trt-version")
    if facts["compute_capability"] in (None, "detect", "none"):
        raise UsageError(f"target {target['name']} has no fixed compute capability; pass --cc (e.g. 8.9)")
    if dla_core == "auto":
        dla_core = 0 if min(int(facts["dla_cores"] or 0), int(target.get("dla_cores", 0))) > 0 else None
    plan = plan_engine(bundle, manifest, facts["tensorrt"], facts["compute_capability"], precision,
                       None if dla_core is None else int(dla_core))
    sidecar = Path(plan.engine + ".json")
    command = shlex.join(trtexec_command(plan))
    out = {"schema": "panoedge.engine/1", "plan": asdict(plan), "engine": plan.engine, "command": command,
           "device": facts, "built": False, "cached": False, "warnings": []}
    lint = (manifest.get("lint") or {}).get("int8" if plan.mode == "strongly_typed" else "fp32") or {}
    if plan.dla_core is not None and (lint.get("dla") or {}).get("over_limit"):
        d = lint["dla"]
        out["warnings"].append(f"lint estimates ~{d['estimated_loadables']} DLA loadables (limit {d['limit_per_core']} "
                               "per core) from DLA->GPU fallbacks; if the build fails, use --dla-core none")
    if not have_trt:
        out["reason"] = "TensorRT is not importable here: run the command on the device (or pip install tensorrt)"
        return out
    key = plan.key()
    if not force and Path(plan.engine).is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == key:
        out["cached"] = True
        return out
    Path(plan.engine).parent.mkdir(parents=True, exist_ok=True)
    build_with_tensorrt(plan)
    write_json(sidecar, key)
    out["built"] = True
    return out
