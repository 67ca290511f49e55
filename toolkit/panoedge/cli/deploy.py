"""``panoedge export|quantize|build|engine|targets|bundle|bench model``: from a student to a device bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app, bench_app
from panoedge.cli.common import JsonOpt, emit_json, legacy, preflight, preflight_model
from panoedge.deploy.bench import DEFAULT_REPEAT, DEFAULT_WARMUP
from panoedge.deploy.export import DEFAULT_OPSET
from panoedge.deploy.quantize import QuantizeConfig

bundle_app = typer.Typer(rich_markup_mode=None, help="Inspect and check bundles written by `panoedge build`.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")

_Q = QuantizeConfig()  # the one place quantization defaults live


def _hw(size: Optional[str]):
    from panoedge.geometry import parse_hw

    return parse_hw(size, "--size") if size else None


def _calib(calib: Optional[str], rig: Optional[str], every: int, rig_only_stitches: bool = False) -> Optional[str]:
    """``--calib`` as quantization reads it: a dual-fisheye recording (a video, or a folder of frames
    that are not 2:1 panoramas) is stitched with ``--rig`` first (once, cached); anything else as is.
    ``rig_only_stitches``: ``--rig`` has no other use in the command (quantize), so a ``--rig`` with
    panoramas as ``--calib`` is a mistake worth saying; ``build`` also ships the rig in the bundle."""
    from panoedge.errors import UsageError

    if every < 1:
        raise UsageError(f"--every {every}: expected 1 or more (stitch every Nth frame)")
    if calib is None or rig is None:
        if every != 1:
            raise UsageError(f"--every {every}: picks frames of a dual-fisheye recording given as --calib; give --rig too")
        return calib
    from panoedge.stitch.run import VIDEO_EXTS

    path = Path(calib).expanduser()
    recording = path.is_file() and path.suffix.lower() in VIDEO_EXTS
    if path.is_dir() and not (path / "meta.json").is_file():
        from panoedge.image_guard import image_size

        first = next((p for p in sorted(path.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")), None)
        if first is not None:
            w, h = image_size(first)
            recording = w != 2 * h
    if not recording:
        if rig_only_stitches:
            raise UsageError(f"--rig {rig}: stitches a dual-fisheye recording given as --calib, and {calib} is "
                             "not one (a video, or a folder of frames that are not 2:1 panoramas)")
        return calib
    from panoedge.data.rig_source import stitched_folder

    return str(stitched_folder(str(path), rig, every, progress=True))


def _qcfg(*, method, n, n_eval, budget_miou, budget_absrel, activations, no_eval, threads) -> QuantizeConfig:
    given = {"method": method, "n": n, "n_eval": n_eval, "budget_miou": budget_miou, "budget_absrel": budget_absrel,
             "activations": activations, "threads": threads}
    from dataclasses import replace

    return replace(_Q, evaluate=not no_eval, **{k: v for k, v in given.items() if v is not None})


@app.command()
def export(
    model: Path = typer.Argument(..., help="student.pt or a run folder holding one."),
    out: Path = typer.Option(..., "--out", help="ONNX file to write."),
    size: Optional[str] = typer.Option(None, "--size", help="Input HxW (default: the size the student was trained at)."),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help="ONNX opset."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch axis symbolic."),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxslim."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Export a student to plain ONNX: batch-norm folded, checked, simplified, verified against torch."""
    preflight("panoedge export", "train", ("torch", "onnx"))
    from panoedge.deploy.export import export_model

    result = export_model(model, out, hw=_hw(size), opset=opset, dynamic_batch=dynamic_batch,
                          simplify_graph=not no_simplify)
    typer.echo(result.format())
    emit_json(json_path, result)


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="FP32 ONNX from `panoedge export`."),
    calib: str = typer.Option(..., "--calib", help="Calibration DATA: a dataset folder or synth:FAMILY."),
    out: Path = typer.Option(..., "--out", help="INT8 QDQ ONNX to write (cache and ranges go beside it)."),
    method: Optional[str] = typer.Option(None, "--method", help=f"entropy, minmax or percentile (default {_Q.method})."),
    calib_images: Optional[int] = typer.Option(None, "--calib-images", help=f"Calibration images (default {_Q.n})."),
    eval_images: Optional[int] = typer.Option(None, "--eval-images", help=f"Held-out evaluation images (default {_Q.n_eval})."),
    n: Optional[int] = typer.Option(None, "--n", hidden=True),  # old spelling of --calib-images
    n_eval: Optional[int] = typer.Option(None, "--n-eval", hidden=True),  # old spelling of --eval-images
    rig: Optional[str] = typer.Option(None, "--rig", help="With a dual-fisheye video or folder of frames as --calib: "
                                      "the rig that stitches it (preset name or file)."),
    every: int = typer.Option(1, "--every", help="With --rig: stitch every Nth frame of the recording."),
    budget_miou: Optional[float] = typer.Option(
        None, "--budget-miou", help=f"Max area-weighted mIoU drop, points (default {_Q.budget_miou})."),
    budget_absrel: Optional[float] = typer.Option(
        None, "--budget-absrel", help=f"Max relative AbsRel increase (default {_Q.budget_absrel})."),
    activations: Optional[str] = typer.Option(
        None, "--activations", help=f"int8 (TensorRT + ORT) or uint8 (ORT CPU fast path); default {_Q.activations}."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the held-out accuracy budget (no ground truth)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """INT8 QDQ with per-channel weights, calibrated on real images, within a measured accuracy budget."""
    preflight("panoedge quantize", "train", ("onnx",))
    n = legacy(calib_images, n, old="--n", new="--calib-images")
    n_eval = legacy(eval_images, n_eval, old="--n-eval", new="--eval-images")
    from panoedge.deploy.quantize import quantize_model

    config = _qcfg(method=method, n=n, n_eval=n_eval, budget_miou=budget_miou, budget_absrel=budget_absrel,
                   activations=activations, no_eval=no_eval, threads=threads)
    result = quantize_model(model_in=model, data=_calib(calib, rig, every, rig_only_stitches=True), out=out,
                            config=config)
    typer.echo(result.format())
    emit_json(json_path, result)


@app.command()
def build(
    model: Path = typer.Argument(..., help="student.pt, a run folder, or an ONNX file from `panoedge export`."),
    target: str = typer.Option(..., "--target", help="Target profile name (see `panoedge targets`) or a profile file."),
    calib: Optional[str] = typer.Option(None, "--calib", help="Calibration DATA (a dataset folder or synth:FAMILY); "
                                        "required for INT8 targets (all shipped ones but fp32 profiles)."),
    out: Path = typer.Option(..., "--out", help="Bundle folder to write."),
    size: Optional[str] = typer.Option(None, "--size", help="Input HxW (default: the size the student was trained at, "
                                       "else the target profile's)."),
    rig: Optional[str] = typer.Option(None, "--rig", help="Camera rig to ship in the bundle: a preset name (panoedge rig list) "
                                      "or a rig file; it also stitches --calib when that is a dual-fisheye recording."),
    every: int = typer.Option(1, "--every", help="With --rig and a recording as --calib: stitch every Nth frame."),
    method: Optional[str] = typer.Option(None, "--method", help=f"Calibration method (default {_Q.method})."),
    calib_images: Optional[int] = typer.Option(None, "--calib-images", help=f"Calibration images (default {_Q.n})."),
    eval_images: Optional[int] = typer.Option(None, "--eval-images", help=f"Held-out evaluation images (default {_Q.n_eval})."),
    n: Optional[int] = typer.Option(None, "--n", hidden=True),  # old spelling of --calib-images
    n_eval: Optional[int] = typer.Option(None, "--n-eval", hidden=True),  # old spelling of --eval-images
    budget_miou: Optional[float] = typer.Option(
        None, "--budget-miou", help=f"Max mIoU drop, points (default {_Q.budget_miou})."),
    budget_absrel: Optional[float] = typer.Option(
        None, "--budget-absrel", help=f"Max relative AbsRel increase (default {_Q.budget_absrel})."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the held-out accuracy budget."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    sign: Optional[Path] = typer.Option(None, "--sign", help="Sign the bundle with this Ed25519 private key (PEM; `panoedge bundle keygen`)."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Build a self-contained bundle for a target: FP32 + INT8 ONNX, calibration cache, manifest with hashes."""
    preflight("panoedge build", "train", ("onnx",))
    preflight_model("panoedge build", str(model))
    n = legacy(calib_images, n, old="--n", new="--calib-images")
    n_eval = legacy(eval_images, n_eval, old="--n-eval", new="--eval-images")
    from panoedge.deploy.bundle import build_bundle

    qcfg = _qcfg(method=method, n=n, n_eval=n_eval, budget_miou=budget_miou, budget_absrel=budget_absrel,
                 activations=None, no_eval=no_eval, threads=None)
    result = build_bundle(model, target, data=_calib(calib, rig, every), out=out, size=_hw(size), rig=rig,
                          quantize=qcfg, overwrite=overwrite, sign=sign)
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(result.format())
    emit_json(json_path, result)


@app.command()
def engine(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    precision: Optional[str] = typer.Option(None, "--precision", help="int8, fp16 or fp32 (default: the target's)."),
    dla_core: Optional[str] = typer.Option("auto", "--dla-core", help="auto, none, or a core number."),
    trt_version: Optional[str] = typer.Option(
        None, "--trt-version", help="TensorRT version for the printed command (no TensorRT here)."),
    cc: Optional[str] = typer.Option(
        None, "--cc", help="GPU compute capability for the printed command (no TensorRT here)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if an engine for these inputs exists."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Build the TensorRT engine on the device; without TensorRT, print the exact trtexec command."""
    from panoedge.deploy.engine import build_engine

    from panoedge.errors import UsageError

    if str(dla_core).lower() not in ("auto", "none") and not str(dla_core).isdigit():
        raise UsageError(f"--dla-core {dla_core!r}: expected auto, none or a core number")
    core = None if str(dla_core).lower() == "none" else ("auto" if dla_core == "auto" else int(dla_core))
    result = build_engine(bundle, precision=precision, dla_core=core, tensorrt=trt_version, cc=cc, force=force)
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(result.format())
    emit_json(json_path, result)


@app.command()
def targets(json_path: Optional[Path] = JsonOpt) -> None:
    """List the target profiles: GPU, DLA cores, TensorRT, default precision, input size and backend."""
    from panoedge.deploy.targets import all_targets

    result = all_targets()
    typer.echo(result.format())
    emit_json(json_path, result)


TrustedKeyOpt = typer.Option(None, "--trusted-key", envvar="PANOEDGE_TRUSTED_KEY", dir_okay=False,
                             help="Ed25519 public key (PEM) the bundle's signature must verify against.")


@bundle_app.command("verify")
def bundle_verify(bundle: Path = typer.Argument(..., help="Bundle folder."),
                  trusted_key: Optional[Path] = TrustedKeyOpt, json_path: Optional[Path] = JsonOpt) -> None:
    """Check the manifest, its paths and the sha256 of every file (and the signature); a changed bundle fails."""
    from panoedge.errors import DataError
    from panoedge.runtime.bundle import verify_bundle

    result = verify_bundle(bundle, trusted_key=trusted_key)
    emit_json(json_path, result)
    if not result.ok:
        raise DataError(result.format())
    typer.echo(result.format())


@bundle_app.command("keygen")
def bundle_keygen(out: Path = typer.Option(..., "--out", help="Folder for panoedge-signing.key and .pub."),
                  overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing pair.")) -> None:
    """Make an Ed25519 key pair for signing bundles (keep the .key private; give robots the .pub)."""
    from panoedge.runtime.signing import generate_keypair

    typer.echo(generate_keypair(out, overwrite=overwrite).format())


@bundle_app.command("sign")
def bundle_sign(bundle: Path = typer.Argument(..., help="Bundle folder."),
                key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM).")) -> None:
    """Sign an existing bundle after checking it (writes manifest.sig)."""
    from panoedge.runtime.bundle import sign_bundle

    typer.echo(sign_bundle(bundle, key).format())


@bundle_app.command("info")
def bundle_info(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Print what a bundle holds: target, model, I/O, accuracy and files."""
    from panoedge.runtime.manifest import inspect_bundle

    typer.echo(inspect_bundle(bundle).format())


@bench_app.command("model")
def bench_model_cmd(
    subject: Path = typer.Argument(..., help="Bundle folder, FP32 ONNX (INT8 sibling X.int8.onnx), or student.pt (torch)."),
    backend: str = typer.Option("ort-cpu", "--backend", help="ort-cpu, ort-cuda, ort-trt, trt or torch."),
    int8: Optional[Path] = typer.Option(None, "--int8", help="INT8 ONNX to compare with (ONNX subject)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads (default: the backend's)."),
    size: Optional[str] = typer.Option(None, "--size", help="Input HxW (torch backend)."),
    warmup_runs: int = typer.Option(DEFAULT_WARMUP, "--warmup-runs", help="Untimed runs per case."),
    warmup_old: Optional[int] = typer.Option(None, "--warmup", hidden=True),  # old spelling of --warmup-runs
    repeat: int = typer.Option(DEFAULT_REPEAT, "--repeat", help="Timed runs per case."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Latency min/median/p99 and throughput of FP32 and INT8 side by side, and INT8's speed-up."""
    if backend == "torch":
        preflight("panoedge bench model --backend torch", "train", ("torch",))
    warmup = warmup_old if warmup_old is not None else warmup_runs
    if warmup < 0 or repeat < 1:
        from panoedge.errors import UsageError

        raise UsageError(f"--warmup-runs {warmup} / --repeat {repeat}: expected >= 0 untimed and >= 1 timed runs")
    from panoedge.deploy.bench import bench_model

    result = bench_model(subject, backend=backend, threads=threads, warmup=warmup, repeat=repeat, int8=int8,
                         hw=_hw(size))
    typer.echo(result.format())
    emit_json(json_path, result)
