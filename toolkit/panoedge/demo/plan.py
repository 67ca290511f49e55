"""What each stage of the demo will do, and roughly how long it will take on this machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from panoedge.demo.config import SCHEMA, DemoConfig
from panoedge.demo.stages import bundle_hw, distill_folder, target_quantize
from panoedge.home import cache_dir, content_key, sha256_file

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
    d, run_dir = distill_folder(cfg, "builtin:" + str(folder))
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
            hw, qcfg = bundle_hw(cfg, done), target_quantize(cfg)
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
