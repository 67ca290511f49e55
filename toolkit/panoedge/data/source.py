"""Resolve a DATA argument: a dataset folder, or ``synth:FAMILY[?n=N&size=HxW&seed=S]``.

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


def resolve_data(data: str | Path, progress: bool = True, **synth_defaults) -> DatasetFolder:
    """A :class:`DatasetFolder` for DATA, rendering (once) and caching ``synth:`` data."""
    text = str(data)
    if text.startswith("synth:"):
        from panoedge.synth.dataset import generate_dataset

        spec = parse_synth(text, **synth_defaults)
        path = cache_dir("synth", content_key("dataset", spec.__dict__))
        if not path.exists():
            generate_dataset(path, spec, progress=progress)
        return DatasetFolder(path)
    path = Path(text)
    if not path.is_dir():
        raise UsageError(f"{text}: not a dataset folder and not synth:FAMILY (e.g. synth:indoor)")
    return DatasetFolder(path)
