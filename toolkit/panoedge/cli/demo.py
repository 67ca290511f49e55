"""``panoedge demo``: the README's first command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json
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
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Run the whole chain on the built-in default: synthetic world -> built-in teacher -> distilled
    student (short schedule) -> INT8 -> cpu bundle -> live on synth:// with the web viewer.

    Every stage reuses what earlier runs cached under $PANOEDGE_HOME.
    """
    from dataclasses import replace

    from panoedge.cli.live import _printer
    from panoedge.demo import run_demo

    cfg = replace(_D, duration_s=duration, port=port, family=family)
    _, on_status = _printer(quiet=False)

    def log(msg: str) -> None:
        if sys.stderr.isatty():
            typer.echo("\r\033[K", err=True, nl=False)  # over the live status line
        typer.echo(msg, err=True)

    rec = run_demo(out, cfg, log=log, on_status=on_status)
    _print(rec, out)
    emit_json(json_path, rec)


def _print(rec: dict, out: Path) -> None:
    typer.echo(f"\n{'stage':<9} {'status':<7} {'time':>8}  detail")
    for s in rec["stages"]:
        typer.echo(f"{s['name']:<9} {s['status']:<7} {s['seconds']:6.1f} s  {s['detail']}")
    typer.echo(f"total {rec['total_s']:.1f} s")
    f = rec["figures"]
    d, q, live = f.get("distill", {}), f.get("quantize", {}), f.get("live", {})
    typer.echo(f"offline, {_f(d.get('n_images'), 'd')} held-out panoramas ({d.get('eval_data')}), area-weighted mIoU: "
               f"student {_f(d.get('student_miou_area'))}, teacher on ERP {_f(d.get('teacher_erp_miou_area'))}, "
               f"teacher through tangent patches {_f(d.get('teacher_tangent_miou_area'))}")
    typer.echo(f"FP32 -> INT8 on {_f(q.get('n_images'), 'd')} held-out panoramas: mIoU {_f(q.get('fp32_miou_area'))} -> "
               f"{_f(q.get('int8_miou_area'))}, {_f(q.get('fp32_ms'))} -> {_f(q.get('int8_ms'))} ms per frame (ONNX Runtime CPU)")
    if live:
        h, w = live["erp_hw"]
        typer.echo(f"live {h}x{w}: {live['fps']:.1f} fps, latency p50 {live['latency_ms_p50']:.1f} ms / "
                   f"p99 {live['latency_ms_p99']:.1f} ms, {live['frames_delivered']} frames, {live['dropped']} dropped; "
                   f"mIoU {_f(live.get('live_miou_area'))} live, {_f(live.get('offline_miou_area'))} on the frames' rendered ERPs")
    typer.echo(f"look at: {out / 'preview.png'}, {out / 'bundle'}, {out / 'live.json'}, {out / 'demo.json'}")
