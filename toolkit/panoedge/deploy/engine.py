"""``panoedge engine BUNDLE``: build the TensorRT engine on the device, or print the trtexec command.

The plan (which ONNX, which INT8 path, DLA or GPU) is :mod:`panoedge.deploy.trt_plan`'s; the
Python builder :mod:`panoedge.deploy.trt_build`'s. This module detects the device (TensorRT
version, compute capability, DLA cores, Jetson module), resolves ``--dla-core`` and reuses an
engine whose JSON sidecar records the same inputs.

Engines are named ``<model>.<precision>.trt<version>.sm<cc>.<H>x<W>.b<batch>[.dla<core>].engine``
and carry a JSON sidecar with the hashes of the inputs they were built from: a different
TensorRT, GPU, precision or shape gives another name, changed ONNX or cache a rebuild. The
runtime picks among them by the sidecar (:func:`panoedge.runtime.trt_select.select_engine`).
Without an importable TensorRT the exact ``trtexec`` command is returned instead (version and
compute capability then come from the target profile, or ``--trt-version``/``--cc``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path

from panoedge.deploy.trt_plan import (ENGINE_DIR, PRECISIONS, TIMING_CACHE, EnginePlan, choose_dla, engine_name,
                                      plan_engine, trtexec_command)
from panoedge.errors import UsageError
from panoedge.home import atomic_write_text, write_json
from panoedge.runtime.trt_select import release

__all__ = ["ENGINE_DIR", "PRECISIONS", "TIMING_CACHE", "EnginePlan", "build_engine", "device_facts", "engine_name",
           "plan_engine", "trtexec_command", "write_tagged_cache"]


def device_facts(target: dict) -> dict:
    """TensorRT version, compute capability, DLA cores and Jetson module of this machine (TensorRT importable)."""
    import tensorrt as trt

    from panoedge.deploy.trt_build import dla_cores
    from panoedge.env import gpu_info, jetson_model
    from panoedge.runtime.cuda_binding import compute_capability

    cc = compute_capability() or (gpu_info() or {}).get("compute_capability")
    module = None
    if target.get("kind") == "jetson":
        from panoedge.deploy.targets import detect_module, load_target

        found = detect_module(load_target(target["name"]), jetson_model())
        module = found.to_dict() if found else None
        cc = cc or target.get("compute_capability")
    if not cc or cc in ("detect", "none"):
        raise UsageError("cannot tell this GPU's compute capability; pass --cc (e.g. 8.7)")
    return {"tensorrt": trt.__version__, "compute_capability": cc, "dla_cores": dla_cores(trt), "module": module}


def write_tagged_cache(plan: EnginePlan) -> None:
    """Write the calibration cache retagged for ``plan.tensorrt`` where the plan reads one (``engines/``)."""
    if plan.calib_cache is None:
        return
    from panoedge.deploy.trt_cache import retag

    Path(plan.calib_cache).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.calib_cache, retag(Path(plan.calib_source).read_text(), plan.tensorrt))


def _alternatives(bundle: Path, manifest: dict, facts: dict, precision: str, chosen: int | None) -> list[dict]:
    """The other plan (DLA or GPU) for the printed command, where the target has a DLA."""
    if precision == "fp32" or not manifest["target"].get("dla_cores"):
        return []
    other = None if chosen is not None else 0
    try:
        plan = plan_engine(bundle, manifest, facts["tensorrt"], facts["compute_capability"], precision, other)
    except UsageError:
        return []
    write_tagged_cache(plan)
    return [{"dla_core": other, "describe": plan.describe(), "command": shlex.join(trtexec_command(plan))}]


def _have_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def build_engine(bundle: str | Path, precision: str | None = None, dla_core: int | str | None = "auto",
                 tensorrt: str | None = None, cc: str | None = None, force: bool = False) -> dict:
    """Build (or reuse) the bundle's engine, or return the ``trtexec`` command where TensorRT is absent.

    Returns ``{"built", "cached", "engine", "command", "plan", "dla", ...}``. ``dla_core``:
    ``"auto"`` (:func:`panoedge.deploy.trt_plan.choose_dla`: the DLA only where the target wants
    it, the device has one and the lint's loadable count fits), an integer, or ``None`` (GPU).
    ``out["dla"]["reason"]`` says which and why.
    """
    from panoedge.deploy.bundle import read_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    target = manifest["target"]
    have_trt = _have_tensorrt()
    if have_trt and (tensorrt or cc):
        raise UsageError("--trt-version/--cc are for printing a trtexec command; with TensorRT here they are detected")
    facts = device_facts(target) if have_trt else {
        "tensorrt": tensorrt or target.get("tensorrt"), "compute_capability": cc or target.get("compute_capability"),
        "dla_cores": None, "module": None}
    if not facts["tensorrt"]:
        raise UsageError(f"target {target['name']} names no TensorRT version; pass --trt-version")
    try:
        facts["tensorrt"] = release(facts["tensorrt"])  # "10.3" names the engine as TensorRT 10.3.0 does
    except ValueError:
        raise UsageError(f"--trt-version {facts['tensorrt']!r}: expected a version such as 8.6.2 or 10.3") from None
    if facts["compute_capability"] in (None, "detect", "none"):
        raise UsageError(f"target {target['name']} has no fixed compute capability; pass --cc (e.g. 8.9)")
    precision = precision or target["precision"]
    lint_dla = ((manifest.get("lint") or {}).get("fp32") or {}).get("dla")
    choice = choose_dla(dla_core, target, precision, facts["dla_cores"], facts["module"], lint_dla)
    plan = plan_engine(bundle, manifest, facts["tensorrt"], facts["compute_capability"], precision, choice.core)
    write_tagged_cache(plan)
    sidecar = Path(plan.engine + ".json")
    out = {"schema": "panoedge.engine/1", "plan": asdict(plan), "engine": plan.engine, "describe": plan.describe(),
           "command": shlex.join(trtexec_command(plan)), "device": facts, "built": False, "cached": False,
           "dla": {"core": choice.core, "reason": choice.reason, "lint": lint_dla}, "warnings": []}
    if choice.core is not None and lint_dla and lint_dla.get("over_limit"):
        out["warnings"].append(f"the lint counts {lint_dla['estimated_loadables']} DLA loadables (limit "
                               f"{lint_dla['limit_per_core']} per core); if the build fails, use --dla-core none")
    if not have_trt:
        out["reason"] = "TensorRT is not importable here: run the command on the device (or pip install tensorrt)"
        out["alternatives"] = _alternatives(bundle, manifest, facts, precision, choice.core)
        return out
    from panoedge.deploy.trt_build import build_with_tensorrt

    key = plan.key()
    if not force and Path(plan.engine).is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == key:
        out["cached"] = True
        return out
    Path(plan.engine).parent.mkdir(parents=True, exist_ok=True)
    build_with_tensorrt(plan)
    write_json(sidecar, key)
    out["built"] = True
    return out
