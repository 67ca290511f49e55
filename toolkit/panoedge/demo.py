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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from panoedge.deploy.quantize import QuantizeConfig
from panoedge.distill.config import DistillConfig
from panoedge.distill.default import DEFAULT_TEACHER
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.errors import UsageError, unknown_name
from panoedge.home import atomic_dir, cache_dir, content_key, panoedge_home, sha256_file, write_json

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


@dataclass
class StageResult:
    """One stage of the demo: ``status`` is ``"ran"`` or ``"cached"``; ``path`` what it produced."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    path: str = ""
    figures: dict = field(default_factory=dict)
    estimate_s: float | None = None


Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


# -- stages ---------------------------------------------------------------------------------------

def synth_stage(n: int = 4, size=(256, 512), family: str = "indoor", seed: int = 0,
                progress: bool = True) -> tuple[Path, StageResult]:
    """Render (or reuse) the demo's synthetic dataset with dual-fisheye frames."""
    from panoedge.synth.dataset import SynthSpec, generate_dataset

    spec = SynthSpec(n=n, seed=seed, size=tuple(size), family=family, fisheye=True)
    path = cache_dir("synth", content_key("demo", spec.__dict__))
    t0 = time.perf_counter()
    if path.exists():
        return path, StageResult("synth", "cached", time.perf_counter() - t0, f"{n} panoramas", str(path))
    generate_dataset(path, spec, progress=progress)
    dt = time.perf_counter() - t0
    return path, StageResult("synth", "ran", dt, f"{n} panoramas", str(path), {"s_per_panorama": dt / n})


def preview(dataset: Path, out: Path) -> Path:
    """A side-by-side preview (RGB | labels | depth | dual-fisheye) of the dataset's first sample."""
    import cv2

    from panoedge.data import DatasetFolder
    from panoedge.io import colorize_depth, colorize_labels, write_rgb

    ds = DatasetFolder(dataset)
    s = ds.load(ds.stems[0])
    h, w = s["rgb"].shape[:2]
    tiles = [s["rgb"], colorize_labels(s["semantic"], ds.colors), colorize_depth(s["depth"])]
    if "fisheye" in s:
        tiles.append(cv2.resize(s["fisheye"], (w, h), interpolation=cv2.INTER_AREA))
    grid = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:] + [np.zeros_like(tiles[0])] * (4 - len(tiles)), axis=1)], axis=0)
    return write_rgb(out / "preview.png", grid)


def teacher_stage(cfg: DemoConfig, progress: bool = True) -> tuple[str, StageResult]:
    """The built-in teacher's spec, trained first when ``$PANOEDGE_HOME`` has none for this budget."""
    import json

    from panoedge.distill.default import default_teacher

    t0, wall0 = time.perf_counter(), time.time()
    spec = default_teacher(cfg.family, progress, cfg.teacher)
    folder = Path(spec.split(":", 1)[1])
    # default_teacher owns the cache key; a teacher.pt written before this call was cached
    status = "ran" if (folder / "teacher.pt").stat().st_mtime >= wall0 else "cached"
    report = folder / "report.json"
    rep = json.loads(report.read_text()) if report.is_file() else {}
    p, e, t = (rep.get(k) or {} for k in ("perspective", "erp", "tangent"))
    figures = {"params": rep.get("params"), "perspective_miou": p.get("miou"), "erp_miou_area": e.get("miou_area"),
               "tangent_miou_area": t.get("miou_area"), "s_per_step": (rep.get("train") or {}).get("s_per_step_this_run")}
    h, w = cfg.teacher.view_hw
    return spec, StageResult("teacher", status, time.perf_counter() - t0,
                             f"{rep.get('arch', 'teacher')}, {cfg.teacher.steps} steps on {h}x{w} views", str(folder), figures)


def _distill_figures(rep: dict) -> dict:
    ev = rep.get("eval") or {}
    s, e, t = ev.get("student") or {}, ev.get("teacher_erp") or {}, ev.get("teacher_tangent") or {}
    return {"student_miou_area": s.get("miou_area"), "teacher_erp_miou_area": e.get("miou_area"),
            "teacher_tangent_miou_area": t.get("miou_area"), "student_absrel_area": s.get("absrel_area"),
            "teacher_tangent_absrel_area": t.get("absrel_area"), "n_images": s.get("n_images"),
            "eval_data": ev.get("data"), "targets": ev.get("targets")}


def distill_stage(cfg: DemoConfig, teacher: str, progress: bool = True) -> tuple[Path, StageResult]:
    """Distil the student into ``$PANOEDGE_HOME/demo/distill-<key>`` (reused when finished, resumed when not)."""
    import json

    from panoedge.distill.default import run

    dcfg = replace(cfg.distill, data=cfg.data, teacher=teacher).validate()
    folder = cache_dir("demo", "distill-" + content_key(SCHEMA, "distill", dcfg.to_dict()))
    detail = f"{dcfg.student}, {dcfg.steps} steps on {dcfg.synth_n} panoramas at {dcfg.erp_hw[0]}x{dcfg.erp_hw[1]}"
    t0 = time.perf_counter()
    report = folder / "report.json"
    rep = json.loads(report.read_text()) if report.is_file() and (folder / "student.pt").is_file() else {}
    status = "cached"
    if "eval" not in rep:
        rep = run(dcfg, folder, progress=progress)
        status = "ran"
    return folder, StageResult("distill", status, time.perf_counter() - t0, detail, str(folder), _distill_figures(rep))


def _bundle_hw(cfg: DemoConfig, run: Path) -> tuple[int, int]:
    if cfg.bundle_hw is not None:
        return tuple(cfg.bundle_hw)
    import json

    return tuple(json.loads((run / "config.json").read_text())["erp_hw"])


def _target_quantize(cfg: DemoConfig) -> QuantizeConfig:
    """The demo's quantize config as :func:`build_bundle` will use it for the target."""
    from panoedge.deploy.bundle import target_quantize_config
    from panoedge.deploy.targets import load_target

    return target_quantize_config(load_target(cfg.target), cfg.quantize)


def _quantize_figures(rep: dict) -> dict:
    f, i, b = rep.get("fp32") or {}, rep.get("int8") or {}, rep.get("budget") or {}
    lat = rep.get("latency") or {}
    return {"fp32_miou_area": f.get("miou_area"), "int8_miou_area": i.get("miou_area"),
            "fp32_absrel_area": f.get("absrel_area"), "int8_absrel_area": i.get("absrel_area"),
            "n_images": f.get("n_images"), "within_budget": b.get("within"),
            "excluded_nodes": len(rep.get("excluded_nodes") or []),
            "fp32_ms": lat.get("cases", {}).get("fp32", {}).get("latency_ms", {}).get("median"),
            "int8_ms": lat.get("cases", {}).get("int8", {}).get("latency_ms", {}).get("median"),
            "int8_speedup": lat.get("int8_speedup")}


def quantize_stage(cfg: DemoConfig, run: Path, progress: bool = True) -> tuple[Path, StageResult]:
    """Export ``run``'s student to ONNX and quantize it to INT8 for the target, in ``$PANOEDGE_HOME/demo/quantize-<key>``."""
    import json

    from panoedge.deploy.export import export_model
    from panoedge.deploy.quantize import quantize_model

    hw, qcfg = _bundle_hw(cfg, run), _target_quantize(cfg)
    key = content_key(SCHEMA, "quantize", sha256_file(run / "student.pt"), hw, asdict(qcfg), cfg.data)
    folder = cache_dir("demo", "quantize-" + key)
    detail = f"{hw[0]}x{hw[1]}, {qcfg.n} calibration images ({qcfg.method}, {qcfg.activations})"
    t0 = time.perf_counter()
    status = "cached"
    if not (folder / "quantize.json").is_file():
        with atomic_dir(folder, overwrite=True) as tmp:
            export_model(run, tmp / "model.fp32.onnx", hw)
            rep = quantize_model(tmp / "model.fp32.onnx", cfg.data, tmp / "model.int8.onnx", qcfg, progress=progress)
            rep["model"] = "model.fp32.onnx"  # paths relative to the folder: it moves into place
            rep["files"] = {k: Path(v).name for k, v in rep["files"].items()}
            write_json(tmp / "quantize.json", rep)
        status = "ran"
    rep = json.loads((folder / "quantize.json").read_text())
    return folder, StageResult("quantize", status, time.perf_counter() - t0, detail, str(folder / "model.int8.onnx"),
                               _quantize_figures(rep))


def build_stage(cfg: DemoConfig, quantized: Path, out: Path, progress: bool = True) -> tuple[Path, StageResult]:
    """The target's bundle from the exported ONNX, built once into the cache and copied to ``out``."""
    import json

    from panoedge.deploy.bundle import build_bundle

    fp32 = quantized / "model.fp32.onnx"
    hw = tuple(json.loads((quantized / "quantize.json").read_text())["input_hw"])
    key = content_key(SCHEMA, "build", sha256_file(fp32), cfg.target, asdict(cfg.quantize), cfg.data)
    cached = cache_dir("demo", "bundle-" + key)
    t0 = time.perf_counter()
    status = "cached"
    if not (cached / "manifest.json").is_file():
        build_bundle(fp32, cfg.target, cfg.data, cached, hw, quantize=cfg.quantize, overwrite=True, progress=progress)
        status = "ran"
    manifest = (cached / "manifest.json").read_bytes()
    out_manifest = out / "manifest.json"
    if not (out_manifest.is_file() and out_manifest.read_bytes() == manifest):
        with atomic_dir(out, overwrite=True) as tmp:
            shutil.copytree(cached, tmp, dirs_exist_ok=True)
    m = json.loads(manifest)
    figures = {"target": m["target"]["name"], "backend": m["target"]["backend"], "precision": m["target"]["precision"],
               "input": m["input"]["shape"], "files": len(m["files"]),
               "bytes": sum(f["bytes"] for f in m["files"].values()), "build_seconds": m.get("build_seconds"),
               # the bundle calibrates again with the same config: its INT8 model is the quantize stage's
               "int8_matches_quantize_stage": m["files"][m["models"]["int8"]]["sha256"]
               == sha256_file(quantized / "model.int8.onnx")}
    return out, StageResult("build", status, time.perf_counter() - t0,
                            f"{m['target']['name']} bundle ({m['target']['backend']}, {m['target']['precision']})",
                            str(out), figures)


def _live_figures(rep: dict) -> dict:
    c = rep["cases"]["concurrent"]
    acc = rep.get("accuracy") or {}
    return {"fps": c["fps"], "latency_ms_p50": c["latency_ms"]["median"], "latency_ms_p99": c["latency_ms"]["p99"],
            "frames_delivered": c["frames"]["delivered"], "dropped": c["dropped_total"],
            "measured_s": c["duration_s"], "erp_hw": rep["erp_hw"],
            "live_miou_area": (acc.get("live") or {}).get("miou_area"),
            "offline_miou_area": (acc.get("offline") or {}).get("miou_area")}


def live_stage(cfg: DemoConfig, bundle: Path, out: Path, log: Log = _quiet,
               on_status: Callable[[dict], None] | None = None) -> tuple[dict, StageResult]:
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

    rep = run_live(bundle, source, [cfg.sink_uri], cfg.duration_s, cfg.warmup_s, on_event=on_event, on_status=on_status)
    write_json(out / "live.json", rep)
    frames = f"{source.n} synth:// frames {'rendered' if rendered else 'reused'}"
    if rep["cases"]["concurrent"]["interrupted"]:
        frames += ", interrupted"
    return rep, StageResult("live", "ran", time.perf_counter() - t0, f"{cfg.duration_s:g} s on {cfg.source_uri}; {frames}",
                            str(out / "live.json"), _live_figures(rep))


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
    import json

    from panoedge.distill.default import default_teacher_folder
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
    d = replace(cfg.distill, data=cfg.data, teacher="builtin:" + str(folder)).validate()
    run_dir = cache_dir("demo", "distill-" + content_key(SCHEMA, "distill", d.to_dict()))
    rep = run_dir / "report.json"
    distill_cached = teacher_cached and rep.is_file() and (run_dir / "student.pt").is_file() \
        and "eval" in json.loads(rep.read_text())
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
            hw, qcfg = _bundle_hw(cfg, run_dir), _target_quantize(cfg)
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


def _record(out: Path, cfg: DemoConfig, results: list[StageResult], t0: float) -> dict:
    from panoedge.env import machine_info

    figures = {r.name: r.figures for r in results}
    rec = {"schema": SCHEMA, "machine": machine_info(), "config": _jsonable(cfg),
           "stages": [asdict(r) for r in results], "figures": figures,
           "total_s": time.perf_counter() - t0, "complete": [r.name for r in results] == list(STAGES)}
    write_json(out / "demo.json", rec)
    return rec


def _jsonable(cfg: DemoConfig) -> dict:
    d = asdict(cfg)
    d["distill"] = cfg.distill.to_dict()
    return d


def run_demo(out: str | Path, config: DemoConfig | None = None, log: Log = _quiet, progress: bool = True,
             on_status: Callable[[dict], None] | None = None) -> dict:
    """Run every stage (module docstring) into ``out``; returns the ``demo.json`` record.

    ``log`` receives one line per stage and the live viewer's address; ``on_status`` the live
    pipeline's figures as it runs (:func:`panoedge.live.run.run_live`). ``demo.json`` is rewritten after every stage, so an
    interrupted demo still shows how far it got.
    """
    cfg = (config or DemoConfig()).validate()
    _check_port(cfg.host, int(cfg.port))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: list[StageResult] = []

    def done(res: StageResult) -> dict:
        res.estimate_s = round(plans[res.name].estimate_s, 1)
        results.append(res)
        log(f"{res.name:<9} {res.status:<7} {res.seconds:7.1f} s  {res.detail}")
        return _record(out, cfg, results, t0)

    from panoedge.env import conv_gflops

    gflops = conv_gflops()
    plans = {p.name: p for p in plan_stages(cfg, gflops)}
    todo = [p for p in plans.values() if not p.cached]
    log(f"panoedge demo -> {out} (cache: {panoedge_home()})")
    log(f"this CPU: {gflops:.0f} GFLOP/s on a reference convolution; {len(todo)} of {len(STAGES)} stages to run "
        f"({', '.join(p.name for p in todo) or 'none'}), {format_duration(sum(p.estimate_s for p in plans.values()))} "
        "in all on this machine")
    speeds = {"start": round(gflops, 1)}

    def announce(name: str) -> None:
        p = plans[name]
        if p.cached:
            log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}: cached, reusing it ({p.what})")
        else:
            log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}: {p.what}; {format_duration(p.estimate_s)}")

    announce("synth")
    path, res = synth_stage(cfg.preview_n, cfg.preview_hw, cfg.family, progress=progress)
    res.path = str(preview(path, out))
    done(res)
    announce("teacher")
    teacher, res = teacher_stage(cfg, progress)
    done(res)
    announce("distill")
    run, res = distill_stage(cfg, teacher, progress)
    done(res)
    if not plans["distill"].cached:  # the later stages' keys depend on the student: plan them again
        plans.update({p.name: p for p in plan_stages(cfg, gflops) if p.name in ("quantize", "build", "live")})
    announce("quantize")
    quantized, res = quantize_stage(cfg, run, progress)
    done(res)
    announce("build")
    bundle, res = build_stage(cfg, quantized, out / "bundle", progress)
    done(res)
    announce("live")
    _, res = live_stage(cfg, bundle, out, log, on_status)
    speeds["end"] = round(conv_gflops(), 1)
    rec = done(res)
    rec["machine_conv_gflops"] = speeds
    write_json(out / "demo.json", rec)
    return rec
