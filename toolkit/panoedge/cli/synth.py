"""``panoedge synth``: write a synthetic 360° dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Dataset folder to create."),
    n: int = typer.Option(8, "--n", help="Number of panoramas."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same dataset."),
    size: str = typer.Option("512x1024", "--size", help="ERP size HxW (W = 2H)."),
    family: str = typer.Option("indoor", "--family", help="indoor, outdoor or mixed."),
    fisheye: bool = typer.Option(False, "--fisheye", help="Also render the raw dual-fisheye frames and rig.yaml."),
    fisheye_size: Optional[str] = typer.Option(None, "--fisheye-size", help="Dual-fisheye frame HxW (default H x 2H of --size)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Render a synthetic 360° dataset: ERP RGB, depth (range) and labels, optionally dual-fisheye frames."""
    from panoedge.geometry import parse_hw
    from panoedge.synth.dataset import SynthSpec, generate_dataset

    spec = SynthSpec(n=n, seed=seed, size=parse_hw(size, "--size"), family=family, fisheye=fisheye,
                     fisheye_size=parse_hw(fisheye_size, "--fisheye-size") if fisheye_size else None)
    path = generate_dataset(out, spec, overwrite=overwrite)
    typer.echo(f"wrote {spec.n} {family} panoramas ({size}) to {path}")
