"""The ``panoedge`` command line: thin typer commands over library functions.

Library errors (:class:`panoedge.errors.PanoedgeError`) reach the user as one line and a
non-zero exit code; ``PANOEDGE_DEBUG=1`` shows the traceback instead. Any other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from panoedge.cli.app import app
from panoedge.cli import cache as _cache  # noqa: F401  (registers commands)
from panoedge.cli import demo as _demo  # noqa: F401
from panoedge.cli import deploy as _deploy  # noqa: F401
from panoedge.cli import distill as _distill  # noqa: F401
from panoedge.cli import doctor as _doctor  # noqa: F401
from panoedge.cli import evaluate as _evaluate  # noqa: F401
from panoedge.cli import live as _live  # noqa: F401
from panoedge.cli import models as _models  # noqa: F401
from panoedge.cli import stitch as _stitch  # noqa: F401
from panoedge.cli import synth as _synth  # noqa: F401
from panoedge.cli import teacher as _teacher  # noqa: F401
from panoedge.errors import PanoedgeError

__all__ = ["app", "main"]


def _command(argv: list[str] | None) -> str:
    """``panoedge demo`` / ``panoedge bench model``: the command being run, for messages."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")][:2]
    if len(words) == 2 and words[0] not in ("bench", "bundle", "rig", "teacher"):
        words = words[:1]
    return " ".join(["panoedge", *words])


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from panoedge.parallel import allow_processes
    from panoedge.signals import terminate_as_interrupt

    allow_processes()  # the console script and ``python -m panoedge.cli`` guard their main module
    terminate_as_interrupt()  # SIGTERM cleans up (worker pools, .partial folders) like Ctrl-C
    try:
        from panoedge.cli.app import click_command

        click_command()(args=argv, prog_name="panoedge")
    except PanoedgeError as e:
        if os.environ.get("PANOEDGE_DEBUG") == "1":
            raise
        typer.echo(f"panoedge: error: {e}", err=True)
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:  # a net behind each command's preflight (panoedge.extras.require)
        from panoedge.extras import missing_extra_error

        err = missing_extra_error(e, _command(argv))
        if err is None or os.environ.get("PANOEDGE_DEBUG") == "1":
            raise
        typer.echo(f"panoedge: error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("panoedge: interrupted", err=True)
        sys.exit(130)
