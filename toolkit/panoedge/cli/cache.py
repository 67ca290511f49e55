"""``panoedge cache``: what is cached under $PANOEDGE_HOME, and clearing it."""

from __future__ import annotations

from typing import Optional

import typer

from panoedge.cli.app import app


@app.command()
def cache(
    clear: bool = typer.Option(False, "--clear", help="Delete the cache (or one kind of it, with --kind)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind of cached content (e.g. synth)."),
) -> None:
    """Show the size of panoedge's cache ($PANOEDGE_HOME) per kind, or clear it."""
    from panoedge.home import cache_usage, clear_cache, human_bytes, panoedge_home

    usage = cache_usage()
    if kind is not None and kind not in usage.kinds:
        from panoedge.errors import unknown_name

        raise unknown_name("cache kind", kind, usage.kinds or ["(the cache is empty)"])
    if clear:
        freed = clear_cache(kind)
        typer.echo(f"cleared {kind or 'all'} from {panoedge_home()}: {human_bytes(freed)} freed")
        return
    typer.echo(usage.only(kind).format())
