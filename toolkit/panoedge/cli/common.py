"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

JsonOpt = typer.Option(None, "--json", help="Also write the numbers as JSON to this path.", dir_okay=False)


def command_line() -> str:
    """The command line as typed (for the ``command`` field of reports)."""
    return " ".join(["panoedge", *sys.argv[1:]])


def emit_json(path: Path | None, report: dict) -> None:
    """Write a report (adding ``command``) atomically where ``--json`` asked for it."""
    if path is None:
        return
    from panoedge.home import write_json

    report = {"schema": report.get("schema"), "command": command_line(), **report}
    write_json(path, report)
    typer.echo(f"wrote {path}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
