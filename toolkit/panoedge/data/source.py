"""Resolve a DATA argument: the one place every command's ``--data`` is parsed.

================================  =================================================================
``synth:FAMILY[?n=&size=&seed=]``  the built-in world, rendered once and cached (below)
a dataset folder                   ``meta.json`` + ``rgb/``, ``depth/``, ``semantic/`` (CONVENTIONS.md)
a folder of panoramas              any 2:1 PNG/JPEG images, found recursively, no ``meta.json``
                                   (:class:`~panoedge.data.images.ImageFolder`; a folder with an
                                   ``rgb/`` sub-folder but no ``meta.json`` reads ``rgb/`` so)
a video or folder + ``rig``         dual-fisheye frames, every ``every``-th stitched once and cached
                                   (:mod:`panoedge.data.rig_source`)
``structured3d:PATH``,             published labelled layouts with their own class ids and depth
``stanford2d3d:PATH``,             units, read through a class map (:mod:`panoedge.data.layouts`)
``matterport3d:PATH``
================================  =================================================================

``synth:`` data is the built-in world, rendered once and cached under
``$PANOEDGE_HOME/synth/<key>`` (keyed by every parameter), so every command that takes DATA
(teacher training, distillation, calibration, evaluation) can run offline on nothing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from panoedge.data.folder import DatasetFolder
from panoedge.errors import UsageError
from panoedge.home import cache_dir, content_key

SYNTH_DEFAULTS = {"n": 64, "size": "256x512", "seed": 0, "fisheye": False}


def parse_synth(spec: str, **defaults):
    """``synth:FAMILY?n=..&size=HxW&seed=..&fisheye=1`` -> a validated :class:`SynthSpec`.

    ``defaults`` override :data:`SYNTH_DEFAULTS` (the query string overrides both).
    """
    from panoedge.geometry import parse_hw
    from panoedge.synth.dataset import SynthSpec

    body = spec[len("synth:"):]
    family, _, query = body.partition("?")
    opts = {**SYNTH_DEFAULTS, **defaults}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in SYNTH_DEFAULTS:
            raise UsageError(f"{spec}: unknown option {key!r}; valid: {', '.join(SYNTH_DEFAULTS)}")
        opts[key] = values[-1]
    try:
        n, seed = int(opts["n"]), int(opts["seed"])
    except ValueError:
        raise UsageError(f"{spec}: n and seed must be integers") from None
    fisheye = str(opts["fisheye"]).lower() in ("1", "true", "yes")
    size = opts["size"] if isinstance(opts["size"], tuple) else parse_hw(opts["size"], f"{spec}: size")
    return SynthSpec(n=n, seed=seed, size=tuple(size), family=family or "indoor", fisheye=fisheye).validate()


def resolve_data(data: str | Path, progress: bool = True, *, rig: str | None = None, every: int = 1,
                 class_map: str | None = None, **synth_defaults) -> DatasetFolder:
    """A :class:`DatasetFolder` (or one of its kinds) for DATA; see the module docstring.

    ``rig`` (file, preset or ``generic``) stitches a dual-fisheye video or folder, every
    ``every``-th frame; ``class_map`` is the map a published layout is read through (default:
    the layout's own); ``synth_defaults`` fill in ``synth:`` options the query leaves out.
    """
    from panoedge.data.images import ImageFolder
    from panoedge.data.layouts import LAYOUTS, layout_dataset

    text = str(data)
    name, sep, rest = text.partition(":")
    if sep and name in LAYOUTS:
        if rig is not None:
            raise UsageError(f"{text}: --rig stitches dual-fisheye recordings, not a {name} dataset")
        return layout_dataset(name, rest, class_map)
    if rig is not None:
        from panoedge.data.rig_source import stitched_folder

        return ImageFolder(stitched_folder(text, rig, every, progress=progress))
    if int(every) != 1:
        raise UsageError(f"--every {every}: picks frames of a dual-fisheye recording; give --rig too")
    if text.startswith("synth:"):
        from panoedge.data.synth_folder import generate_dataset

        spec = parse_synth(text, **synth_defaults)
        path = cache_dir("synth", content_key("dataset", spec.__dict__))
        if not path.exists():
            generate_dataset(path, spec, progress=progress)
        return DatasetFolder(path)
    path = Path(text).expanduser()
    if not path.is_dir():
        from panoedge.data.layouts import LAYOUTS as known

        raise UsageError(f"{text}: no such folder; DATA is a folder of panoramas, a dataset folder, synth:FAMILY "
                         f"(e.g. synth:indoor) or {', '.join(f'{k}:PATH' for k in known)}")
    if (path / "meta.json").is_file():
        return DatasetFolder(path)
    return ImageFolder(path / "rgb" if (path / "rgb").is_dir() else path)
