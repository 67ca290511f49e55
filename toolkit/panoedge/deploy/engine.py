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

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from panoedge.deploy.trt_plan import (ENGINE_DIR, PRECISIONS, TIMING_CACHE, EnginePlan, choose_dla, engine_name,
                                      plan_engine, trtexec_command)
from panoedge.errors import UsageError
from panoedge.home import atomic_write_text, write_json
from panoedge.results import Record, Result, json_field
from panoedge.runtime.trt_select import release

__all__ = ["ENGINE_DIR", "PRECISIONS", "TIMING_CACHE", "DeviceFacts", "EnginePlan", "EngineResult", "build_engine",
           "device_facts", "engine_name",
           "plan_engine", "trtexec_command", "write_tagged_cache"]


@dataclass(frozen=True)
class DeviceFacts(Record):
    """The TensorRT, GPU and DLA an engine is (or would be) built for."""

    tensorrt: str | None
    compute_capability: str | None
    dla_cores: int | None = None
    module: dict | None = None  # the detected Jetson module's target profile


def device_facts(target: dict) -> DeviceFacts:
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
    return DeviceFacts(tensorrt=trt.__version__, compute_capability=cc, dla_cores=dla_cores(trt), module=module)


@dataclass(frozen=True)
class DlaDecision(Record):
    """DLA core or GPU, why, and the lint's DLA block the choice went by."""

    core: int | None
    reason: str
    lint: dict | None


@dataclass(frozen=True)
class Alternative(Record):
    """The other plan (DLA or GPU) as a trtexec command."""

    dla_core: int | None
    describe: str
    command: str


@dataclass(frozen=True)
class EngineResult(Result):
    """What :func:`build_engine` did: built, reused, or (no TensorRT here) the trtexec command to run."""

    SCHEMA = "panoedge.engine/1"
    plan: EnginePlan
    engine: str
    describe: str
    command: str
    device: DeviceFacts
    built: bool
    cached: bool
    dla: DlaDecision
    warnings: tuple[str, ...]
    reason: str | None = json_field(default=None, omit_none=True)
    alternatives: tuple[Alternative, ...] | None = json_field(default=None, omit_none=True)

    def format(self) -> str:
        lines = [f"plan: {self.describe}; {self.dla.reason}"]
        if self.built or self.cached:
            dla = f", DLA core {self.plan.dla_core}" if self.plan.dla_core is not None else ""
            lines.append(f"{'built' if self.built else 'up to date'}: {self.engine} ({self.plan.mode}, "
                         f"TensorRT {self.device.tensorrt}, sm {self.device.compute_capability}{dla})")
        else:
            lines += [f"{self.reason}:", self.command]
            for alt in self.alternatives or ():
                lines += [f"alternative: {alt.describe}:", alt.command]
        return "\n".join(lines)


def write_tagged_cache(plan: EnginePlan) -> None:
    """Write the calibration cache retagged for ``plan.tensorrt`` where the plan reads one (``engines/``)."""
    if plan.calib_cache is None:
        return
    from panoedge.deploy.trt_cache import retag

    Path(plan.calib_cache).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.calib_cache, retag(Path(plan.calib_source).read_text(), plan.tensorrt))


def _alternatives(bundle: Path, manifest: dict, facts: DeviceFacts, precision: str,
                  chosen: int | None) -> tuple[Alternative, ...]:
    """The other plan (DLA or GPU) for the printed command, where the target has a DLA."""
    if precision == "fp32" or not manifest["target"].get("dla_cores"):
        return ()
    other = None if chosen is not None else 0
    try:
        plan = plan_engine(bundle, manifest, tensorrt=facts.tensorrt, cc=facts.compute_capability,
                           precision=precision, dla_core=other)
    except UsageError:
        return ()
    write_tagged_cache(plan)
    return (Alternative(dla_core=other, describe=plan.describe(), command=shlex.join(trtexec_command(plan))),)


def _have_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def _facts(target: dict, have_trt: bool, tensorrt: str | None, cc: str | None) -> DeviceFacts:
    """This device's facts (TensorRT here), else the flags' or the target profile's, checked."""
    if have_trt and (tensorrt or cc):
        raise UsageError("--trt-version/--cc are for printing a trtexec command; with TensorRT here they are detected")
    facts = device_facts(target) if have_trt else DeviceFacts(
        tensorrt=tensorrt or target.get("tensorrt"), compute_capability=cc or target.get("compute_capability"))
    if not facts.tensorrt:
        raise UsageError(f"target {target['name']} names no TensorRT version; pass --trt-version")
    try:
        facts = dataclasses.replace(facts, tensorrt=release(facts.tensorrt))  # "10.3" names the engine as 10.3.0 does
    except ValueError:
        raise UsageError(f"--trt-version {facts.tensorrt!r}: expected a version such as 8.6.2 or 10.3") from None
    if facts.compute_capability in (None, "detect", "none"):
        raise UsageError(f"target {target['name']} has no fixed compute capability; pass --cc (e.g. 8.9)")
    return facts


def build_engine(bundle: str | Path, precision: str | None = None, dla_core: int | str | None = "auto",
                 tensorrt: str | None = None, cc: str | None = None, force: bool = False) -> EngineResult:
    """Build (or reuse) the bundle's engine, or return the ``trtexec`` command where TensorRT is absent.

    ``dla_core``: ``"auto"`` (:func:`panoedge.deploy.trt_plan.choose_dla`: the DLA only where the
    target wants it, the device has one and the lint's loadable count fits), an integer, or
    ``None`` (GPU). The result's ``dla.reason`` says which and why.
    """
    from panoedge.deploy.bundle import read_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    target = manifest["target"]
    have_trt = _have_tensorrt()
    facts = _facts(target, have_trt=have_trt, tensorrt=tensorrt, cc=cc)
    precision = precision or target["precision"]
    lint_dla = ((manifest.get("lint") or {}).get("fp32") or {}).get("dla")
    choice = choose_dla(dla_core, target=target, precision=precision, device_cores=facts.dla_cores,
                        module=facts.module, lint_dla=lint_dla)
    plan = plan_engine(bundle, manifest, tensorrt=facts.tensorrt, cc=facts.compute_capability, precision=precision,
                       dla_core=choice.core)
    write_tagged_cache(plan)
    warnings = []
    if choice.core is not None and lint_dla and lint_dla.get("over_limit"):
        warnings.append(f"the lint counts {lint_dla['estimated_loadables']} DLA loadables (limit "
                        f"{lint_dla['limit_per_core']} per core); if the build fails, use --dla-core none")
    out = EngineResult(plan=plan, engine=plan.engine, describe=plan.describe(),
                       command=shlex.join(trtexec_command(plan)), device=facts, built=False, cached=False,
                       dla=DlaDecision(core=choice.core, reason=choice.reason, lint=lint_dla), warnings=tuple(warnings))
    if not have_trt:
        return dataclasses.replace(
            out, reason="TensorRT is not importable here: run the command on the device (or pip install tensorrt)",
            alternatives=_alternatives(bundle, manifest=manifest, facts=facts, precision=precision, chosen=choice.core))
    from panoedge.deploy.trt_build import build_with_tensorrt

    sidecar = Path(plan.engine + ".json")
    key = plan.key()
    if not force and Path(plan.engine).is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == key:
        return dataclasses.replace(out, cached=True)
    Path(plan.engine).parent.mkdir(parents=True, exist_ok=True)
    build_with_tensorrt(plan)
    write_json(sidecar, key)
    return dataclasses.replace(out, built=True)
