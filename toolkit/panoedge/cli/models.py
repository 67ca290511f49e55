"""``panoedge models``: the student family with parameters and GFLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, preflight


@app.command()
def models(
    num_classes: int = typer.Option(11, "--classes", help="Number of segmentation classes for the figures."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """List the registered students with parameters and GFLOPs at 256x512 and 512x1024."""
    preflight("panoedge models", "train", ("torch",))
    from panoedge.models import students_table

    rows = sorted(students_table(num_classes=num_classes), key=lambda r: r["params"])
    typer.echo(f"{'name':<12} {'params':>10} {'GFLOPs 256x512':>15} {'GFLOPs 512x1024':>16}  description")
    for r in rows:
        typer.echo(f"{r['name']:<12} {r['params']:>10,} {r['gflops_256x512']:>15.2f} {r['gflops_512x1024']:>16.2f}  "
                   f"{r['description']}")
    typer.echo("GFLOPs = 2 x multiply-accumulates of conv and linear layers, both heads on.")
    emit_json(json_path, {"schema": "panoedge.models/1", "num_classes": num_classes, "students": rows})
