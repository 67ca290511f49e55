"""The reports of the live pipeline: ``panoedge run`` (:class:`LiveRunResult`), ``panoedge bench
pipeline`` (:class:`PipelineBenchResult`) and ``panoedge bench soak``
(:class:`~panoedge.live.soak.SoakResult`) share one shape, :class:`PipelineReport` (CONVENTIONS.md
benchmark shape: machine, source, model, config, ``cases`` of :class:`~panoedge.live.stats.Case`,
ratios, events). :func:`make_report` builds one from a pipeline; :func:`progress_printer` is the
live status a command prints while it runs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

from panoedge.live.stats import Case, PipelineStats, format_live, limit_malloc_arenas
from panoedge.results import Record, Result, json_field

__all__ = ["AccuracyFigures", "Case", "LiveAccuracy", "LiveRunResult", "PipelineBenchResult", "PipelineReport",
           "PipelineStats", "format_live", "format_report", "limit_malloc_arenas", "make_report", "progress_printer"]


@dataclass(frozen=True)
class AccuracyFigures(Record):
    """Segmentation and depth accuracy against ground truth (:class:`~panoedge.live.accuracy.AccuracyMeter`):
    mIoU in percent (area-weighted and plain), per-class IoU, depth AbsRel, delta1 and RMSE (area-weighted)."""

    miou_area: float
    miou: float
    per_class_iou: list
    absrel_area: float
    absrel: float
    delta1: float
    rmse: float
    n_images: int


@dataclass(frozen=True)
class LiveAccuracy(Record):
    """Live accuracy of a run, and (``synth://``) the same model offline on the same frames;
    the deltas are live minus offline, points."""

    live: AccuracyFigures
    offline: AccuracyFigures | None = json_field(omit_none=True, default=None)
    miou_area_delta: float | None = json_field(omit_none=True, default=None)
    miou_delta: float | None = json_field(omit_none=True, default=None)

    def format(self) -> str:
        line = f"mIoU (area-weighted): live {self.live.miou_area:.2f}"
        if self.offline is not None:
            line += f", offline {self.offline.miou_area:.2f}, delta {self.miou_area_delta:+.2f}"
        return line + f" points over {self.live.n_images} live frames"


@dataclass(frozen=True)
class PipelineReport(Result):
    """A whole pipeline report (CONVENTIONS.md): machine, source, model, config, cases, ratios, events.

    ``machine``, ``source``, ``model``, ``rig``, ``config``, ``threads`` and each sink are the
    descriptive blocks their owners write (``describe()``); ``warmup_s`` and ``duration_s`` (what
    was asked for) are for :meth:`format` only and not in the JSON.
    """

    SCHEMA: ClassVar[str] = "panoedge.bench/1"

    machine: dict
    source: dict
    model: dict
    erp_hw: list
    rig: dict
    config: dict
    threads: dict
    cases: dict
    ratios: dict
    accuracy: LiveAccuracy | None = json_field(omit_none=True, default=None)
    sinks: list = json_field(default_factory=list)
    events: list = json_field(default_factory=list)
    warmup_s: float | None = json_field(json=False, default=None)
    duration_s: float | None = json_field(json=False, default=None)

    def table(self) -> str:
        """The short human table: one line per case, the ratios, the accuracy."""
        lines = [f"{'case':<12} {'fps':>7} {'p50 ms':>8} {'p99 ms':>8} {'frames':>7} {'dropped':>8} {'corrupt':>8}"
                 f"  per stage median ms"]
        for name, c in self.cases.items():
            lines.append(f"{name:<12} {c.fps:>7.2f} {c.latency_ms.median:>8.1f} {c.latency_ms.p99:>8.1f} "
                         f"{c.frames.delivered:>7d} {c.dropped_total:>8d} {c.frames.corrupt:>8d}  {c.stage_medians()}")
        for k, v in self.ratios.items():
            lines.append(f"{k}: {v:.2f}")
        if self.accuracy is not None:
            lines.append(self.accuracy.format())
        return "\n".join(lines)

    def format(self) -> str:
        return self.table()


@dataclass(frozen=True)
class LiveRunResult(PipelineReport):
    """``panoedge run``'s report: the run under the case ``concurrent``."""

    SCHEMA: ClassVar[str] = "panoedge.live/1"

    @property
    def case(self) -> Case:
        return self.cases["concurrent"]

    def format(self) -> str:
        m, c = self.model, self.case
        warm = f" after {self.warmup_s:g} s warm-up" if self.warmup_s is not None else ""
        head = (f"{m['name']} ({m['backend']}, {m.get('precision', '?')}) {self.erp_hw[0]}x{self.erp_hw[1]} ERP "
                f"from {self.source['uri']}; {c.duration_s:.1f} s measured{warm}"
                + (" (interrupted)" if c.interrupted else ""))
        return head + "\n" + self.table()


@dataclass(frozen=True)
class PipelineBenchResult(PipelineReport):
    """``panoedge bench pipeline``'s report: cases ``concurrent`` and ``sequential`` (missing when
    the first was interrupted), ``ratios.concurrent_speedup``."""

    @property
    def concurrent(self) -> Case:
        return self.cases["concurrent"]

    @property
    def sequential(self) -> Case | None:
        return self.cases.get("sequential")

    def format(self) -> str:
        m, mod = self.machine, self.model
        head = (f"{m['cpu']}, {m['cores']} cores; {mod['name']} {mod['backend']} {mod.get('precision', '')}, "
                f"ORT threads {mod.get('threads') or 'default'}; ERP {self.erp_hw[0]}x{self.erp_hw[1]} from "
                f"{self.source['uri']}; warm-up {self.warmup_s:g} s, {self.duration_s:g} s per case")
        return head + "\n" + self.table()


def progress_printer(quiet: bool, echo: Callable[..., None] | None = None, every_s: float = 10.0):
    """``(on_event, on_status)`` callbacks that print a run's events and live status to stderr.

    Events always; the status line (:func:`format_live`) every status call on a terminal (redrawn in
    place), every ``every_s`` seconds otherwise (a log file gets a line now and then, not a flood).
    ``quiet``: no status line. ``echo(text, err=, nl=)``: the printer (default: ``typer.echo``).
    """
    if echo is None:
        import typer

        echo = typer.echo
    tty = sys.stderr.isatty()
    last = [0.0]

    def on_event(msg: str) -> None:
        if tty and not quiet:
            echo("", err=True)
        echo(f"panoedge: {msg}", err=True)

    def on_status(snap: dict) -> None:
        if quiet:
            return
        now = time.monotonic()
        if tty:
            echo("\r" + format_live(snap)[:STATUS_LINE_CHARS], err=True, nl=False)
        elif now - last[0] >= every_s:
            last[0] = now
            echo(format_live(snap), err=True)

    return on_event, on_status


STATUS_LINE_CHARS = 160
"""The live status line is cut to this many characters on a terminal, so it redraws on one line."""


def format_report(report: PipelineReport) -> str:
    """The short human table of a pipeline report (run or bench): :meth:`PipelineReport.table`."""
    return report.table()


def make_report(result_type: type[PipelineReport], pipeline, cases: dict[str, Case], ratios: dict | None = None,
                accuracy: LiveAccuracy | None = None, **extra) -> PipelineReport:
    """A whole pipeline report of ``result_type`` (:class:`LiveRunResult`, :class:`PipelineBenchResult`,
    :class:`SoakResult`) for ``pipeline``'s run ``cases``; ``extra``: that type's own fields."""
    from dataclasses import asdict

    from panoedge.env import machine_info

    backend = pipeline.model.backend
    return result_type(
        machine=machine_info([backend] if backend else None),
        source=pipeline.source.describe(),
        model=pipeline.model.describe(),
        erp_hw=list(pipeline.erp_hw),
        rig={"name": pipeline.rig.name, "frame_hw": list(pipeline.rig.frame_hw)},
        config=asdict(pipeline.config),
        threads=_thread_settings(),
        cases=dict(cases),
        ratios=ratios or {},
        accuracy=accuracy,
        sinks=[s.describe() for s in pipeline.sinks],
        events=list(pipeline.events.items),
        **extra,
    )


def _thread_settings() -> dict:
    import os

    import cv2

    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "opencv_threads": cv2.getNumThreads(),
            "cores": os.cpu_count()}
