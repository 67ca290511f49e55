"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

JsonOpt = typer.Option(None, "--json", help="Also write the numbers as JSON to this path.", dir_okay=False)


def command_line() -> str:
    """The command line as typed (for the ``command`` field of reports)."""
    return " ".join(["panoedge", *sys.argv[1:]])


def emit_json(path: Path | None, report) -> None:
    """Write a report (a typed result, or a plain dict while commands move over) atomically where
    ``--json`` asked for it, with the ``command`` line after its ``schema``."""
    if path is None:
        return
    from panoedge.home import write_json

    body = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    schema = body.pop("schema", None)
    write_json(path, {"schema": schema, "command": command_line(), **body})
    typer.echo(f"wrote {path}")


def preflight(what: str, extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Fail in a second, naming the pip extra, when an optional package ``what`` needs is missing."""
    from panoedge.extras import require

    require(what, extra, modules)


def preflight_model(what: str, model: str) -> None:
    """The packages MODEL needs: none for ONNX files and bundles; torch for students and teacher
    specs (``KIND:...``, ``A+B``: each part), and transformers too for ``hf:`` teachers."""
    text = str(model)
    p = Path(text).expanduser()
    if p.exists():
        if p.suffix.lower() == ".onnx" or (p / "manifest.json").is_file():
            return
        preflight(what, "train", ("torch",))
        return
    parts = text.split("+")
    if all(":" in part for part in parts):  # teacher specs (a missing path is the command's own error)
        preflight(what, "train", ("torch",))
        if any(part.split(":", 1)[0].startswith("hf") for part in parts):
            preflight(f"{what} with an hf: teacher", "hf")


def legacy(value, old_value, old: str, new: str):
    """``value`` of option ``new``, or of its old spelling ``old`` (kept working for scripts)."""
    if old_value is None:
        return value
    if value is not None and value != old_value:
        from panoedge.errors import UsageError

        raise UsageError(f"{old} is the old spelling of {new}: give one of them")
    return old_value


def positive(value, flag: str, allow_zero: bool = False):
    """``value`` when it is > 0 (>= 0 with ``allow_zero``) and finite; else a one-line ``UsageError``."""
    import math

    from panoedge.errors import UsageError

    if value is None:
        return None
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise UsageError(f"{flag} {value:g}: expected a number {'>= 0' if allow_zero else '> 0'}")
    return value
