"""What a TensorRT engine build is, per (target, TensorRT version): one plan, two front ends.

The same :class:`EnginePlan` drives the printed ``trtexec`` line (:func:`trtexec_command`) and
the Python builder (:mod:`panoedge.deploy.trt_build`), so they cannot drift apart.

INT8 has two plans, because the DLA and the GPU quantize differently:

* ``qdq`` (GPU): the QDQ INT8 ONNX, explicit quantization. TensorRT >= 10 builds it as a
  strongly typed network (``--stronglyTyped``); TensorRT 8.5/8.6 take the same model with
  ``--int8`` (Q/DQ layers set the precisions; there is no strongly typed mode before 9).
* ``calib`` (DLA): the FP32 ONNX with ``--int8 --fp16`` and the bundle's entropy calibration
  cache, on a DLA core with GPU fallback. The DLA runs implicit (calibrated) INT8 only, not
  explicit Q/DQ (NVIDIA/TensorRT#2222), on 8.5, 8.6 and 10.x alike. ``--fp16`` lets a layer
  without a scale in the cache stay on the DLA in FP16 instead of falling back to the GPU.
  The cache header names the TensorRT version it is for, so the plan points at a copy tagged
  for the plan's version (:func:`panoedge.deploy.trt_cache.retag`), never at a mismatched one.

FP16 and FP32 engines come from the FP32 ONNX; FP16 may use the DLA, FP32 may not.

A target profile's ``int8_engine`` says which INT8 plan it wants; ``--dla-core auto``
(:func:`choose_dla`) takes the DLA only where the target wants it, the device has one and the
bundle's lint counts no more DLA loadables than a core holds, and says why when it does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from panoedge.errors import UsageError
from panoedge.home import sha256_file
from panoedge.runtime.trt_select import version_key

ENGINE_DIR = "engines"
#: Timing cache per TensorRT and GPU (TensorRT discards one written by another version or GPU).
TIMING_CACHE = "timing.trt{tensorrt}.sm{cc}.cache"
PRECISIONS = ("int8", "fp16", "fp32")
MODES = ("qdq", "calib", "fp16", "fp32")
#: First TensorRT major without implicit (calibrated) INT8 or weakly typed FP16: every network is
#: strongly typed (TensorRT 10.x release notes deprecate both for removal).
STRONGLY_TYPED_ONLY_MAJOR = 11
#: First TensorRT major with strongly typed networks (``--stronglyTyped``, ``STRONGLY_TYPED``).
STRONGLY_TYPED_MAJOR = 10

#: trtexec flags this module emits, with the TensorRT versions that accept them:
#: ``(first version, first version without it or None)``. From ``trtexec --help`` of 8.5, 8.6 and 10.x.
TRTEXEC_FLAGS = {
    "--onnx": ((8, 0), None),
    "--saveEngine": ((8, 0), None),
    "--timingCacheFile": ((8, 0), None),
    "--int8": ((8, 0), None),
    "--fp16": ((8, 0), None),
    "--calib": ((8, 0), (STRONGLY_TYPED_ONLY_MAJOR, 0)),
    "--stronglyTyped": ((STRONGLY_TYPED_MAJOR, 0), None),
    "--useDLACore": ((8, 0), None),
    "--allowGPUFallback": ((8, 0), None),
}


def major(version: str) -> int:
    return version_key(version)[0]


@dataclass(frozen=True)
class EnginePlan:
    """Everything one engine build depends on, and where it goes (paths relative to the bundle's parent)."""

    onnx: str
    precision: str
    mode: str                 # one of MODES
    strongly_typed: bool
    tensorrt: str
    compute_capability: str
    hw: tuple[int, int]
    batch: int
    dla_core: int | None
    calib_source: str | None  # the bundle's cache
    calib_cache: str | None   # the copy tagged for ``tensorrt`` (what TensorRT reads)
    engine: str
    timing_cache: str

    def key(self) -> dict:
        """What the engine's JSON sidecar records: the build's inputs, with content hashes."""
        d = asdict(self)
        d["onnx_sha256"] = sha256_file(self.onnx)
        d["calib_sha256"] = sha256_file(self.calib_source) if self.calib_source else None
        d["hw"] = list(self.hw)
        return {k: v for k, v in d.items() if k not in ("engine", "timing_cache", "calib_cache")}

    def describe(self) -> str:
        where = f"DLA core {self.dla_core} + GPU fallback" if self.dla_core is not None else "GPU"
        how = {"qdq": "explicit INT8 from the QDQ model" + (", strongly typed" if self.strongly_typed else ""),
               "calib": "implicit INT8 from the FP32 model and the calibration cache",
               "fp16": "FP16", "fp32": "FP32"}[self.mode]
        return f"{how}, on the {where} (TensorRT {self.tensorrt}, sm {self.compute_capability})"


def engine_name(model: str, precision: str, tensorrt: str, cc: str, hw, batch: int, dla_core: int | None) -> str:
    """``model.int8.trt10.3.0.sm87.512x1024.b1.dla0.engine``-style file name."""
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"{model}.{precision}.trt{tensorrt}.sm{str(cc).replace('.', '')}.{hw[0]}x{hw[1]}.b{batch}{dla}.engine"


def tagged_cache_name(source: str, tensorrt: str) -> str:
    """``model.int8.calib.cache`` -> ``model.int8.calib.trt8502.cache`` for TensorRT 8.5.2."""
    from panoedge.deploy.trt_cache import version_tag

    stem = Path(source).name
    stem = stem[:-len(".cache")] if stem.endswith(".cache") else stem
    return f"{stem}.trt{version_tag(tensorrt)}.cache"


def plan_engine(bundle: str | Path, manifest: dict, tensorrt: str, cc: str, precision: str | None = None,
                dla_core: int | None = None) -> EnginePlan:
    """The build plan for a bundle on TensorRT ``tensorrt``, compute capability ``cc`` and ``dla_core``.

    INT8 on a DLA core is the ``calib`` plan, INT8 on the GPU the ``qdq`` plan (module docstring).
    """
    bundle = Path(bundle)
    target = manifest["target"]
    precision = precision or target["precision"]
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: choose {', '.join(PRECISIONS)}")
    version_key(tensorrt)  # a malformed version fails here, with the text
    trt_major = major(tensorrt)
    models, calibration = manifest["models"], manifest.get("calibration") or {}
    source = None
    if precision == "fp32" and dla_core is not None:
        raise UsageError("the DLA runs FP16 and INT8 only: use --dla-core none for an fp32 engine")
    if precision == "int8" and dla_core is not None:
        if trt_major >= STRONGLY_TYPED_ONLY_MAJOR:
            raise UsageError(f"TensorRT {tensorrt} has no implicit (calibrated) INT8, the only INT8 the DLA runs: "
                             "use --dla-core none")
        if not calibration.get("trt_cache"):
            raise UsageError(f"{bundle}: no TensorRT calibration cache in the bundle; the DLA INT8 plan needs one")
        mode, onnx, source = "calib", models["fp32"], calibration["trt_cache"]
    elif precision == "int8":
        if calibration.get("activations") != "int8":
            raise UsageError(f"{bundle}: its INT8 model has {calibration.get('activations')} activations "
                             f"(target {target['name']}); TensorRT takes symmetric int8 only: build the bundle for a "
                             "TensorRT target")
        mode, onnx = "qdq", models["int8"]
    else:
        if precision == "fp16" and trt_major >= STRONGLY_TYPED_ONLY_MAJOR:
            raise UsageError(f"TensorRT {tensorrt} builds strongly typed networks only: use int8 or fp32")
        mode, onnx = precision, models["fp32"]
    inp = manifest["input"]
    hw, batch = tuple(int(v) for v in inp["shape"][2:]), int(inp["shape"][0] or 1)
    name = engine_name(Path(onnx).name.split(".")[0], precision=precision, tensorrt=tensorrt, cc=cc, hw=hw, batch=batch,
                       dla_core=dla_core)
    engines = bundle / ENGINE_DIR
    return EnginePlan(onnx=str(bundle / onnx), precision=precision, mode=mode,
                      strongly_typed=mode == "qdq" and trt_major >= STRONGLY_TYPED_MAJOR, tensorrt=str(tensorrt),
                      compute_capability=str(cc), hw=hw, batch=batch, dla_core=dla_core,
                      calib_source=str(bundle / source) if source else None,
                      calib_cache=str(engines / tagged_cache_name(source, tensorrt)) if source else None,
                      engine=str(engines / name),
                      timing_cache=str(engines / TIMING_CACHE.format(tensorrt=tensorrt, cc=str(cc).replace(".", ""))))


def trtexec_command(plan: EnginePlan) -> list[str]:
    """The ``trtexec`` command line that builds ``plan`` (argv list), valid for ``plan.tensorrt``."""
    cmd = ["trtexec", f"--onnx={plan.onnx}", f"--saveEngine={plan.engine}", f"--timingCacheFile={plan.timing_cache}"]
    if plan.mode == "qdq":
        cmd.append("--stronglyTyped" if plan.strongly_typed else "--int8")
    elif plan.mode == "calib":
        cmd += ["--int8", "--fp16", f"--calib={plan.calib_cache}"]
    elif plan.mode == "fp16":
        cmd.append("--fp16")
    if plan.dla_core is not None:
        cmd += [f"--useDLACore={plan.dla_core}", "--allowGPUFallback"]
    check_trtexec(cmd, plan.tensorrt)
    return cmd


def check_trtexec(cmd: list[str], tensorrt: str) -> None:
    """Raise ``UsageError`` if a flag of ``cmd`` is unknown or not accepted by TensorRT ``tensorrt``."""
    v = version_key(tensorrt)[:2]
    for arg in cmd[1:]:
        flag = arg.split("=", 1)[0]
        if flag not in TRTEXEC_FLAGS:
            raise UsageError(f"trtexec flag {flag} is not in panoedge's table of checked flags")
        first, gone = TRTEXEC_FLAGS[flag]
        if v < first or (gone is not None and v >= gone):
            raise UsageError(f"trtexec {flag} is not accepted by TensorRT {tensorrt}")


@dataclass(frozen=True)
class DlaChoice:
    """Which DLA core ``--dla-core`` resolved to (None: the GPU), and why."""

    core: int | None
    reason: str


def choose_dla(requested, target: dict, precision: str, device_cores: int | None, module: dict | None,
               lint_dla: dict | None) -> DlaChoice:
    """Resolve ``--dla-core`` (``"auto"``, an integer or None) for a bundle's target on a device.

    ``device_cores``: the DLA cores TensorRT reports (None where TensorRT is absent: the target's
    count is assumed); ``module``: the detected Jetson module's target dict, if any; ``lint_dla``:
    the bundle's lint ``dla`` block for the FP32 model (what the DLA plan builds from).
    """
    cores = target.get("dla_cores", 0) if device_cores is None else int(device_cores)
    if module is not None:
        cores = min(cores, int(module.get("dla_cores", 0)))
    if requested is None:
        return DlaChoice(None, "GPU only (--dla-core none)")
    if requested != "auto":
        core = int(requested)
        if not 0 <= core < cores:
            where = module["name"] if module else target["name"]
            raise UsageError(f"--dla-core {core}: {where} has {cores} DLA core(s)"
                             + (" (TensorRT's count)" if device_cores is not None else ""))
        return DlaChoice(core, f"DLA core {core} (asked for)")
    if precision == "fp32":
        return DlaChoice(None, "GPU: the DLA runs FP16 and INT8 only")
    if target.get("int8_engine", "dla" if target.get("dla_cores") else "gpu") != "dla":
        return DlaChoice(None, f"GPU: target {target['name']} plans its engine for the GPU (int8_engine = \"gpu\")")
    if cores <= 0:
        who = f"the {module['name']}" if module else ("this device (TensorRT reports none)" if device_cores is not None
                                                      else f"target {target['name']}")
        return DlaChoice(None, f"GPU: {who} has no DLA core")
    if not lint_dla:
        return DlaChoice(None, "GPU: the bundle's lint has no DLA loadable count (rebuild the bundle); "
                               "pass --dla-core 0 to use the DLA anyway")
    n, limit = lint_dla["estimated_loadables"], lint_dla["limit_per_core"]
    if n > limit:
        return DlaChoice(None, f"GPU: the lint counts {n} DLA loadables for this model, over the {limit} a DLA core "
                               "holds; pass --dla-core 0 to try the DLA anyway")
    return DlaChoice(0, f"DLA core 0: {n} DLA loadables (limit {limit} per core)")
