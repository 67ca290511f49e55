"""``panoedge build``: a self-contained, hashed bundle folder for one target.

Steps (:func:`build_bundle`), all inside a temporary folder beside ``OUT`` that is renamed into
place only at the end (:func:`panoedge.home.atomic_dir`), so an interrupted build leaves no
half bundle:

1. FP32 ONNX: exported from ``student.pt`` (:func:`panoedge.deploy.export.export_model`) or an
   existing panoedge ONNX copied in (its size must match).
2. Lint for the target (:mod:`panoedge.deploy.lint`): ops TensorRT cannot import stop the build;
   DLA -> GPU fallbacks are listed.
3. INT8: calibration on DATA, QDQ model, TensorRT calibration cache, accuracy budget
   (:func:`panoedge.deploy.quantize.quantize_model`), activations as the target wants.
4. Classes and colours, preprocessing, the target profile, the rig file if given, the trtexec
   script for the device, and ``manifest.json`` with the sha256 of every file.

DLA: a target that wants INT8 on the DLA gets it only where the lint counts no more DLA
loadables than a core holds (16); otherwise the bundle's engine plan switches to the GPU and
says why (the manifest's ``engine_plan``, printed by ``panoedge build``): the bundle stays usable,
and ``panoedge engine --dla-core 0`` still tries the DLA on request.
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from panoedge.deploy.lint import BundleLint, lint_model
from panoedge.deploy.onnx_io import load_onnx, model_info
from panoedge.deploy.quantize import QuantizeConfig, QuantizeResult, quantize_model
from panoedge.deploy.targets import Target, load_target
from panoedge.errors import DataError, UsageError
from panoedge.home import atomic_dir, sha256_file, write_json
from panoedge.results import Result, json_field
from panoedge.runtime.bundle import MANIFEST, SCHEMA, SIGNATURE, bundle_files, read_manifest, verify_bundle
from panoedge.runtime.manifest import BundleManifest, InputSize

FP32, INT8 = "model.fp32.onnx", "model.int8.onnx"
BUILD_SCHEMA = "panoedge.build/1"
#: ERP sizes a bundle takes are multiples of this (the students' total stride).
SIZE_MULTIPLE = 32
#: Mode of the bundle's ``build_engine.sh`` (run it on the device).
SCRIPT_MODE = 0o755
#: Decimals of the build time in the manifest (seconds; finer is noise).
BUILD_SECONDS_DECIMALS = 1

__all__ = ["BuildResult", "build_bundle", "read_manifest", "verify_bundle"]


@dataclass(frozen=True)
class BuildResult(Result):
    """A built bundle: its manifest (the JSON ``panoedge build --json`` writes), and in memory the
    lint and quantization reports the build made (also in the bundle as ``lint.json`` and ``quantize.json``)."""

    SCHEMA = BUILD_SCHEMA
    manifest: BundleManifest
    out: Path = json_field(json=False)
    lint: BundleLint = json_field(json=False)
    quantize: QuantizeResult = json_field(json=False)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.manifest.warnings

    def format(self) -> str:
        m = self.manifest
        lines = []
        if m.input_size:
            lines.append(m.input_size.format(m.target.name))
        lines.append(self.lint.format())
        if m.engine_plan_reason:
            lines.append(f"engine plan: {m.engine_plan_reason}")
        lines.append(self.quantize.format_accuracy())
        wrote = f"wrote bundle {self.out} for {m.target.name} ({len(m.files)} files, {m.build_seconds} s)"
        lines.append(wrote + (f"; next: panoedge engine {self.out}" if m.target.uses_tensorrt else ""))
        return "\n".join(lines)


def _versions() -> dict:
    from panoedge.versions import package_version as _version

    names = {"panoedge": "panoedge", "onnx": "onnx", "onnxruntime": "onnxruntime", "numpy": "numpy",
             "opencv": "cv2", "torch": "torch", "onnxslim": "onnxslim"}
    out = {"python": platform.python_version()}
    out.update({k: v for k, m in names.items() if (v := _version(m)) is not None})
    return out


def _trained_hw(model: Path) -> tuple[int, int] | None:
    """The size ``model`` was trained at (a student) or exported at (an ONNX file), if known."""
    if model.suffix.lower() == ".onnx":
        return tuple(int(v) for v in model_info(load_onnx(model), model)["hw"])
    from panoedge.models.checkpoint import trained_hw

    return trained_hw(model)


def _fp32_model(model: Path, dest: Path, hw) -> tuple[dict, dict]:
    """Put the FP32 ONNX at ``dest``; returns ``(classes dict or {}, export report)``."""
    if model.suffix.lower() == ".onnx":
        info = model_info(load_onnx(model), model)
        if tuple(info["hw"]) != tuple(hw):
            raise UsageError(f"{model}: exported at {info['hw'][0]}x{info['hw'][1]}, the bundle wants {hw[0]}x{hw[1]}; "
                             "export it again with --size or pass --size")
        shutil.copyfile(model, dest)
        return {}, {"source": str(model), "copied": True}
    from panoedge.deploy.export import export_model

    rep = export_model(model, dest, hw)
    return {"classes": rep.classes, "colors": rep.colors}, rep.to_dict()


def _classes(from_model: dict, data, num_classes: int) -> dict:
    """Class names and colours: from the checkpoint, else from the calibration dataset's meta.json."""
    if from_model.get("classes"):
        cls = from_model
    elif str(data).startswith("synth:"):
        from panoedge.synth.dataset import dataset_classes

        names, colors = dataset_classes(str(data)[len("synth:"):].split("?")[0] or "indoor")
        cls = {"classes": names, "colors": colors.tolist()}
    else:
        from panoedge.data.folder import DatasetFolder

        ds = DatasetFolder(data)
        cls = {"classes": ds.classes, "colors": ds.colors.tolist()}
    if len(cls["classes"]) != num_classes:
        raise DataError(f"{len(cls['classes'])} class names for a model with {num_classes} classes")
    if cls.get("colors") is None:
        from panoedge.data.folder import default_colors

        cls["colors"] = default_colors(num_classes).tolist()
    return {"classes": list(cls["classes"]), "colors": [list(map(int, c)) for c in cls["colors"]]}


def engine_plan(target: Target, lint_fp32: dict) -> dict:
    """The bundle's engine plan: INT8 on the DLA only where the target wants it and the lint's loadable
    count (the ``dla`` block of ``lint_fp32``, the manifest's FP32 lint) fits a DLA core; otherwise the
    GPU, with the reason (``panoedge build`` prints it)."""
    from panoedge.deploy.trt_plan import choose_dla

    choice = choose_dla("auto", target=target.to_dict(), precision=target.precision, device_cores=None, module=None,
                        lint_dla=lint_fp32.get("dla"))
    return {"int8_engine": "dla" if choice.core is not None else "gpu", "reason": choice.reason,
            "wanted": target.int8_engine}


def target_quantize_config(target: Target, quantize: QuantizeConfig | None = None) -> QuantizeConfig:
    """``quantize`` (default: :class:`QuantizeConfig`) with the INT8 activation type and TensorRT
    version the target's runtime takes: what :func:`build_bundle` calibrates with."""
    return replace(quantize or QuantizeConfig(), activations=target.int8_activations, tensorrt=target.implicit_tensorrt)


# ---------------------------------------------------------------- the steps of a build


def _check_signing_key(sign) -> None:
    """A bad key fails before the build, not after it."""
    if sign is not None:
        from panoedge.runtime.signing import load_private_key, require_crypto

        require_crypto("--sign")
        load_private_key(sign)


def _input_size(model: Path, size, tgt: Target) -> tuple[InputSize, list[str]]:
    """The bundle's size: ``--size``, else the trained (or exported) size, else the target's; and a
    warning when it differs from the trained size."""
    from panoedge.geometry import check_erp_size

    trained = _trained_hw(model)
    origin = "--size" if size else ("trained" if trained else "target")
    hw = check_erp_size(*(size or trained or tgt.input_hw), what="--size", multiple=SIZE_MULTIPLE)
    warnings = []
    if trained and tuple(hw) != tuple(trained):
        warnings.append(f"{model} was trained at {trained[0]}x{trained[1]}; at {hw[0]}x{hw[1]} expect lower accuracy "
                        "(the bundle's held-out figures are measured at its own size)")
    return InputSize(hw=tuple(hw), origin=origin, trained_hw=tuple(trained) if trained else None,
                     target_hw=tuple(tgt.input_hw)), warnings


def _rig_file(rig) -> Path | None:
    """``--rig`` as a file: a path, or a preset name (every --rig takes one)."""
    if rig is None or Path(rig).is_file():
        return rig
    from panoedge.stitch.presets import preset_names, preset_path

    found = preset_path(str(rig))
    if found is None:
        raise DataError(f"{rig}: no such rig file or preset (presets: {', '.join(preset_names())})")
    return found


def _lint_fp32(model: Path, tmp: Path, tgt: Target):
    """The FP32 model's facts and lint; ops TensorRT cannot import stop the build here."""
    fp32_proto = load_onnx(tmp / FP32)
    lint = lint_model(fp32_proto, tgt)
    if not lint.ok:
        raise DataError(f"{model}: TensorRT on {tgt.name} cannot run it:\n{lint.format()}")
    return model_info(fp32_proto, tmp / FP32), lint


def _write_side_files(tmp: Path, *, qrep: QuantizeResult, lint: BundleLint, classes: dict, info: dict, tgt: Target,
                      rig) -> None:
    write_json(tmp / "quantize.json", qrep.to_dict())
    write_json(tmp / "lint.json", lint.to_dict())
    write_json(tmp / "classes.json", classes)
    write_json(tmp / "preprocess.json", info["preprocess"])
    shutil.copyfile(tgt.path, tmp / f"target{Path(tgt.path).suffix}")
    if rig is not None:
        shutil.copyfile(rig, tmp / f"rig{Path(rig).suffix}")


def _manifest(*, model: Path, tgt: Target, info: dict, export_rep: dict, size: InputSize, warnings: list[str],
              rig, qrep: QuantizeResult, lint: BundleLint) -> dict:
    """``manifest.json`` up to its engine plan (files and build time are added last)."""
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
        "target": tgt.to_dict(),
        "depth_kind": info["depth_kind"],
        "model": {"name": info["config"].get("name"), "source": str(model), "num_classes": int(info["config"]["num_classes"]),
                  "config": info["config"], "export": export_rep},
        "input": {**info["inputs"][0]},
        "input_size": size.to_dict(),
        "warnings": warnings,
        "outputs": info["outputs"],
        "models": {"fp32": FP32, "int8": INT8},
        "preprocess": "preprocess.json",
        "classes": "classes.json",
        "rig": f"rig{Path(rig).suffix}" if rig is not None else None,
        "calibration": {**qrep.calibration.to_dict(), "trt_cache": Path(qrep.files.trt_cache).name,
                        "ranges": Path(qrep.files.ranges).name, "trt_cache_version": tgt.implicit_tensorrt},
        "accuracy": qrep.accuracy_summary(),
        "lint": {"fp32": lint.fp32.summary(), "int8": lint.int8.summary()},
    }


def _engine_script(tmp: Path, manifest: dict, tgt: Target, lint: BundleLint) -> None:
    """The engine plan in the manifest and ``build_engine.sh`` for a TensorRT target."""
    if not tgt.uses_tensorrt:
        return
    from panoedge.deploy.engine_script import engine_script

    plan = manifest["engine_plan"] = engine_plan(tgt, lint.fp32.summary())
    (tmp / "build_engine.sh").write_text(engine_script(manifest=manifest, target=tgt, use_dla=plan["int8_engine"] == "dla",
                                                       reason=plan["reason"]))
    (tmp / "build_engine.sh").chmod(SCRIPT_MODE)


def _seal(tmp: Path, manifest: dict, t0: float, sign) -> None:
    """Hash every file into the manifest, write it, and sign it when asked."""
    manifest["files"] = {rel: {"sha256": sha256_file(tmp / rel), "bytes": (tmp / rel).stat().st_size}
                         for rel in bundle_files(tmp)}
    manifest["build_seconds"] = round(time.perf_counter() - t0, BUILD_SECONDS_DECIMALS)
    write_json(tmp / MANIFEST, manifest)
    if sign is not None:
        from panoedge.runtime.signing import sign_manifest

        sign_manifest(tmp / MANIFEST, sign, tmp / SIGNATURE)


def build_bundle(model: str | Path, target: str, data: str | Path | None, out: str | Path,
                 size: tuple[int, int] | None = None, rig: str | Path | None = None,
                 quantize: QuantizeConfig | None = None, overwrite: bool = False, progress: bool = True,
                 sign: str | Path | None = None) -> BuildResult:
    """Build the bundle ``out`` for ``target`` from ``model`` (student.pt, run folder or panoedge ONNX).

    ``size`` defaults to the size the student was trained at (an ONNX file's own size), else the
    target profile's input size: a student runs best at the size it learnt, and a different one
    costs accuracy that a silent default would hide. The manifest's ``input_size`` says which size
    was used and why, and ``warnings`` says when it differs from the trained size. ``data`` (a
    dataset folder or ``synth:FAMILY``) calibrates INT8 and measures its accuracy at the bundle's
    size.
    ``sign``: a PEM Ed25519 private key; the bundle then carries ``manifest.sig``
    (:mod:`panoedge.runtime.signing`). Returns the manifest with the lint and quantize reports.
    """
    _check_signing_key(sign)
    tgt = load_target(target)
    model, out = Path(model), Path(out)
    if not model.exists():
        raise DataError(f"{model}: no such model (expected student.pt, a run folder or an .onnx file)")
    if data is None:
        raise UsageError(f"no calibration data: {tgt.name} bundles carry an INT8 model; pass --calib DATA "
                         "(a dataset folder or synth:FAMILY)")
    in_size, warnings = _input_size(model, size, tgt)
    rig = _rig_file(rig)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another folder or pass --overwrite")
    qcfg = target_quantize_config(tgt, quantize)
    t0 = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        from_model, export_rep = _fp32_model(model, tmp / FP32, in_size.hw)
        info, lint_fp32 = _lint_fp32(model, tmp, tgt)
        qrep = quantize_model(model_in=tmp / FP32, data=data, out=tmp / INT8, config=qcfg, progress=progress)
        lint = BundleLint(fp32=lint_fp32, int8=lint_model(load_onnx(tmp / INT8, check=False), tgt))
        classes = _classes(from_model, data, int(info["config"]["num_classes"]))
        _write_side_files(tmp, qrep=qrep, lint=lint, classes=classes, info=info, tgt=tgt, rig=rig)
        manifest = _manifest(model=model, tgt=tgt, info=info, export_rep=export_rep, size=in_size, warnings=warnings,
                             rig=rig, qrep=qrep, lint=lint)
        _engine_script(tmp, manifest=manifest, tgt=tgt, lint=lint)
        _seal(tmp, manifest=manifest, t0=t0, sign=sign)
    return BuildResult(manifest=BundleManifest.from_dict(read_manifest(out)), out=out, lint=lint, quantize=qrep)
