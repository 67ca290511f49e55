"""``panoedge models``: the student family with parameters and GFLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, preflight
from panoedge.synth.world import class_names

FIGURE_CLASSES = len(class_names("indoor"))
"""Segmentation classes of the figures by default: the built-in indoor world's (the first data most users run)."""


@app.command()
def models(
    num_classes: int = typer.Option(FIGURE_CLASSES, "--classes",
                                    help="Number of segmentation classes for the figures."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """List the registered students with parameters and GFLOPs at 256x512 and 512x1024."""
    preflight("panoedge models", "train", ("torch",))
    from panoedge.models.summary import list_students_table

    table = list_students_table(num_classes=num_classes)
    typer.echo(table.format())
    emit_json(json_path, table)
