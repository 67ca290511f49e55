"""The demo's parameters: :class:`DemoConfig` (``panoedge demo``'s defaults) and :func:`quick_config`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from panoedge.deploy.quantize import QuantizeConfig
from panoedge.distill.config import DistillConfig
from panoedge.distill.default import DEFAULT_TEACHER
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.errors import UsageError, unknown_name

SCHEMA = "panoedge.demo/1"
STAGES = ("synth", "teacher", "distill", "quantize", "build", "live")
FAMILIES = ("indoor", "outdoor")
"""Families every stage supports (the live ``synth://`` source has no ``mixed`` world)."""

DEMO_TEACHER = replace(DEFAULT_TEACHER, view_hw=(64, 96))
"""The demo's built-in teacher: ``panoedge distill``'s budget on 64x96 views instead of 96x128.

Why: the teacher is the demo's longest stage, and a step on the smaller views costs little more
than half as much, while the labels it gives through tangent patches are as good for the student
(compare with ``panoedge distill --teacher builtin:FOLDER`` on each teacher; the README gives the
figures). ``panoedge distill`` keeps the 96x128 teacher."""
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
