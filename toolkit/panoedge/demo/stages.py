"""The demo's stages: each runs (or reuses from ``$PANOEDGE_HOME``) one library call and returns its
typed result with a :class:`~panoedge.demo.result.StageResult`."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from panoedge.demo.config import SCHEMA, DemoConfig
from panoedge.demo.result import (BuildFigures, DistillFigures, LiveFigures, QuantizeFigures, StageResult,
                                  SynthFigures, TeacherFigures)
from panoedge.deploy.quantize import QuantizeConfig, QuantizeResult
from panoedge.home import atomic_dir, cache_dir, content_key, sha256_file, write_json

Log = Callable[[str], None]


def quiet(msg: str) -> None:
    pass


def synth_stage(n: int = 4, size=(256, 512), family: str = "indoor", seed: int = 0,
                progress: bool = True) -> tuple[Path, StageResult]:
    """Render (or reuse) the demo's synthetic dataset with dual-fisheye frames."""
    from panoedge.data.synth_folder import generate_dataset
    from panoedge.synth.dataset import SynthSpec

    spec = SynthSpec(n=n, seed=seed, size=tuple(size), family=family, fisheye=True)
    path = cache_dir("synth", content_key("demo", spec.__dict__))
    t0 = time.perf_counter()
    if path.exists():
        return path, StageResult(name="synth", status="cached", seconds=time.perf_counter() - t0,
                                 detail=f"{n} panoramas", path=str(path), figures=SynthFigures())
    generate_dataset(path, spec, progress=progress)
    dt = time.perf_counter() - t0
    return path, StageResult(name="synth", status="ran", seconds=dt, detail=f"{n} panoramas", path=str(path),
                             figures=SynthFigures(s_per_panorama=dt / n))


def preview(dataset: Path, out: Path) -> Path:
    """A side-by-side preview (RGB | labels | depth | dual-fisheye) of the dataset's first sample."""
    from panoedge.data.folder import DatasetFolder, sample_preview
    from panoedge.io import write_rgb

    return write_rgb(out / "preview.png", sample_preview(DatasetFolder(dataset)))


def teacher_stage(cfg: DemoConfig, progress: bool = True) -> tuple[str, StageResult]:
    """The built-in teacher's spec, trained first when ``$PANOEDGE_HOME`` has none for this budget."""
    from panoedge.distill.default import default_teacher
    from panoedge.distill.teacher_report import read_teacher_report

    t0, wall0 = time.perf_counter(), time.time()
    spec = default_teacher(cfg.family, progress, cfg.teacher)
    folder = Path(spec.split(":", 1)[1])
    # default_teacher owns the cache key; a teacher.pt written before this call was cached
    status = "ran" if (folder / "teacher.pt").stat().st_mtime >= wall0 else "cached"
    rep = read_teacher_report(folder)
    figures = TeacherFigures() if rep is None else TeacherFigures(
        params=rep.params, perspective_miou=rep.perspective and rep.perspective.miou,
        erp_miou_area=rep.erp and rep.erp.miou_area, tangent_miou_area=rep.tangent and rep.tangent.miou_area,
        s_per_step=rep.train and rep.train.s_per_step_this_run)
    h, w = cfg.teacher.view_hw
    arch = rep.arch if rep is not None else "teacher"
    return spec, StageResult(name="teacher", status=status, seconds=time.perf_counter() - t0,
                             detail=f"{arch}, {cfg.teacher.steps} steps on {h}x{w} views", path=str(folder),
                             figures=figures)


def _distill_figures(run) -> DistillFigures:
    ev = run.eval
    if ev is None:
        return DistillFigures()
    s, e, t = ev.student, ev.teacher_erp, ev.teacher_tangent
    return DistillFigures(student_miou_area=s and s.miou_area, teacher_erp_miou_area=e and e.miou_area,
                          teacher_tangent_miou_area=t and t.miou_area, student_absrel_area=s and s.absrel_area,
                          teacher_tangent_absrel_area=t and t.absrel_area, n_images=s and s.n_images,
                          eval_data=ev.data, targets=ev.targets)


def distill_folder(cfg: DemoConfig, teacher: str):
    """The distillation config with the demo's data and ``teacher`` filled in, and its cache folder."""
    dcfg = replace(cfg.distill, data=cfg.data, teacher=teacher).validate()
    return dcfg, cache_dir("demo", "distill-" + content_key(SCHEMA, "distill", dcfg.to_dict()))


def distill_stage(cfg: DemoConfig, teacher: str, progress: bool = True) -> tuple[object, StageResult]:
    """Distil the student into ``$PANOEDGE_HOME/demo/distill-<key>`` (reused when finished and evaluated,
    resumed when not) and score it on held-out panoramas; returns the
    :class:`~panoedge.distill.default.DistillRun`."""
    from panoedge.distill.default import run
    from panoedge.eval.distill_check import evaluate_distill_run, read_distill_run

    dcfg, folder = distill_folder(cfg, teacher)
    detail = f"{dcfg.student}, {dcfg.steps} steps on {dcfg.synth_n} panoramas at {dcfg.erp_hw[0]}x{dcfg.erp_hw[1]}"
    t0 = time.perf_counter()
    done = read_distill_run(folder)
    status = "cached"
    if done is None or done.eval is None:
        done = evaluate_distill_run(run(dcfg, folder, progress=progress), progress=progress)
        status = "ran"
    return done, StageResult(name="distill", status=status, seconds=time.perf_counter() - t0, detail=detail,
                             path=str(folder), figures=_distill_figures(done))


def bundle_hw(cfg: DemoConfig, run) -> tuple[int, int]:
    """The bundle's input size: the demo's ``bundle_hw``, else the size ``run`` (a distillation) trained at."""
    return tuple(cfg.bundle_hw) if cfg.bundle_hw is not None else tuple(run.report.config.erp_hw)


def target_quantize(cfg: DemoConfig) -> QuantizeConfig:
    """The demo's quantize config as :func:`build_bundle` will use it for the target."""
    from panoedge.deploy.bundle import target_quantize_config
    from panoedge.deploy.targets import load_target

    return target_quantize_config(load_target(cfg.target), cfg.quantize)


def _quantize_figures(rep: QuantizeResult) -> QuantizeFigures:
    f, i, lat = rep.fp32, rep.int8, rep.latency
    return QuantizeFigures(fp32_miou_area=f and f.miou_area, int8_miou_area=i and i.miou_area,
                           fp32_absrel_area=f and f.absrel_area, int8_absrel_area=i and i.absrel_area,
                           n_images=f and f.n_images, within_budget=rep.budget.within,
                           excluded_nodes=len(rep.excluded_nodes), fp32_ms=lat.cases.fp32.latency_ms.median,
                           int8_ms=lat.cases.int8.latency_ms.median, int8_speedup=lat.int8_speedup)


def quantize_stage(cfg: DemoConfig, run: Path, hw: tuple[int, int],
                   progress: bool = True) -> tuple[Path, QuantizeResult, StageResult]:
    """Export ``run``'s student to ONNX at ``hw`` and quantize it to INT8 for the target, in
    ``$PANOEDGE_HOME/demo/quantize-<key>``."""
    from panoedge.deploy.export import export_model
    from panoedge.deploy.quantize import quantize_model

    qcfg = target_quantize(cfg)
    key = content_key(SCHEMA, "quantize", sha256_file(run / "student.pt"), hw, asdict(qcfg), cfg.data)
    folder = cache_dir("demo", "quantize-" + key)
    detail = f"{hw[0]}x{hw[1]}, {qcfg.n} calibration images ({qcfg.method}, {qcfg.activations})"
    t0 = time.perf_counter()
    if (folder / "quantize.json").is_file():
        rep, status = QuantizeResult.load(folder / "quantize.json"), "cached"
    else:
        with atomic_dir(folder, overwrite=True) as tmp:
            export_model(run, tmp / "model.fp32.onnx", hw)
            rep = quantize_model(model_in=tmp / "model.fp32.onnx", data=cfg.data, out=tmp / "model.int8.onnx",
                                 config=qcfg, progress=progress)
            rep = rep.with_local_paths()  # paths relative to the folder: it moves into place
            write_json(tmp / "quantize.json", rep.to_dict())
        status = "ran"
    return folder, rep, StageResult(name="quantize", status=status, seconds=time.perf_counter() - t0, detail=detail,
                                    path=str(folder / "model.int8.onnx"), figures=_quantize_figures(rep))


def build_stage(cfg: DemoConfig, quantized: Path, quantize: QuantizeResult, out: Path,
                progress: bool = True) -> tuple[Path, StageResult]:
    """The target's bundle from the exported ONNX in ``quantized``, built once into the cache and copied
    to ``out``."""
    from panoedge.deploy.bundle import build_bundle
    from panoedge.runtime.manifest import inspect_bundle

    fp32 = quantized / "model.fp32.onnx"
    key = content_key(SCHEMA, "build", sha256_file(fp32), cfg.target, asdict(cfg.quantize), cfg.data)
    cached = cache_dir("demo", "bundle-" + key)
    t0 = time.perf_counter()
    if (cached / "manifest.json").is_file():
        m, status = inspect_bundle(cached), "cached"
    else:
        m = build_bundle(fp32, cfg.target, data=cfg.data, out=cached, size=quantize.input_hw, quantize=cfg.quantize,
                         overwrite=True, progress=progress).manifest
        status = "ran"
    manifest = (cached / "manifest.json").read_bytes()
    out_manifest = out / "manifest.json"
    if not (out_manifest.is_file() and out_manifest.read_bytes() == manifest):
        with atomic_dir(out, overwrite=True) as tmp:
            shutil.copytree(cached, tmp, dirs_exist_ok=True)
    t = m.target
    figures = BuildFigures(target=t.name, backend=t.backend, precision=t.precision, input=tuple(m.input.shape),
                           files=len(m.files), bytes=m.total_bytes, build_seconds=m.build_seconds,
                           # the bundle calibrates again with the same config: its INT8 model is the quantize stage's
                           int8_matches_quantize_stage=m.model_sha256("int8") == sha256_file(quantized / "model.int8.onnx"))
    return out, StageResult(name="build", status=status, seconds=time.perf_counter() - t0,
                            detail=f"{t.name} bundle ({t.backend}, {t.precision})", path=str(out), figures=figures)


def _live_figures(rep) -> LiveFigures:
    c, acc = rep.case, rep.accuracy
    return LiveFigures(fps=c.fps, latency_ms_p50=c.latency_ms.median, latency_ms_p99=c.latency_ms.p99,
                       frames_delivered=c.frames.delivered, dropped=c.dropped_total, measured_s=c.duration_s,
                       erp_hw=tuple(rep.erp_hw), live_miou_area=acc.live.miou_area if acc and acc.live else None,
                       offline_miou_area=acc.offline.miou_area if acc and acc.offline else None)


def live_stage(cfg: DemoConfig, bundle: Path, out: Path, log: Log = quiet,
               on_status: Callable[[dict], None] | None = None) -> tuple[object, StageResult]:
    """Run ``bundle`` live on the ``synth://`` source with the web viewer for ``cfg.duration_s``."""
    from panoedge.live.run import run_live
    from panoedge.live.sources import open_source

    t0 = time.perf_counter()
    source = open_source(cfg.source_uri)
    rendered = not (source.cache_path / "meta.json").is_file()
    source.prepare()  # render the camera loop now (cached), so the viewer opens on a running pipeline
    if cfg.port:  # with port 0 the viewer's own event names the port it got
        log(f"live: open http://{cfg.host}:{cfg.port}/ to watch the next {cfg.duration_s:g} s")

    def on_event(msg: str) -> None:
        if not (cfg.port and msg.startswith("web viewer: ")):
            log(f"live: {msg}")

    rep = run_live(bundle, source, [cfg.sink_uri], cfg.duration_s, cfg.warmup_s, on_event=on_event,
                   on_status=on_status)
    write_json(out / "live.json", rep.to_dict())
    frames = f"{source.n} synth:// frames {'rendered' if rendered else 'reused'}"
    if rep.case.interrupted:
        frames += ", interrupted"
    return rep, StageResult(name="live", status="ran", seconds=time.perf_counter() - t0,
                            detail=f"{cfg.duration_s:g} s on {cfg.source_uri}; {frames}", path=str(out / "live.json"),
                            figures=_live_figures(rep))
