"""``panoedge demo``: the README's first command."""

from __future__ import annotations

from pathlib import Path

import typer

from panoedge.cli.app import app


@app.command()
def demo(out: Path = typer.Option(Path("panoedge-demo"), "--out", help="Folder for the demo's outputs.")) -> None:
    """Run the whole chain on the built-in default (synthetic world -> ... -> live), reusing the cache."""
    from panoedge.demo import run_demo

    results = run_demo(out)
    typer.echo("stage      status          time    detail")
    for r in results:
        t = f"{r.seconds:6.1f} s" if r.seconds else "      -"
        typer.echo(f"{r.name:<10} {r.status:<14} {t}  {r.detail}")
    typer.echo(f"preview of the synthetic world: {out / 'preview.png'}")
