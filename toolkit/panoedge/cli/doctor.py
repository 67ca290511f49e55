"""``panoedge doctor``: versions, GPU/Jetson detection and usable backends."""

from __future__ import annotations

from pathlib import Path

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json


@app.command()
def doctor(json_path: Path = JsonOpt) -> None:
    """Print versions, GPU/Jetson detection and which inference backends are usable here."""
    from panoedge.env import doctor_report

    rep = doctor_report()
    m = rep["machine"]
    typer.echo(f"machine      {m['cpu']} ({m['cores']} cores, {m['arch']}, {m['os']})")
    for k, v in rep["versions"].items():
        typer.echo(f"{k:<12} {v if v is not None else 'not installed'}")
    typer.echo(f"{'ort EPs':<12} {', '.join(rep['onnxruntime_providers']) or 'none'}")
    gpu = rep["gpu"]
    typer.echo(f"{'gpu':<12} {gpu['name'] + ' (sm ' + str(gpu['compute_capability']) + ')' if gpu else 'none'}")
    typer.echo(f"{'jetson':<12} {rep['jetson'] or 'no'}")
    typer.echo(f"{'cuda binding':<12} {rep['cuda_binding'] or 'none'} (for the trt backend)")
    typer.echo("backends:")
    for name, b in rep["backends"].items():
        typer.echo(f"  {name:<9} {'yes' if b['usable'] else 'no  (' + b['why'] + ')'}")
    emit_json(json_path, {"schema": "panoedge.doctor/1", **rep})
