"""The typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="panoedge",
    help="panoedge: distil, quantize, bundle and run 360° segmentation and depth on robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: wraps (never cuts) at any width, no <type> after every flag
    context_settings={"help_option_names": ["-h", "--help"]},
)

bench_app = typer.Typer(rich_markup_mode=None, help="Benchmarks that report ratios against a baseline measured in the same run.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("panoedge")
        except PackageNotFoundError:  # run from a source tree that was never installed
            import panoedge

            v = getattr(panoedge, "__version__", "unknown")
        typer.echo(f"panoedge {v}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print panoedge's version and exit."),
) -> None:
    """panoedge: distil, quantize, bundle and run 360° segmentation and depth on robots."""


_TYPE_METAVAR = {"int": "N", "float": "NUMBER", "str": "TEXT", "Path": "PATH", "bool": "BOOL"}


def click_command():
    """The command tree of :data:`app`, with plain metavars (``--size TEXT``, ``BUNDLE``): typer's
    own print ``<str>`` after every option and ``{bundle}`` for arguments."""
    root = typer.main.get_command(app)

    def walk(cmd) -> None:
        for p in cmd.params:
            if p.metavar is not None or getattr(p, "is_flag", False) or getattr(p, "count", False):
                continue
            if p.param_type_name == "argument":
                p.metavar = p.name.upper()
                p.display_type_rich = lambda ctx: None  # the row already names it: BUNDLE, not BUNDLE <path>
            else:
                desc = getattr(p, "type_descriptor", None)
                ann = getattr(desc, "annotation", None)
                if getattr(desc, "is_list", False):
                    ann = getattr(ann, "__args__", (str,))[0]
                name = getattr(ann, "__name__", "TEXT")
                p.metavar = _TYPE_METAVAR.get(name, name.upper())
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(root)
    return root
