"""``panoedge demo``: the whole chain on the built-in default, stage by stage.

:func:`run_demo` chains the library functions behind the commands, each stage reusing what an
earlier run cached under ``$PANOEDGE_HOME``:

1. ``synth``: a few panoramas of the synthetic world with dual-fisheye frames, and ``OUT/preview.png``;
2. ``teacher``: the built-in perspective teacher (:func:`panoedge.distill.default.default_teacher`,
   the same cache entry ``panoedge distill`` uses);
3. ``distill``: a ``pano-small`` student on a short schedule (:data:`DEMO_DISTILL`) with the
   held-out evaluation of student and teacher (:func:`panoedge.distill.default.run`), in a run
   folder under ``$PANOEDGE_HOME/demo/`` keyed by the resolved config: a finished run is reused,
   an interrupted one resumes from its checkpoint;
4. ``quantize``: the student exported to ONNX and quantized to INT8 for the target
   (:func:`panoedge.deploy.quantize.quantize_model`, with its accuracy budget and latency);
5. ``build``: the target's bundle from that ONNX (:func:`panoedge.deploy.bundle.build_bundle`),
   cached and copied to ``OUT/bundle``;
6. ``live``: the bundle on ``synth://`` with the web viewer for ``duration_s``
   (:func:`panoedge.live.run.run_live`); its figures and the full report (``OUT/live.json``).

``OUT/demo.json`` (schema ``panoedge.demo/1``) holds every stage's status and seconds and the
figures. :class:`DemoConfig` holds every parameter (tests use tiny ones).
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from panoedge.deploy.quantize import QuantizeConfig, QuantizeResult
from panoedge.distill.config import DistillConfig
from panoedge.distill.default import DEFAULT_TEACHER
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.errors import UsageError, unknown_name
from panoedge.home import atomic_dir, cache_dir, content_key, panoedge_home, sha256_file, write_json
from panoedge.results import Record, Result, json_field

SCHEMA = "panoedge.demo/1"
STAGES = ("synth", "teacher", "distill", "quantize", "build", "live")
FAMILIES = ("indoor", "outdoor")
"""Families every stage supports (the live ``synth://`` source has no ``mixed`` world)."""

DEMO_TEACHER = replace(DEFAULT_TEACHER, view_hw=(64, 96))
"""The demo's built-in teacher: ``panoedge distill``'s budget on 64x96 views instead of 96x128.

Each step costs about 0.6x, which brings a cold demo near 10 minutes on a 2-core CPU (README).
A student distilled with the full schedule from this teacher scored 30.1 area-weighted mIoU
against 30.4 from the 96x128 teacher (within the run-to-run noise); through tangent patches
the two teachers score the same. ``panoedge distill`` keeps the 96x128 teacher."""
DEMO_DISTILL = replace(DistillConfig(), steps=200, generations=2, synth_n=32, eval_n=16, ckpt_every=50)
"""The demo's short distillation schedule (``panoedge distill``'s default: 2000 steps on 192 panoramas)."""
DEMO_QUANTIZE = replace(QuantizeConfig(), n=32, n_eval=8)
"""The demo's INT8 calibration: fewer calibration and held-out images than ``panoedge quantize``."""


@dataclass(frozen=True)
class DemoConfig:
    """Every parameter of the demo; the defaults are ``panoedge demo``'s.

    ``preview_*``: the synthetic panoramas previewed; ``teacher``: the built-in teacher's budget
    (family and data filled in); ``distill`` and ``quantize``: the student's schedule and INT8
    calibration (``data`` and ``family`` filled in); ``bundle_hw``: the bundle's input size
    (None: the size the student was trained at); ``source``: the live ``synth://`` URI with
    ``{family}`` filled in; ``duration_s``/``warmup_s``: live seconds measured and left out;
    the web viewer listens on ``host:port`` (port 0 picks a free one).
    """

    family: str = "indoor"
    preview_n: int = 4
    preview_hw: tuple[int, int] = (256, 512)
    teacher: TeacherTrainConfig = DEMO_TEACHER
    distill: DistillConfig = DEMO_DISTILL
    quantize: QuantizeConfig = DEMO_QUANTIZE
    target: str = "cpu"
    bundle_hw: tuple[int, int] | None = None
    source: str = "synth://{family}?fps=30&n=8&size=1024x2048"
    duration_s: float = 30.0
    warmup_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8080

    def validate(self) -> "DemoConfig":
        if self.family not in FAMILIES:
            raise unknown_name("family", self.family, FAMILIES)
        if not self.duration_s > 0:
            raise UsageError(f"--duration {self.duration_s}: live seconds must be > 0")
        if not self.warmup_s >= 0:
            raise UsageError(f"warm-up {self.warmup_s} s: must be >= 0")
        if not 0 <= int(self.port) < 65536:
            raise UsageError(f"--port {self.port}: expected 0 to 65535")
        return self

    @property
    def data(self) -> str:
        return f"synth:{self.family}"

    @property
    def source_uri(self) -> str:
        return self.source.format(family=self.family)

    @property
    def sink_uri(self) -> str:
        return f"web://{self.host}:{int(self.port)}"


def quick_config(**overrides) -> DemoConfig:
    """``panoedge demo --quick``: every stage on toy sizes, in about a minute on 2 CPU cores.

    For checking that an install works end to end (CI runs it in a fresh virtual environment made
    with README's install line); its figures mean nothing. Cached apart from the full demo's.
    """
    teacher = TeacherTrainConfig(n_views=6, view_hw=(64, 64), width_mult=0.125, steps=4, batch=2, lr=2e-3,
                                 warmup=2, ckpt_every=2, n_eval=2, erp_hw=(32, 64))
    distill = DistillConfig(student="pano-nano", synth_n=4, synth_hw=(32, 64), erp_hw=(32, 64), n_patches=12,
                            fov_deg=120.0, steps=4, generations=2, batch=2, warmup=2, ckpt_every=2, log_every=1,
                            eval_n=2, bismap_components=2, depthg_points=16)
    quantize = QuantizeConfig(n=2, n_eval=2, latency_repeat=2, scan_images=1, budget_miou=100.0, budget_absrel=100.0)
    base = dict(preview_n=1, preview_hw=(64, 128), teacher=teacher, distill=distill, quantize=quantize,
                source="synth://{family}?fps=10&n=2&size=128x256&gt=64x128", duration_s=3.0, warmup_s=0.5)
    return DemoConfig(**{**base, **overrides})


@dataclass(frozen=True)
class StageResult(Record):
    """One stage of the demo: ``status`` is ``"ran"`` or ``"cached"``; ``path`` what it produced;
    ``figures`` the stage's numbers (one of the ``*Figures`` records below)."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    path: str = ""
    figures: Record | None = None
    estimate_s: float | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "figures": self.figures.to_dict() if self.figures is not None else {}}


@dataclass(frozen=True)
class DemoResult(Result):
    """``demo.json``: every stage so far, its figures, the total and the machine's convolution speed."""

    SCHEMA = SCHEMA
    machine: dict
    config: dict
    stages: tuple[StageResult, ...]
    total_s: float
    complete: bool
    machine_conv_gflops: "ConvSpeed | None" = json_field(default=None, omit_none=True)

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def figures_of(self, name: str):
        s = self.stage(name)
        return s.figures if s is not None else None

    def to_dict(self) -> dict:
        d = {"schema": SCHEMA, "machine": self.machine, "config": self.config,
             "stages": [s.to_dict() for s in self.stages],
             "figures": {s.name: (s.figures.to_dict() if s.figures is not None else {}) for s in self.stages},
             "total_s": self.total_s, "complete": self.complete}
        if self.machine_conv_gflops is not None:
            d["machine_conv_gflops"] = self.machine_conv_gflops.to_dict()
        return d

    def format(self, out: Path | str = "") -> str:
        """The end-of-run table and what the figures mean (``out``: the demo's folder, for the file list)."""
        lines = [f"\n{'stage':<9} {'status':<7} {'time':>8} {'expected':>9}  detail"]
        for s in self.stages:
            est = "" if s.estimate_s is None else f"{s.estimate_s:7.0f} s"
            lines.append(f"{s.name:<9} {s.status:<7} {s.seconds:6.1f} s {est:>9}  {s.detail}")
        speed = self.machine_conv_gflops or ConvSpeed()
        lines.append(f"total {self.total_s:.1f} s; this CPU: {_f(speed.start, '.0f')} GFLOP/s on a reference "
                     f"convolution at the start, {_f(speed.end, '.0f')} at the end")
        d = self.figures_of("distill") or DistillFigures()
        q = self.figures_of("quantize") or QuantizeFigures()
        live = self.figures_of("live")
        distill_detail = self.stage("distill").detail if self.stage("distill") else ""
        lines += [
            "\nWhat the figures mean (mIoU: mean intersection-over-union of the classes, in %, each pixel "
            "weighted by the solid angle it covers on the sphere):",
            f"  On {_f(d.n_images, 'd')} held-out synthetic panoramas never used in training "
            f"({d.eval_data}), at the student's size:",
            f"    {_f(d.student_miou_area):>5}  the student ({distill_detail}), on the whole panorama",
            f"    {_f(d.teacher_erp_miou_area):>5}  its perspective teacher run on the whole (distorted) panorama",
            f"    {_f(d.teacher_tangent_miou_area):>5}  the teacher through tangent patches, the labels "
            "the student learnt from",
            "    (the demo trains the student briefly; `panoedge distill`'s full schedule is where it overtakes "
            "the teacher: README)",
            f"  INT8: the student exported to ONNX, {_f(q.fp32_miou_area)} mIoU in FP32 and "
            f"{_f(q.int8_miou_area)} in INT8 on {_f(q.n_images, 'd')} held-out panoramas; "
            f"{_f(q.fp32_ms)} -> {_f(q.int8_ms)} ms per frame on ONNX Runtime's CPU provider"]
        if live is not None:
            h, w = live.erp_hw
            lines.append(f"  Live: camera frames stitched to {h}x{w} and run through the bundle at {live.fps:.1f} fps, "
                         f"latency p50 {live.latency_ms_p50:.1f} ms / p99 {live.latency_ms_p99:.1f} ms, "
                         f"{live.frames_delivered} frames, {live.dropped} dropped; mIoU "
                         f"{_f(live.live_miou_area)} on the live stitched frames against "
                         f"{_f(live.offline_miou_area)} on the same scenes rendered directly as ERP")
        out = Path(out)
        lines.append(f"look at: {out / 'preview.png'}, {out / 'bundle'}, {out / 'live.json'}, {out / 'demo.json'}")
        return "\n".join(lines)


def _f(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


@dataclass(frozen=True)
class ConvSpeed(Record):
    """The reference-convolution speed (GFLOP/s) at the start and the end of the demo."""

    start: float | None = None
    end: float | None = None


# -- each stage's figures -------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthFigures(Record):
    s_per_panorama: float | None = json_field(default=None, omit_none=True)


@dataclass(frozen=True)
class TeacherFigures(Record):
    params: int | None = None
    perspective_miou: float | None = None
    erp_miou_area: float | None = None
    tangent_miou_area: float | None = None
    s_per_step: float | None = None


@dataclass(frozen=True)
class DistillFigures(Record):
    student_miou_area: float | None = None
    teacher_erp_miou_area: float | None = None
    teacher_tangent_miou_area: float | None = None
    student_absrel_area: float | None = None
    teacher_tangent_absrel_area: float | None = None
    n_images: int | None = None
    eval_data: str | None = None
    targets: dict | None = None


@dataclass(frozen=True)
class QuantizeFigures(Record):
    fp32_miou_area: float | None = None
    int8_miou_area: float | None = None
    fp32_absrel_area: float | None = None
    int8_absrel_area: float | None = None
    n_images: int | None = None
    within_budget: bool | None = None
    excluded_nodes: int = 0
    fp32_ms: float | None = None
    int8_ms: float | None = None
    int8_speedup: float | None = None


@dataclass(frozen=True)
class BuildFigures(Record):
    target: str
    backend: str
    precision: str
    input: tuple
    files: int
    bytes: int
    build_seconds: float | None
    int8_matches_quantize_stage: bool


@dataclass(frozen=True)
class LiveFigures(Record):
    fps: float
    latency_ms_p50: float
    latency_ms_p99: float
    frames_delivered: int
    dropped: int
    measured_s: float
    erp_hw: tuple
    live_miou_area: float | None = None
    offline_miou_area: float | None = None


Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


# -- stages ---------------------------------------------------------------------------------------

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


def _distill_folder(cfg: DemoConfig, teacher: str):
    """The distillation config with the demo's data and ``teacher`` filled in, and its cache folder."""
    dcfg = replace(cfg.distill, data=cfg.data, teacher=teacher).validate()
    return dcfg, cache_dir("demo", "distill-" + content_key(SCHEMA, "distill", dcfg.to_dict()))


def distill_stage(cfg: DemoConfig, teacher: str, progress: bool = True) -> tuple[object, StageResult]:
    """Distil the student into ``$PANOEDGE_HOME/demo/distill-<key>`` (reused when finished and evaluated,
    resumed when not) and score it on held-out panoramas; returns the
    :class:`~panoedge.distill.default.DistillRun`."""
    from panoedge.distill.default import run
    from panoedge.eval.distill_check import evaluate_distill_run, read_distill_run

    dcfg, folder = _distill_folder(cfg, teacher)
    detail = f"{dcfg.student}, {dcfg.steps} steps on {dcfg.synth_n} panoramas at {dcfg.erp_hw[0]}x{dcfg.erp_hw[1]}"
    t0 = time.perf_counter()
    done = read_distill_run(folder)
    status = "cached"
    if done is None or done.eval is None:
        done = evaluate_distill_run(run(dcfg, folder, progress=progress), progress=progress)
        status = "ran"
    return done, StageResult(name="distill", status=status, seconds=time.perf_counter() - t0, detail=detail,
                             path=str(folder), figures=_distill_figures(done))


def _bundle_hw(cfg: DemoConfig, run) -> tuple[int, int]:
    """The bundle's input size: the demo's ``bundle_hw``, else the size ``run`` (a distillation) trained at."""
    return tuple(cfg.bundle_hw) if cfg.bundle_hw is not None else tuple(run.report.config.erp_hw)


def _target_quantize(cfg: DemoConfig) -> QuantizeConfig:
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

    qcfg = _target_quantize(cfg)
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


def live_stage(cfg: DemoConfig, bundle: Path, out: Path, log: Log = _quiet,
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


# -- what each stage will do, and roughly how long ---------------------------------------------------

REFERENCE_GFLOPS = 148.0
"""The reference-convolution speed (:func:`panoedge.env.conv_gflops`) of the 2-core CPU machine on
which the per-unit costs below were measured; estimates scale by ``REFERENCE_GFLOPS / measured``."""
TEACHER_STEP_S = 0.93
"""Seconds per built-in teacher step at batch 12 on 96x128 views, full width (README: cold runs)."""
TEACHER_FIXED_PIXEL_SHARE = 0.2
"""Part of a teacher step that does not shrink with the view size (data, optimiser): 64x96 views cost
0.6x of 96x128 ones, not 0.5x."""
TEACHER_VIEWS_S = 0.12
"""Seconds to render one 96x128 training or held-out view, and to score the held-out ERPs, per view."""
DISTILL_STEP_S = 0.30
"""Seconds per student step at batch 8 on 128x256 panoramas (pano-small)."""
DISTILL_PER_PANORAMA_S = 0.7
"""Rendering a 256x512 training panorama and labelling it through tangent patches."""
EVAL_PER_PANORAMA_S = 1.2
"""Scoring student, teacher on ERP and teacher through patches on one held-out panorama."""
QUANTIZE_PER_IMAGE_S = 0.35
"""Calibration and held-out evaluation, per image, plus export and the latency check (QUANTIZE_FIXED_S)."""
QUANTIZE_FIXED_S = 8.0
LIVE_FRAME_RENDER_S = 5.3
"""Rendering one 1024x2048 frame of the live synth:// loop (cached after the first demo)."""
CACHED_S = 2.0
"""What a stage found in the cache costs (reading its report)."""


@dataclass(frozen=True)
class StagePlan:
    """What a stage is about to do: ``cached`` (reuse) or not, in words, and its estimated seconds."""

    name: str
    cached: bool
    what: str
    estimate_s: float


def _speed(gflops: float | None) -> float:
    return REFERENCE_GFLOPS / gflops if gflops and gflops > 0 else 1.0


def plan_stages(cfg: DemoConfig, gflops: float | None = None) -> list[StagePlan]:
    """Every stage's :class:`StagePlan` on this machine (``gflops``: its reference-convolution speed).

    A stage counts as cached when its output is in ``$PANOEDGE_HOME`` now; the stages after one
    that will run are planned as running (their cache keys depend on its output).
    """
    from panoedge.distill.default import default_teacher_folder
    from panoedge.eval.distill_check import read_distill_run
    from panoedge.synth.dataset import SynthSpec

    k = _speed(gflops)
    plans = []
    spec = SynthSpec(n=cfg.preview_n, seed=0, size=tuple(cfg.preview_hw), family=cfg.family, fisheye=True)
    syn = cache_dir("synth", content_key("demo", spec.__dict__)).exists()
    h, w = cfg.preview_hw
    plans.append(StagePlan("synth", syn, f"render {cfg.preview_n} panoramas of the synthetic world at {h}x{w} with "
                           "dual-fisheye frames", CACHED_S if syn else k * cfg.preview_n * 1.5 * (h * w) / (256 * 512)))
    t = cfg.teacher
    folder = default_teacher_folder(cfg.family, t)
    teacher_cached = (folder / "teacher.pt").is_file()
    vh, vw = t.view_hw
    pix = (vh * vw) / (96 * 128)
    step = TEACHER_STEP_S * (t.batch / 12) * (TEACHER_FIXED_PIXEL_SHARE + (1 - TEACHER_FIXED_PIXEL_SHARE) * pix) * t.width_mult ** 2
    est = t.steps * step + (t.n_views + t.n_eval) * TEACHER_VIEWS_S * pix
    plans.append(StagePlan("teacher", teacher_cached, f"train the built-in perspective teacher ({t.steps} steps of "
                           f"{t.batch} views at {vh}x{vw}; once, then cached)", CACHED_S if teacher_cached else k * est))
    d, run_dir = _distill_folder(cfg, "builtin:" + str(folder))
    done = read_distill_run(run_dir) if teacher_cached else None
    distill_cached = done is not None and done.eval is not None
    eh, ew = d.erp_hw
    est = (d.steps * DISTILL_STEP_S * (d.batch / 8) * (eh * ew) / (128 * 256) + d.synth_n * DISTILL_PER_PANORAMA_S
           + d.eval_n * EVAL_PER_PANORAMA_S)
    plans.append(StagePlan("distill", distill_cached, f"distil {d.student} from the teacher ({d.steps} steps on "
                           f"{d.synth_n} panoramas at {eh}x{ew}), then score it and the teacher on {d.eval_n} "
                           "held-out panoramas", CACHED_S if distill_cached else k * est))
    q = cfg.quantize
    q_cached = b_cached = False
    if distill_cached:
        try:
            hw, qcfg = _bundle_hw(cfg, done), _target_quantize(cfg)
            key = content_key(SCHEMA, "quantize", sha256_file(run_dir / "student.pt"), hw, asdict(qcfg), cfg.data)
            qdir = cache_dir("demo", "quantize-" + key)
            q_cached = (qdir / "quantize.json").is_file()
            if q_cached:
                bkey = content_key(SCHEMA, "build", sha256_file(qdir / "model.fp32.onnx"), cfg.target,
                                   asdict(cfg.quantize), cfg.data)
                b_cached = (cache_dir("demo", "bundle-" + bkey) / "manifest.json").is_file()
        except (OSError, KeyError, ValueError):
            q_cached = b_cached = False
    qest = QUANTIZE_FIXED_S + (q.n + q.n_eval) * QUANTIZE_PER_IMAGE_S
    plans.append(StagePlan("quantize", q_cached, f"export to ONNX and quantize to INT8 ({q.n} calibration images, "
                           f"{q.n_eval} held out for the accuracy budget)", CACHED_S if q_cached else k * qest))
    plans.append(StagePlan("build", b_cached, f"build the {cfg.target} bundle (hashed, self-contained)",
                           CACHED_S if b_cached else k * qest))
    from panoedge.live.sources import open_source

    src = open_source(cfg.source_uri)
    frames_cached = (src.cache_path / "meta.json").is_file()
    render = 0.0 if frames_cached else k * src.n * LIVE_FRAME_RENDER_S
    plans.append(StagePlan("live", False, f"run the bundle live on {cfg.source_uri} for {cfg.duration_s:g} s with "
                           f"the web viewer" + ("" if frames_cached else f" (first rendering its {src.n} camera frames)"),
                           cfg.duration_s + cfg.warmup_s + 5.0 + render))
    return plans


def format_duration(seconds: float) -> str:
    """``'about 40 s'`` / ``'about 7 min'`` / ``'about 1 h 5 min'``: estimates, said as such."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"about {max(5, int(round(s / 5.0)) * 5)} s"
    m = int(round(s / 60.0))
    return f"about {m} min" if m < 60 else f"about {m // 60} h {m % 60} min"


# -- the chain ------------------------------------------------------------------------------------

def _check_port(host: str, port: int) -> None:
    """A ``UsageError`` now, before minutes of training, if the viewer's port is taken."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port} for the web viewer ({e.strerror}); pass --port N") from None


def _record(out: Path, cfg: DemoConfig, stages: list[StageResult], t0: float,
            speeds: ConvSpeed | None = None) -> DemoResult:
    from panoedge.env import machine_info

    rec = DemoResult(machine=machine_info(), config=_jsonable(cfg), stages=tuple(stages),
                     total_s=time.perf_counter() - t0, complete=[r.name for r in stages] == list(STAGES),
                     machine_conv_gflops=speeds)
    write_json(out / "demo.json", rec.to_dict())
    return rec


def _jsonable(cfg: DemoConfig) -> dict:
    d = asdict(cfg)
    d["distill"] = cfg.distill.to_dict()
    return d


def run_demo(out: str | Path, config: DemoConfig | None = None, log: Log = _quiet, progress: bool = True,
             on_status: Callable[[dict], None] | None = None) -> DemoResult:
    """Run every stage (module docstring) into ``out``; returns the ``demo.json`` record.

    ``log`` receives one line per stage and the live viewer's address; ``on_status`` the live
    pipeline's figures as it runs (:func:`panoedge.live.run.run_live`). ``demo.json`` is rewritten after every
    stage, so an interrupted demo still shows how far it got.
    """
    cfg = (config or DemoConfig()).validate()
    _check_port(cfg.host, int(cfg.port))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stages: list[StageResult] = []

    def done(res: StageResult, speeds: ConvSpeed | None = None) -> DemoResult:
        res = replace(res, estimate_s=round(plans[res.name].estimate_s, 1))
        stages.append(res)
        log(f"{res.name:<9} {res.status:<7} {res.seconds:7.1f} s  {res.detail}")
        return _record(out, cfg, stages, t0, speeds)

    from panoedge.env import conv_gflops

    gflops = conv_gflops()
    plans = {p.name: p for p in plan_stages(cfg, gflops)}
    todo = [p for p in plans.values() if not p.cached]
    log(f"panoedge demo -> {out} (cache: {panoedge_home()})")
    log(f"this CPU: {gflops:.0f} GFLOP/s on a reference convolution; {len(todo)} of {len(STAGES)} stages to run "
        f"({', '.join(p.name for p in todo) or 'none'}), {format_duration(sum(p.estimate_s for p in plans.values()))} "
        "in all on this machine")

    def announce(name: str) -> None:
        p = plans[name]
        if p.cached:
            log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}: cached, reusing it ({p.what})")
        else:
            log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}: {p.what}; {format_duration(p.estimate_s)}")

    announce("synth")
    path, res = synth_stage(cfg.preview_n, cfg.preview_hw, cfg.family, progress=progress)
    done(replace(res, path=str(preview(path, out))))
    announce("teacher")
    teacher, res = teacher_stage(cfg, progress)
    done(res)
    announce("distill")
    run, res = distill_stage(cfg, teacher, progress)
    done(res)
    if res.status == "ran":  # the later stages' keys depend on the new student: plan them again
        plans.update({p.name: p for p in plan_stages(cfg, gflops) if p.name in ("quantize", "build", "live")})
    announce("quantize")
    quantized, quantize, res = quantize_stage(cfg, run.out, _bundle_hw(cfg, run), progress)
    done(res)
    announce("build")
    bundle, res = build_stage(cfg, quantized, quantize, out / "bundle", progress)
    done(res)
    announce("live")
    _, res = live_stage(cfg, bundle, out, log, on_status)
    return done(res, speeds=ConvSpeed(start=round(gflops, 1), end=round(conv_gflops(), 1)))
