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
says why (``manifest["engine_plan"]``, printed by ``panoedge build``): the bundle stays usable,
and ``panoedge engine --dla-core 0`` still tries the DLA on request.
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

from panoedge.deploy.lint import lint_model
from panoedge.deploy.onnx_io import load_onnx, model_info
from panoedge.deploy.quantize import QuantizeConfig, quantize_model
from panoedge.deploy.targets import Target, load_target
from panoedge.errors import DataError, UsageError
from panoedge.home import atomic_dir, sha256_file, write_json
from panoedge.runtime.bundle import MANIFEST, SCHEMA, SIGNATURE, bundle_files, read_manifest, verify_bundle

FP32, INT8 = "model.fp32.onnx", "model.int8.onnx"

__all__ = ["build_bundle", "read_manifest", "verify_bundle"]


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
    return {"classes": rep["classes"], "colors": rep["colors"]}, rep


def _classes(from_model: dict, data, num_classes: int) -> dict:
    """Class names and colours: from the checkpoint, else from the calibration dataset's meta.json."""
    if from_model.get("classes"):
        cls = from_model
    elif str(data).startswith("synth:"):
        from panoedge.synth.dataset import dataset_classes

        names, colors = dataset_classes(str(data)[6:].split("?")[0] or "indoor")
        cls = {"classes": names, "colors": colors.tolist()}
    else:
        from panoedge.data.folder import DatasetFolder

        ds = DatasetFolder(data)
        cls = {"classes": ds.classes, "colors": ds.colors.tolist()}
    if len(cls["classes"]) != num_classes:
        raise DataError(f"{len(cls['classes'])} class names for a model with {num_classes} classes")
    if cls.get("colors") is None:
        from panoedge.data.folder import _default_colors

        cls["colors"] = _default_colors(num_classes).tolist()
    return {"classes": list(cls["classes"]), "colors": [list(map(int, c)) for c in cls["colors"]]}


def engine_plan(target: Target, lint_fp32: dict) -> dict:
    """The bundle's engine plan: INT8 on the DLA only where the target wants it and the lint's loadable
    count fits a DLA core; otherwise the GPU, with the reason (``panoedge build`` prints it)."""
    from panoedge.deploy.trt_plan import choose_dla

    choice = choose_dla("auto", target.to_dict(), target.precision, None, None, lint_fp32.get("dla"))
    return {"int8_engine": "dla" if choice.core is not None else "gpu", "reason": choice.reason,
            "wanted": target.int8_engine}


def target_quantize_config(target: Target, quantize: QuantizeConfig | None = None) -> QuantizeConfig:
    """``quantize`` (default: :class:`QuantizeConfig`) with the INT8 activation type and TensorRT
    version the target's runtime takes: what :func:`build_bundle` calibrates with."""
    return replace(quantize or QuantizeConfig(), activations=target.int8_activations, tensorrt=target.implicit_tensorrt)


def build_bundle(model: str | Path, target: str, data: str | Path | None, out: str | Path,
                 size: tuple[int, int] | None = None, rig: str | Path | None = None,
                 quantize: QuantizeConfig | None = None, overwrite: bool = False, progress: bool = True,
                 sign: str | Path | None = None) -> dict:
    """Build the bundle ``out`` for ``target`` from ``model`` (student.pt, run folder or panoedge ONNX).

    ``size`` defaults to the size the student was trained at (an ONNX file's own size), else the
    target profile's input size: a student runs best at the size it learnt, and a different one
    costs accuracy that a silent default would hide. The manifest's ``input_size`` says which size
    was used and why, and ``warnings`` says when it differs from the trained size. ``data`` (a
    dataset folder or ``synth:FAMILY``) calibrates INT8 and measures its accuracy at the bundle's
    size.
    ``sign``: a PEM Ed25519 private key; the bundle then carries ``manifest.sig``
    (:mod:`panoedge.runtime.signing`). Returns the manifest.
    """
    from panoedge.deploy.lint import format_lint
    from panoedge.geometry import check_erp_size

    if sign is not None:
        from panoedge.runtime.signing import load_private_key, require_crypto

        require_crypto("--sign")
        load_private_key(sign)  # a bad key fails before the build, not after it
    tgt = load_target(target)
    model, out = Path(model), Path(out)
    if not model.exists():
        raise DataError(f"{model}: no such model (expected student.pt, a run folder or an .onnx file)")
    if data is None:
        raise UsageError(f"no calibration data: {tgt.name} bundles carry an INT8 model; pass --calib DATA "
                         "(a dataset folder or synth:FAMILY)")
    trained = _trained_hw(model)
    origin = "--size" if size else ("trained" if trained else "target")
    hw = check_erp_size(*(size or trained or tgt.input_hw), what="--size", multiple=32)
    warnings = []
    if trained and tuple(hw) != tuple(trained):
        warnings.append(f"{model} was trained at {trained[0]}x{trained[1]}; at {hw[0]}x{hw[1]} expect lower accuracy "
                        "(the bundle's held-out figures are measured at its own size)")
    if rig is not None and not Path(rig).is_file():
        from panoedge.stitch.presets import preset_path

        found = preset_path(str(rig))  # every --rig takes a preset name too
        if found is None:
            from panoedge.stitch.presets import preset_names

            raise DataError(f"{rig}: no such rig file or preset (presets: {', '.join(preset_names())})")
        rig = found
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another folder or pass --overwrite")
    qcfg = target_quantize_config(tgt, quantize)
    t0 = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        from_model, export_rep = _fp32_model(model, tmp / FP32, hw)
        fp32_proto = load_onnx(tmp / FP32)
        info = model_info(fp32_proto, tmp / FP32)
        lint = {"fp32": lint_model(fp32_proto, tgt)}
        if not lint["fp32"]["ok"]:
            raise DataError(f"{model}: TensorRT on {tgt.name} cannot run it:\n{format_lint(lint['fp32'])}")
        qrep = quantize_model(tmp / FP32, data, tmp / INT8, qcfg, progress=progress)
        lint["int8"] = lint_model(load_onnx(tmp / INT8, check=False), tgt)
        write_json(tmp / "quantize.json", qrep)
        write_json(tmp / "lint.json", {"schema": "panoedge.lint/1", **lint})
        k = int(info["config"]["num_classes"])
        write_json(tmp / "classes.json", _classes(from_model, data, k))
        write_json(tmp / "preprocess.json", info["preprocess"])
        shutil.copyfile(tgt.path, tmp / f"target{Path(tgt.path).suffix}")
        if rig is not None:
            shutil.copyfile(rig, tmp / f"rig{Path(rig).suffix}")
        manifest = {
            "schema": SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
            "target": tgt.to_dict(),
            "depth_kind": info["depth_kind"],
            "model": {"name": info["config"].get("name"), "source": str(model), "num_classes": k,
                      "config": info["config"], "export": export_rep},
            "input": {**info["inputs"][0]},
            "input_size": {"hw": list(hw), "from": origin, "trained_hw": list(trained) if trained else None,
                           "target_hw": list(tgt.input_hw)},
            "warnings": warnings,
            "outputs": info["outputs"],
            "models": {"fp32": FP32, "int8": INT8},
            "preprocess": "preprocess.json",
            "classes": "classes.json",
            "rig": f"rig{Path(rig).suffix}" if rig is not None else None,
            "calibration": {**qrep["calibration"], "trt_cache": Path(qrep["files"]["trt_cache"]).name,
                            "ranges": Path(qrep["files"]["ranges"]).name,
                            "trt_cache_version": tgt.implicit_tensorrt},
            "accuracy": {key: qrep.get(key) for key in ("fp32", "int8", "budget", "excluded_nodes", "latency")},
            "lint": {key: {"counts": v["counts"], "dla": v["dla"], "ok": v["ok"]} for key, v in lint.items()},
        }
        if tgt.uses_tensorrt:
            from panoedge.deploy.engine_script import engine_script

            plan = manifest["engine_plan"] = engine_plan(tgt, lint["fp32"])
            (tmp / "build_engine.sh").write_text(engine_script(manifest, tgt, plan["int8_engine"] == "dla",
                                                               plan["reason"]))
            (tmp / "build_engine.sh").chmod(0o755)
        manifest["files"] = {rel: {"sha256": sha256_file(tmp / rel), "bytes": (tmp / rel).stat().st_size}
                             for rel in bundle_files(tmp)}
        manifest["build_seconds"] = round(time.perf_counter() - t0, 1)
        write_json(tmp / MANIFEST, manifest)
        if sign is not None:
            from panoedge.runtime.signing import sign_manifest

            sign_manifest(tmp / MANIFEST, sign, tmp / SIGNATURE)
    return read_manifest(out)
