"""``panoedge synth``: write a synthetic 360° dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app, bench_app
from panoedge.cli.common import JsonOpt, emit_json, legacy
from panoedge.eval.synth_bench import REPEAT

COUNT = 8
"""Panoramas ``panoedge synth`` renders unless ``--count`` says otherwise (a quick look, not a training set)."""


@app.command()
def synth(
    out: Optional[Path] = typer.Option(None, "--out", help="Dataset folder to create."),
    count: int = typer.Option(COUNT, "--count", help="Number of panoramas."),
    out_arg: Optional[Path] = typer.Argument(None, hidden=True, metavar="[OUT]"),  # the old spelling: synth OUT
    n_old: Optional[int] = typer.Option(None, "--n", hidden=True),  # the old spelling of --count
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same dataset."),
    size: str = typer.Option("512x1024", "--size", help="ERP size HxW (W = 2H)."),
    family: str = typer.Option("indoor", "--family", help="indoor, outdoor or mixed."),
    fisheye: bool = typer.Option(False, "--fisheye", help="Also render the raw dual-fisheye frames and rig.yaml."),
    fisheye_size: Optional[str] = typer.Option(None, "--fisheye-size", help="Dual-fisheye frame HxW (default H x 2H of --size)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Render a synthetic 360° dataset: ERP RGB, depth (range) and labels, optionally dual-fisheye frames."""
    from panoedge.data.synth_folder import generate_dataset
    from panoedge.errors import UsageError
    from panoedge.geometry import parse_hw
    from panoedge.synth.dataset import SynthSpec

    out = legacy(out, old_value=out_arg, old="OUT (positional)", new="--out")
    if out is None:
        raise UsageError("synth needs --out FOLDER (the dataset folder to create)")
    if n_old is not None and count not in (COUNT, n_old):
        raise UsageError("--n is the old spelling of --count: give one of them")
    n = n_old if n_old is not None else count
    spec = SynthSpec(n=n, seed=seed, size=parse_hw(size, "--size"), family=family, fisheye=fisheye,
                     fisheye_size=parse_hw(fisheye_size, "--fisheye-size") if fisheye_size else None)
    typer.echo(generate_dataset(out, spec, overwrite=overwrite).format())


@bench_app.command("synth")
def bench_synth_cmd(
    size: str = typer.Option("512x1024", "--size", help="ERP size HxW."),
    repeat: int = typer.Option(REPEAT, "--repeat", help="Timed repetitions per case."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Render speed of the synthetic world (ERP + depth + labels) against a single-plane floor."""
    from panoedge.eval.synth_bench import bench_synth
    from panoedge.geometry import check_erp_size, parse_hw

    h, w = check_erp_size(*parse_hw(size, "--size"), what="--size")
    rep = bench_synth(h, w, repeat=repeat)
    typer.echo(rep.format())
    emit_json(json_path, rep)
