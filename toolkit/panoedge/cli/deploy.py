"""``panoedge export|quantize|build|engine|targets|bundle|bench model``: from a student to a device bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app, bench_app
from panoedge.cli.common import JsonOpt, emit_json, legacy, positive, preflight, preflight_model
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


def _qcfg(method, n, n_eval, budget_miou, budget_absrel, activations, no_eval, threads) -> QuantizeConfig:
    given = {"method": method, "n": n, "n_eval": n_eval, "budget_miou": budget_miou, "budget_absrel": budget_absrel,
             "activations": activations, "threads": threads}
    from dataclasses import replace

    return replace(_Q, evaluate=not no_eval, **{k: v for k, v in given.items() if v is not None})


def _print_accuracy(rep: dict) -> None:
    cal = rep["calibration"]
    typer.echo(f"calibration: {cal['n_images']} images ({cal['method']}, {cal['activations']} activations), "
               f"sha256 {cal['sha256'][:16]}")
    if rep.get("fp32"):
        f, i, b = rep["fp32"], rep["int8"], rep["budget"]
        typer.echo(f"{'':<6} {'mIoU area':>10} {'mIoU':>7} {'AbsRel area':>12} {'AbsRel':>8}   ({f['n_images']} held-out images)")
        for name, m in (("FP32", f), ("INT8", i)):
            typer.echo(f"{name:<6} {m.get('miou_area', float('nan')):>10.2f} {m.get('miou', float('nan')):>7.2f} "
                       f"{m.get('absrel_area', float('nan')):>12.4f} {m.get('absrel', float('nan')):>8.4f}")
        drop = "n/a" if b["miou_drop"] is None else f"{b['miou_drop']:.2f}"
        rel = "n/a" if b["absrel_rel_increase"] is None else f"{100 * b['absrel_rel_increase']:+.2f}%"
        typer.echo(f"budget: mIoU drop {drop} <= {b['miou_points']} points, "
                   f"AbsRel {rel} <= +{100 * b['absrel_relative']:.1f}%: "
                   + ("within" if b["within"] else
                      "NOT within, even with every scanned compute layer in float (data movement stays INT8)"))
    else:
        typer.echo("accuracy: not evaluated (--no-eval)")
    if rep["excluded_nodes"]:
        typer.echo(f"kept in float ({len(rep['excluded_nodes'])}, most sensitive first; "
                   f"{len(rep['exclusion_trials'])} trials):")
        for e in rep["excluded_nodes"]:
            typer.echo(f"  {e['node']:<44} {e['reason']}")
    else:
        typer.echo("kept in float: none")
    lat = rep["latency"]
    typer.echo(f"ORT CPU latency: FP32 {lat['cases']['fp32']['latency_ms']['median']:.1f} ms, "
               f"INT8 {lat['cases']['int8']['latency_ms']['median']:.1f} ms (x{lat['int8_speedup']:.2f})")


@app.command()
def export(
    model: Path = typer.Argument(..., help="student.pt or a run folder holding one."),
    out: Path = typer.Option(..., "--out", help="ONNX file to write."),
    size: Optional[str] = typer.Option(None, "--size", help="Input HxW (default: the size the student was trained at)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch axis symbolic."),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxslim."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Export a student to plain ONNX: batch-norm folded, checked, simplified, verified against torch."""
    preflight("panoedge export", "train", ("torch", "onnx"))
    from panoedge.deploy.export import export_model

    rep = export_model(model, out, _hw(size), opset=opset, dynamic_batch=dynamic_batch, simplify_graph=not no_simplify)
    s = rep["simplify"]
    typer.echo(f"wrote {rep['out']} ({rep['name']}, {rep['hw'][0]}x{rep['hw'][1]}, opset {opset}, "
               f"ops: {', '.join(rep['op_types'])})")
    typer.echo(f"simplified: {s['tool']} {s.get('version', '')} {s.get('nodes_before')} -> {s.get('nodes_after')} nodes"
               if s["tool"] else f"simplified: no ({s['note']})")
    for name, v in rep["verify"]["outputs"].items():
        typer.echo(f"verify {name}: ORT vs torch max |diff| {v['max_abs_diff']:.2e} (bound {v['bound']:.1e}) "
                   f"on {rep['verify']['n_frames']} real frames")
    emit_json(json_path, rep)


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
    n = legacy(calib_images, n, "--n", "--calib-images")
    n_eval = legacy(eval_images, n_eval, "--n-eval", "--eval-images")
    from panoedge.deploy.quantize import quantize_model

    rep = quantize_model(model, _calib(calib, rig, every, rig_only_stitches=True), out, _qcfg(method, n, n_eval, budget_miou, budget_absrel, activations,
                                                  no_eval, threads))
    typer.echo(f"wrote {rep['files']['int8']} (QDQ: {rep['qdq']['int8_convs']} int8 convs, per-channel weights "
               f"{rep['qdq']['per_channel_weights']}), {rep['files']['trt_cache']}")
    _print_accuracy(rep)
    emit_json(json_path, rep)


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
    n = legacy(calib_images, n, "--n", "--calib-images")
    n_eval = legacy(eval_images, n_eval, "--n-eval", "--eval-images")
    from panoedge.deploy.bundle import build_bundle
    from panoedge.deploy.lint import format_lint

    qcfg = _qcfg(method, n, n_eval, budget_miou, budget_absrel, None, no_eval, None)
    m = build_bundle(model, target, _calib(calib, rig, every), out, _hw(size), rig, qcfg, overwrite=overwrite, sign=sign)
    import json

    size_from = {"trained": "the size the student was trained at", "--size": "--size",
                 "target": "the target profile's size"}
    isz = m.get("input_size") or {}
    if isz:
        typer.echo(f"input {isz['hw'][0]}x{isz['hw'][1]} ({size_from.get(isz['from'], isz['from'])}; "
                   f"{m['target']['name']} profile: {isz['target_hw'][0]}x{isz['target_hw'][1]})")
    for w in m.get("warnings") or []:
        typer.echo(f"warning: {w}", err=True)
    lint = json.loads((out / "lint.json").read_text())
    typer.echo(format_lint(lint["fp32"]))
    if m.get("engine_plan"):
        typer.echo(f"engine plan: {m['engine_plan']['reason']}")
    _print_accuracy(json.loads((out / "quantize.json").read_text()))
    typer.echo(f"wrote bundle {out} for {m['target']['name']} ({len(m['files'])} files, {m['build_seconds']} s); "
               f"next: panoedge engine {out}" if m["target"]["backend"] in ("trt", "ort-trt") else
               f"wrote bundle {out} for {m['target']['name']} ({len(m['files'])} files, {m['build_seconds']} s)")
    emit_json(json_path, {"schema": "panoedge.build/1", "manifest": m})


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
    rep = build_engine(bundle, precision, core, trt_version, cc, force)
    typer.echo(f"plan: {rep['describe']}; {rep['dla']['reason']}")
    for w in rep["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    if rep["built"] or rep["cached"]:
        typer.echo(f"{'built' if rep['built'] else 'up to date'}: {rep['engine']} ({rep['plan']['mode']}, "
                   f"TensorRT {rep['device']['tensorrt']}, sm {rep['device']['compute_capability']}"
                   f"{', DLA core ' + str(rep['plan']['dla_core']) if rep['plan']['dla_core'] is not None else ''})")
    else:
        typer.echo(f"{rep['reason']}:")
        typer.echo(rep["command"])
        for alt in rep.get("alternatives", []):
            typer.echo(f"alternative: {alt['describe']}:")
            typer.echo(alt["command"])
    emit_json(json_path, rep)


@app.command()
def targets(json_path: Optional[Path] = JsonOpt) -> None:
    """List the target profiles: GPU, DLA cores, TensorRT, default precision, input size and backend."""
    from panoedge.deploy.targets import list_targets, load_target

    rows = [load_target(name) for name in list_targets()]
    typer.echo(f"{'name':<18} {'kind':<7} {'backend':<8} {'prec':<5} {'input':<9} {'sm':<7} {'DLA':>3} {'TensorRT':<9} description")
    for t in rows:
        typer.echo(f"{t.name:<18} {t.kind:<7} {t.backend:<8} {t.precision:<5} {t.input_hw[0]}x{t.input_hw[1]:<5} "
                   f"{t.compute_capability:<7} {t.dla_cores:>3} {t.tensorrt or '-':<9} {t.description}")
    emit_json(json_path, {"schema": "panoedge.targets/1", "targets": [t.to_dict() for t in rows]})


TrustedKeyOpt = typer.Option(None, "--trusted-key", envvar="PANOEDGE_TRUSTED_KEY", dir_okay=False,
                             help="Ed25519 public key (PEM) the bundle's signature must verify against.")


@bundle_app.command("verify")
def bundle_verify(bundle: Path = typer.Argument(..., help="Bundle folder."),
                  trusted_key: Optional[Path] = TrustedKeyOpt, json_path: Optional[Path] = JsonOpt) -> None:
    """Check the manifest, its paths and the sha256 of every file (and the signature); a changed bundle fails."""
    from panoedge.errors import DataError
    from panoedge.runtime.bundle import verify_bundle

    rep = verify_bundle(bundle, trusted_key=trusted_key)
    emit_json(json_path, {"schema": "panoedge.bundle_verify/1", **rep})
    if not rep["ok"]:
        raise DataError(f"{bundle}: {len(rep['problems'])} problem(s): " + "; ".join(rep["problems"]))
    typer.echo(f"{bundle}: ok ({rep['n_files']} files match the manifest; signature {rep['signature']})")


@bundle_app.command("keygen")
def bundle_keygen(out: Path = typer.Option(..., "--out", help="Folder for panoedge-signing.key and .pub."),
                  overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing pair.")) -> None:
    """Make an Ed25519 key pair for signing bundles (keep the .key private; give robots the .pub)."""
    from panoedge.runtime.signing import generate_keypair

    priv, pub = generate_keypair(out, overwrite=overwrite)
    typer.echo(f"wrote {priv} (private, mode 0600) and {pub} (give this to `panoedge run --trusted-key`)")


@bundle_app.command("sign")
def bundle_sign(bundle: Path = typer.Argument(..., help="Bundle folder."),
                key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM).")) -> None:
    """Sign an existing bundle after checking it (writes manifest.sig)."""
    from panoedge.runtime.bundle import sign_bundle

    kid = sign_bundle(bundle, key)
    typer.echo(f"{bundle}: signed with key {kid}")


@bundle_app.command("info")
def bundle_info(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Print what a bundle holds: target, model, I/O, accuracy and files."""
    from panoedge.runtime.bundle import read_manifest

    m = read_manifest(bundle)
    acc = m.get("accuracy") or {}
    typer.echo(f"target   {m['target']['name']} ({m['target']['backend']}, {m['target']['precision']})")
    typer.echo(f"model    {m['model']['name']} ({m['model']['num_classes']} classes) from {m['model']['source']}")
    typer.echo(f"input    {m['input']['name']} {m['input']['dtype']}{m['input']['shape']}")
    typer.echo("outputs  " + ", ".join(f"{o['name']} {o['dtype']}{o['shape']}" for o in m["outputs"]))
    if acc.get("fp32"):
        typer.echo(f"accuracy FP32 mIoU {acc['fp32'].get('miou_area', float('nan')):.2f} / INT8 "
                   f"{acc['int8'].get('miou_area', float('nan')):.2f} (area-weighted); "
                   f"{len(acc.get('excluded_nodes') or [])} layers kept in float")
    for rel, f in m["files"].items():
        typer.echo(f"  {rel:<32} {f['bytes']:>10,} B  {f['sha256'][:12]}")


@bench_app.command("model")
def bench_model_cmd(
    subject: Path = typer.Argument(..., help="Bundle folder, FP32 ONNX (INT8 sibling X.int8.onnx), or student.pt (torch)."),
    backend: str = typer.Option("ort-cpu", "--backend", help="ort-cpu, ort-cuda, ort-trt, trt or torch."),
    int8: Optional[Path] = typer.Option(None, "--int8", help="INT8 ONNX to compare with (ONNX subject)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads (default: the backend's)."),
    size: Optional[str] = typer.Option(None, "--size", help="Input HxW (torch backend)."),
    warmup_runs: int = typer.Option(5, "--warmup-runs", help="Untimed runs per case."),
    warmup_old: Optional[int] = typer.Option(None, "--warmup", hidden=True),  # old spelling of --warmup-runs
    repeat: int = typer.Option(50, "--repeat", help="Timed runs per case."),
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
    from panoedge.timing import format_cases

    rep = bench_model(subject, backend, threads, warmup, repeat, int8, _hw(size))
    m = rep["machine"]
    typer.echo(f"{m['cpu']}, {m['cores']} cores; {backend} (onnxruntime {m['versions'].get('onnxruntime')}), "
               f"threads {threads or 'default'}; input {rep['input']['shape']}; warm-up {warmup}, repeat {repeat}")
    typer.echo(format_cases(rep["cases"]))
    for k, v in rep["ratios"].items():
        typer.echo(f"{k}: {v:.2f}")
    if rep["note"]:
        typer.echo(rep["note"])
    emit_json(json_path, rep)
