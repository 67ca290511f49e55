"""``panoedge bench pipeline``: the live pipeline's fps, latency and per-stage split, concurrent
against the same stages run one after another, in one run.

Both cases use the same source, stitcher, model and sinks: the concurrent case first, then
the sequential one, each after its own warm-up. The default source replays the synthetic
1024x2048 dual-fisheye loop as fast as the pipeline takes frames (``fps=0``), so the figures
are throughput; give a paced source (``fps=30``) to measure a camera's real rate instead
(late frames are then dropped and counted). ``ratios.concurrent_speedup`` is
``fps(concurrent) / fps(sequential)``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from panoedge.live.pipeline import PipelineConfig
from panoedge.live.report import PipelineBenchResult, make_report
from panoedge.live.run import build_pipeline, sigterm_as_interrupt

SCHEMA = PipelineBenchResult.SCHEMA
DEFAULT_SOURCE = "synth://indoor?size=1024x2048&fps=0"

__all__ = ["DEFAULT_SOURCE", "SCHEMA", "bench_pipeline"]


def bench_pipeline(model, source: str = DEFAULT_SOURCE, sinks=(), duration_s: float = 10.0, warmup_s: float = 2.0,
                   *, rig: str | Path | None = None, backend: str | None = None, precision: str | None = None,
                   threads: int | None = None, config: PipelineConfig | None = None, on_event=None,
                   on_status=None) -> PipelineBenchResult:
    """Measure ``concurrent`` and ``sequential`` cases for ``duration_s`` each; the report (``panoedge.bench/1``)."""
    config = config or PipelineConfig(accuracy=False)
    pipe = build_pipeline(model, source, sinks, rig, backend=backend, precision=precision, threads=threads,
                          config=config, on_event=on_event, on_status=on_status)
    cases = {}
    with sigterm_as_interrupt():
        with pipe:
            for name, concurrent in (("concurrent", True), ("sequential", False)):
                case = replace(pipe.run(duration_s, warmup_s=warmup_s, concurrent=concurrent), warmup_s=warmup_s)
                cases[name] = case
                if case.interrupted:
                    break
    ratios = {}
    if "sequential" in cases and cases["sequential"].fps > 0:
        ratios["concurrent_speedup"] = cases["concurrent"].fps / cases["sequential"].fps
    return make_report(PipelineBenchResult, pipe, cases, ratios=ratios, warmup_s=warmup_s, duration_s=duration_s)
