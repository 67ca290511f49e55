"""The typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="panoedge",
    help="panoedge: distil, quantize, bundle and run 360° segmentation and depth on robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

bench_app = typer.Typer(help="Benchmarks that report ratios against a baseline measured in the same run.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
