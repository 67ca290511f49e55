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

    result = doctor_report()
    typer.echo(result.format())
    emit_json(json_path, result)
