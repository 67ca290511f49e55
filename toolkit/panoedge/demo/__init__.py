"""``panoedge demo``: the whole chain on the built-in default, stage by stage.

:func:`run_demo` chains the library functions behind the commands, each stage reusing what an
earlier run cached under ``$PANOEDGE_HOME``:

1. ``synth``: a few panoramas of the synthetic world with dual-fisheye frames, and ``OUT/preview.png``;
2. ``teacher``: the built-in perspective teacher (:func:`panoedge.distill.default.default_teacher`,
   the same cache entry ``panoedge distill`` uses);
3. ``distill``: a ``pano-small`` student on a short schedule (:data:`DEMO_DISTILL`,
   :func:`panoedge.distill.default.run`), then the held-out evaluation of student and teacher
   (:func:`panoedge.eval.distill_check.evaluate_distill_run`), in a run
   folder under ``$PANOEDGE_HOME/demo/`` keyed by the resolved config: a finished run is reused,
   an interrupted one resumes from its checkpoint;
4. ``quantize``: the student exported to ONNX and quantized to INT8 for the target
   (:func:`panoedge.deploy.quantize.quantize_model`, with its accuracy budget and latency);
5. ``build``: the target's bundle from that ONNX (:func:`panoedge.deploy.bundle.build_bundle`),
   cached and copied to ``OUT/bundle``;
6. ``live``: the bundle on ``synth://`` with the web viewer for ``duration_s``
   (:func:`panoedge.live.run.run_live`); its figures and the full report (``OUT/live.json``).

Each stage hands its typed result to the next; ``OUT/demo.json`` (schema ``panoedge.demo/1``,
:class:`~panoedge.demo.result.DemoResult`) holds every stage's status and seconds and the figures.
:class:`DemoConfig` holds every parameter (tests use tiny ones).
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from panoedge.demo.config import (DEMO_DISTILL, DEMO_QUANTIZE, DEMO_TEACHER, FAMILIES, SCHEMA, STAGES, DemoConfig,
                                  quick_config)
from panoedge.demo.plan import StagePlan, format_duration, plan_stages
from panoedge.demo.result import ConvSpeed, DemoResult, StageResult
from panoedge.demo.stages import (Log, build_stage, bundle_hw, distill_stage, live_stage, preview, quantize_stage,
                                  quiet, synth_stage, teacher_stage)
from panoedge.errors import UsageError
from panoedge.home import panoedge_home, write_json

__all__ = ["DEMO_DISTILL", "DEMO_QUANTIZE", "DEMO_TEACHER", "FAMILIES", "SCHEMA", "STAGES", "DemoConfig", "DemoResult",
           "StagePlan", "StageResult", "format_duration", "plan_stages", "quick_config", "run_demo"]


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


def run_demo(out: str | Path, config: DemoConfig | None = None, log: Log = quiet, progress: bool = True,
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
    quantized, quantize, res = quantize_stage(cfg, run.out, bundle_hw(cfg, run), progress)
    done(res)
    announce("build")
    bundle, res = build_stage(cfg, quantized, quantize, out / "bundle", progress)
    done(res)
    announce("live")
    _, res = live_stage(cfg, bundle, out, log, on_status)
    return done(res, speeds=ConvSpeed(start=round(gflops, 1), end=round(conv_gflops(), 1)))
