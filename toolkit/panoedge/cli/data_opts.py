"""Options every command that reads panoramas shares: the rig of a dual-fisheye recording, the
frame step, and the class map (help text derived from the one place each is defined)."""

from __future__ import annotations

import typer

from panoedge.data.classmap import shipped_class_maps
from panoedge.data.layouts import LAYOUTS

DATA_HELP = ("A folder of ERP panoramas (any 2:1 size, jpg/png, searched recursively), a dataset folder, "
             "synth:FAMILY?n=..&size=HxW&seed=.., " + ", ".join(f"{k}:PATH" for k in LAYOUTS)
             + ", or with --rig a dual-fisheye video or folder of frames.")
RigOpt = typer.Option(None, "--rig", help="Stitch DATA, a dual-fisheye video or image folder, with this rig "
                      "(file, preset name or generic); stitched once and cached.")
EveryOpt = typer.Option(1, "--every", min=1, help="With --rig: stitch every Nth frame.")
ClassMapOpt = typer.Option(None, "--class-map", help="Class map NAME (shipped: "
                           + ", ".join(shipped_class_maps()) + ") or YAML FILE.")
