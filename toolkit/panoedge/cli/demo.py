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

    from panoedge.demo import quick_config, run_demo
    from panoedge.live.report import progress_printer

    base = quick_config() if quick else _D
    cfg = replace(base, duration_s=duration if duration != _D.duration_s or not quick else base.duration_s,
                  port=port, family=family)
    _, on_status = progress_printer(quiet=False)

    def log(msg: str) -> None:
        if sys.stderr.isatty():
            typer.echo("\r\033[K", err=True, nl=False)  # over the live status line
        typer.echo(msg, err=True)

    result = run_demo(out, cfg, log=log, on_status=on_status)
    typer.echo(result.format(out))
    emit_json(json_path, result)
