"""``panoedge run``: one live pipeline from a bundle, a source URI and sink URIs, with its report.

:func:`run_live` is the whole command as a function: it loads the model, opens the pipeline,
runs it (until ``duration_s``, the end of a finite source, or Ctrl-C / SIGTERM, each of which
stops cleanly and flushes the sinks), scores live accuracy where the source knows the truth
and, for ``synth://``, the same model offline on the same frames, and returns the report
(a :class:`~panoedge.live.report.LiveRunResult`, schema ``panoedge.live/1``, the shape of the
pipeline benchmark's, the run under the case ``concurrent``).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from panoedge.live.pipeline import Pipeline, PipelineConfig
from panoedge.live.report import LiveAccuracy, LiveRunResult, make_report
from panoedge.live.stream import SourceFailed

SCHEMA = LiveRunResult.SCHEMA

__all__ = ["SCHEMA", "build_pipeline", "run_live", "sigterm_as_interrupt"]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (how service managers stop a process) acts like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def build_pipeline(model, source: str, sinks=(), rig: str | Path | None = None, *, backend: str | None = None,
                   precision: str | None = None, threads: int | None = None, config: PipelineConfig | None = None,
                   on_event: Callable[[str], None] | None = None,
                   on_status: Callable[[dict], None] | None = None, trusted_key: str | Path | None = None,
                   gravity=None) -> Pipeline:
    """A :class:`Pipeline` from a model path (bundle folder or ``.onnx``) or a loaded
    :class:`~panoedge.live.model.LiveModel`, a source URI, sink URIs and an optional rig file.

    ``gravity``: a levelling hook (:mod:`panoedge.stitch.level_hooks`: an IMU's ``GravityHook`` or
    ``ImageLevelHook`` for ``run --level auto``)."""
    from panoedge.live.model import LiveModel, load_model

    owns_model = not isinstance(model, LiveModel)
    if owns_model:
        model = load_model(model, backend=backend, precision=precision, threads=threads, trusted_key=trusted_key)
    rig_obj = None
    if rig is not None:
        from panoedge.stitch.presets import resolve_rig

        rig_obj = resolve_rig(rig)  # a file or a preset name, as every --rig takes
    return Pipeline(source, model, sinks, rig=rig_obj, config=config, on_event=on_event, on_status=on_status,
                    gravity=gravity, owns_model=owns_model)


def run_live(model, source: str = "synth://indoor", sinks=(), duration_s: float | None = None,
             warmup_s: float = 1.0, *, rig: str | Path | None = None, backend: str | None = None,
             precision: str | None = None, threads: int | None = None, config: PipelineConfig | None = None,
             offline: bool = True, on_event: Callable[[str], None] | None = None,
             on_status: Callable[[dict], None] | None = None, trusted_key: str | Path | None = None,
             gravity=None) -> LiveRunResult:
    """Run the live pipeline and return its report (see the module docstring).

    ``warmup_s``: seconds at the start that the figures leave out (first inferences, table
    builds). ``offline``: also evaluate the model on the ``synth://`` source's ground-truth
    ERPs, so the report gives ``accuracy.miou_area_delta`` (live minus offline, points).
    ``trusted_key``: run the bundle only if it is signed by this Ed25519 public key (PEM).
    """
    pipe = build_pipeline(model, source, sinks, rig, backend=backend, precision=precision, threads=threads,
                          config=config, on_event=on_event, on_status=on_status, trusted_key=trusted_key,
                          gravity=gravity)
    with sigterm_as_interrupt():
        with pipe:
            case = pipe.run(duration_s, warmup_s=warmup_s, concurrent=True)
            accuracy = None
            live_acc = pipe.accuracy_result()
            if live_acc is not None:
                accuracy = LiveAccuracy(live=live_acc)
                if offline and not case.interrupted:
                    from panoedge.live.accuracy import offline_accuracy

                    off = offline_accuracy(pipe.model, pipe.source)
                    accuracy = LiveAccuracy(live=live_acc, offline=off,
                                            miou_area_delta=live_acc.miou_area - off.miou_area,
                                            miou_delta=live_acc.miou - off.miou)
    if not case.interrupted and not pipe.delivered_any:
        why = pipe.last_source_problem
        raise SourceFailed(f"{pipe.source.uri}: the run delivered no frame" + (f" ({why})" if why else ""))
    return make_report(LiveRunResult, pipe, {"concurrent": case}, ratios={}, accuracy=accuracy, warmup_s=warmup_s,
                       duration_s=duration_s)
