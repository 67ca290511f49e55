"""``panoedge run`` and ``panoedge bench pipeline``: the live pipeline from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from panoedge.cli.app import app, bench_app
from panoedge.cli.common import JsonOpt, emit_json, positive, preflight

SOURCE_HELP = ("v4l2:///dev/videoN, gst://PIPELINE, file://video.mp4, file://FOLDER, "
               "synth://indoor|outdoor?fps=30&size=1024x2048 (see panoedge.live.sources).")
SINK_HELP = "display://, file://out.mp4, web://HOST:PORT[?token=T], zmq://HOST:PORT (repeatable)."


PRECISIONS = ("int8", "fp16", "fp32")


def _check(command: str, sinks, duration, warmup, threads, queue, precision) -> None:
    """Every number and name of ``run``/``bench pipeline`` checked before anything opens."""
    from panoedge.errors import UsageError

    positive(duration, "--duration")
    positive(warmup, "--warmup-seconds", allow_zero=True)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: expected at least 1")
    if queue < 1:
        raise UsageError(f"--queue {queue}: expected at least 1 frame")
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if any(str(s).startswith("zmq://") for s in sinks or ()):
        preflight(f"{command} with a zmq:// sink", "live")


def _config(queue: int, stitch_device: str, accuracy: bool, antialias: bool):
    """The :class:`~panoedge.live.pipeline.PipelineConfig` of the flags (its other knobs keep their defaults)."""
    from panoedge.live.pipeline import PipelineConfig

    return PipelineConfig(queue_size=queue, stitch_device=stitch_device, accuracy=accuracy, antialias=antialias)


AntialiasOpt = typer.Option(False, "--antialias/--no-antialias",
                            help="Stitcher pre-blur when the frame is much denser than the ERP (quality vs a blur per frame).")


@app.command("run")
def run_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder (panoedge build) or a panoedge .onnx file."),
    source: str = typer.Option("synth://indoor", "--source", help=SOURCE_HELP),
    sink: Optional[List[str]] = typer.Option(None, "--sink", help=SINK_HELP),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)."),
    rig: Optional[str] = typer.Option(None, "--rig", help="The camera's rig: a preset name (panoedge rig list) or a rig file (not needed for synth://)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="ort-cpu, ort-cuda, ort-trt, trt (default: the bundle's)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="int8, fp16 or fp32 (default: the bundle's; "
                                            "fp16 needs a TensorRT engine built with panoedge engine --precision fp16)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads (default: all cores but one, 1 to 8)."),
    warmup_seconds: float = typer.Option(1.0, "--warmup-seconds", help="Seconds at the start left out of the figures."),
    warmup_old: Optional[float] = typer.Option(None, "--warmup", hidden=True),  # old spelling of --warmup-seconds
    queue: int = typer.Option(1, "--queue", help="Camera frames waiting for the stitcher (live sources drop the oldest beyond this)."),
    stitch_device: str = typer.Option("cpu", "--stitch-device", help="Stitcher device: cpu, cuda, auto."),
    accuracy: bool = typer.Option(True, "--accuracy/--no-accuracy", help="Score frames that carry ground truth (synth://)."),
    antialias: bool = AntialiasOpt,
    quiet: bool = typer.Option(False, "--quiet", help="No live status line."),
    trusted_key: Optional[Path] = typer.Option(None, "--trusted-key", envvar="PANOEDGE_TRUSTED_KEY", dir_okay=False,
                                               help="Run only a bundle signed by this Ed25519 public key (PEM)."),
    level: Optional[str] = typer.Option(None, "--level", help="auto: level the output from the stream's own vertical "
                                        "lines, re-estimated every 10 s in the background (an IMU: see "
                                        "panoedge.stitch.level_hooks.GravityHook)."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Run live: SOURCE -> stitch -> BUNDLE -> sinks, with fps, latency and drops reported live and at the end."""
    warmup = warmup_old if warmup_old is not None else warmup_seconds
    _check("panoedge run", sinks=sink, duration=duration, warmup=warmup, threads=threads, queue=queue,
           precision=precision)
    from panoedge.live.report import progress_printer
    from panoedge.live.run import run_live

    on_event, on_status = progress_printer(quiet)
    gravity = None
    if level is not None:
        from panoedge.errors import UsageError

        if level != "auto":
            raise UsageError(f"--level {level}: run takes --level auto (a fixed mounting rotation goes in the rig's "
                             "output_yaw/pitch/roll_deg)")
        from panoedge.stitch.level_hooks import ImageLevelHook

        gravity = ImageLevelHook()
    result = run_live(bundle, source, sink or [], duration_s=duration, warmup_s=warmup, rig=rig, backend=backend, precision=precision,
                      threads=threads, config=_config(queue, stitch_device=stitch_device, accuracy=accuracy, antialias=antialias), on_event=on_event,
                      on_status=on_status, trusted_key=trusted_key, gravity=gravity)
    if sys.stderr.isatty() and not quiet:
        typer.echo("", err=True)
    typer.echo(result.format())
    emit_json(json_path, result)


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder (panoedge build) or a panoedge .onnx file."),
    source: Optional[str] = typer.Option(None, "--source", help=SOURCE_HELP + " Default: the 1024x2048 synthetic loop, unpaced."),
    sink: Optional[List[str]] = typer.Option(None, "--sink", help=SINK_HELP),
    duration: float = typer.Option(10.0, "--duration", help="Measured seconds per case."),
    warmup_seconds: float = typer.Option(2.0, "--warmup-seconds", help="Warm-up seconds before each case."),
    warmup_old: Optional[float] = typer.Option(None, "--warmup", hidden=True),  # old spelling of --warmup-seconds
    rig: Optional[str] = typer.Option(None, "--rig", help="The camera's rig: a preset name (panoedge rig list) or a rig file (not needed for synth://)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="ort-cpu, ort-cuda, ort-trt, trt (default: the bundle's)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="int8, fp16 or fp32 (default: the bundle's; "
                                            "fp16 needs a TensorRT engine built with panoedge engine --precision fp16)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads (default: all cores but one, 1 to 8)."),
    queue: int = typer.Option(1, "--queue", help="Camera frames waiting for the stitcher (live sources drop the oldest beyond this)."),
    antialias: bool = AntialiasOpt,
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Pipeline fps, end-to-end latency p50/p99 and per-stage split: concurrent against sequential stages."""
    warmup = warmup_old if warmup_old is not None else warmup_seconds
    _check("panoedge bench pipeline", sinks=sink, duration=duration, warmup=warmup, threads=threads, queue=queue,
           precision=precision)
    from panoedge.live.bench import DEFAULT_SOURCE, bench_pipeline
    from panoedge.live.report import progress_printer

    on_event, _ = progress_printer(True)
    result = bench_pipeline(bundle, source or DEFAULT_SOURCE, sink or [], duration_s=duration, warmup_s=warmup, rig=rig, backend=backend,
                            precision=precision, threads=threads, config=_config(queue, stitch_device="cpu", accuracy=False, antialias=antialias),
                            on_event=on_event)
    typer.echo(result.format())
    emit_json(json_path, result)


@bench_app.command("soak")
def bench_soak_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder (panoedge build) or a panoedge .onnx file."),
    duration: float = typer.Option(20.0, "--duration", help="Measured seconds."),
    warmup: float = typer.Option(2.0, "--warmup", help="Warm-up seconds."),
    backend: Optional[str] = typer.Option(None, "--backend", help="ort-cpu, ort-cuda, ort-trt, trt (default: the bundle's)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """A short soak: the live pipeline on a changing folder with corrupt and bomb frames, while hostile
    web clients (DNS rebinding, floods, slowloris, HEAD) and an idle ZeroMQ subscriber misbehave."""
    from panoedge.live.report import progress_printer
    from panoedge.live.soak import soak

    on_event, _ = progress_printer(True)
    result = soak(bundle, duration_s=duration, warmup_s=warmup, backend=backend, threads=threads, on_event=on_event)
    typer.echo(result.format())
    emit_json(json_path, result)
