"""``panoedge demo``: the README's first command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, preflight
from panoedge.demo import FAMILIES, DemoConfig

_D = DemoConfig()  # the one place the demo's defaults live


def _f(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


@app.command()
def demo(
    out: Path = typer.Option(Path("panoedge-demo"), "--out", help="Folder for the demo's outputs: preview.png, "
                             "bundle/, live.json, demo.json."),
    duration: float = typer.Option(_D.duration_s, "--duration", help="Seconds to run live with the web viewer."),
    port: int = typer.Option(_D.port, "--port", help=f"Web viewer port on {_D.host} (0: any free port)."),
    family: str = typer.Option(_D.family, "--family", help=f"Synthetic world: {', '.join(FAMILIES)}."),
    quick: bool = typer.Option(False, "--quick", help="Every stage on toy sizes in about a minute: checks an "
                               "install end to end (its figures mean nothing)."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Run the whole chain on the built-in default: synthetic world -> built-in teacher -> distilled
    student (short schedule) -> INT8 -> cpu bundle -> live on synth:// with the web viewer.

    Every stage reuses what earlier runs cached under $PANOEDGE_HOME.
    """
    preflight("panoedge demo", "train")
    from dataclasses import replace

    from panoedge.cli.live import _printer
    from panoedge.demo import quick_config, run_demo

    base = quick_config() if quick else _D
    cfg = replace(base, duration_s=duration if duration != _D.duration_s or not quick else base.duration_s,
                  port=port, family=family)
    _, on_status = _printer(quiet=False)

    def log(msg: str) -> None:
        if sys.stderr.isatty():
            typer.echo("\r\033[K", err=True, nl=False)  # over the live status line
        typer.echo(msg, err=True)

    rec = run_demo(out, cfg, log=log, on_status=on_status)
    _print(rec, out)
    emit_json(json_path, rec)


def _print(rec: dict, out: Path) -> None:
    typer.echo(f"\n{'stage':<9} {'status':<7} {'time':>8} {'expected':>9}  detail")
    for s in rec["stages"]:
        est = "" if s.get("estimate_s") is None else f"{s['estimate_s']:7.0f} s"
        typer.echo(f"{s['name']:<9} {s['status']:<7} {s['seconds']:6.1f} s {est:>9}  {s['detail']}")
    speed = rec.get("machine_conv_gflops") or {}
    typer.echo(f"total {rec['total_s']:.1f} s; this CPU: {_f(speed.get('start'), '.0f')} GFLOP/s on a reference "
               f"convolution at the start, {_f(speed.get('end'), '.0f')} at the end")
    f = rec["figures"]
    d, q, live = f.get("distill", {}), f.get("quantize", {}), f.get("live", {})
    stages = {s["name"]: s for s in rec["stages"]}
    typer.echo("\nWhat the figures mean (mIoU: mean intersection-over-union of the classes, in %, each pixel "
               "weighted by the solid angle it covers on the sphere):")
    typer.echo(f"  On {_f(d.get('n_images'), 'd')} held-out synthetic panoramas never used in training "
               f"({d.get('eval_data')}), at the student's size:")
    typer.echo(f"    {_f(d.get('student_miou_area')):>5}  the student ({stages.get('distill', {}).get('detail', '')}), "
               "on the whole panorama")
    typer.echo(f"    {_f(d.get('teacher_erp_miou_area')):>5}  its perspective teacher run on the whole (distorted) panorama")
    typer.echo(f"    {_f(d.get('teacher_tangent_miou_area')):>5}  the teacher through tangent patches, the labels "
               "the student learnt from")
    typer.echo("    (the demo trains the student briefly; `panoedge distill`'s full schedule is where it overtakes "
               "the teacher: README)")
    typer.echo(f"  INT8: the student exported to ONNX, {_f(q.get('fp32_miou_area'))} mIoU in FP32 and "
               f"{_f(q.get('int8_miou_area'))} in INT8 on {_f(q.get('n_images'), 'd')} held-out panoramas; "
               f"{_f(q.get('fp32_ms'))} -> {_f(q.get('int8_ms'))} ms per frame on ONNX Runtime's CPU provider")
    if live:
        h, w = live["erp_hw"]
        typer.echo(f"  Live: camera frames stitched to {h}x{w} and run through the bundle at {live['fps']:.1f} fps, "
                   f"latency p50 {live['latency_ms_p50']:.1f} ms / p99 {live['latency_ms_p99']:.1f} ms, "
                   f"{live['frames_delivered']} frames, {live['dropped']} dropped; mIoU "
                   f"{_f(live.get('live_miou_area'))} on the live stitched frames against "
                   f"{_f(live.get('offline_miou_area'))} on the same scenes rendered directly as ERP")
    typer.echo(f"look at: {out / 'preview.png'}, {out / 'bundle'}, {out / 'live.json'}, {out / 'demo.json'}")
