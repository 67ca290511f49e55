"""What the demo reports: one :class:`StageResult` per stage with its figures, and :class:`DemoResult`
(``demo.json``, schema ``panoedge.demo/1``) that formats the end-of-run text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from panoedge.demo.config import SCHEMA
from panoedge.results import Record, Result, fmt_or_na, json_field

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
        lines.append(f"total {self.total_s:.1f} s; this CPU: {fmt_or_na(speed.start, '.0f')} GFLOP/s on a reference "
                     f"convolution at the start, {fmt_or_na(speed.end, '.0f')} at the end")
        d = self.figures_of("distill") or DistillFigures()
        q = self.figures_of("quantize") or QuantizeFigures()
        live = self.figures_of("live")
        distill_detail = self.stage("distill").detail if self.stage("distill") else ""
        lines += [
            "\nWhat the figures mean (mIoU: mean intersection-over-union of the classes, in %, each pixel "
            "weighted by the solid angle it covers on the sphere):",
            f"  On {fmt_or_na(d.n_images, 'd')} held-out synthetic panoramas never used in training "
            f"({d.eval_data}), at the student's size:",
            f"    {fmt_or_na(d.student_miou_area):>5}  the student ({distill_detail}), on the whole panorama",
            f"    {fmt_or_na(d.teacher_erp_miou_area):>5}  its perspective teacher run on the whole (distorted) "
            "panorama",
            f"    {fmt_or_na(d.teacher_tangent_miou_area):>5}  the teacher through tangent patches, the labels "
            "the student learnt from",
            "    (the demo trains the student briefly; `panoedge distill`'s full schedule is where it overtakes "
            "the teacher: README)",
            f"  INT8: the student exported to ONNX, {fmt_or_na(q.fp32_miou_area)} mIoU in FP32 and "
            f"{fmt_or_na(q.int8_miou_area)} in INT8 on {fmt_or_na(q.n_images, 'd')} held-out panoramas; "
            f"{fmt_or_na(q.fp32_ms)} -> {fmt_or_na(q.int8_ms)} ms per frame on ONNX Runtime's CPU provider"]
        if live is not None:
            h, w = live.erp_hw
            lines.append(f"  Live: camera frames stitched to {h}x{w} and run through the bundle at {live.fps:.1f} fps, "
                         f"latency p50 {live.latency_ms_p50:.1f} ms / p99 {live.latency_ms_p99:.1f} ms, "
                         f"{live.frames_delivered} frames, {live.dropped} dropped; mIoU "
                         f"{fmt_or_na(live.live_miou_area)} on the live stitched frames against "
                         f"{fmt_or_na(live.offline_miou_area)} on the same scenes rendered directly as ERP")
        out = Path(out)
        lines.append(f"look at: {out / 'preview.png'}, {out / 'bundle'}, {out / 'live.json'}, {out / 'demo.json'}")
        return "\n".join(lines)



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


