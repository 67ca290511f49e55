"""Write synthetic datasets to disk (``panoedge synth``): a dataset folder per CONVENTIONS.md.

The world and its samples are :mod:`panoedge.synth.dataset`'s (what sample ``i`` of a
:class:`~panoedge.synth.dataset.SynthSpec` is, rendered in memory); this module owns the folder:
``meta.json`` (:func:`panoedge.data.folder.write_meta`), ``rgb/``, ``depth/``, ``semantic/``,
``cameras/`` and, for rigs, ``fisheye/`` and ``rig.yaml``. So the data layer alone knows the
dataset-folder layout it reads back, and ``synth`` stands on geometry only.

Generation is resumable: samples go into a hidden ``.<name>.partial`` folder beside ``OUT``, each
file written atomically; a rerun with the same arguments skips finished samples, and the folder is
renamed to ``OUT`` only when complete. Samples are independent (each has its own world seed), so
larger datasets are rendered by one process per CPU core
(:func:`panoedge.synth.dataset.render_workers`), with the same files as one process would write.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from panoedge.data.folder import write_meta
from panoedge.errors import UsageError
from panoedge.home import write_json
from panoedge.io import write_depth, write_labels, write_rgb
from panoedge.parallel import map_ordered
from panoedge.progress import tqdm
from panoedge.results import Result
from panoedge.stitch.rig import save_rig
from panoedge.synth import dataset as synth_dataset  # through the module: tests swap its render_sample
from panoedge.synth.dataset import SynthSpec, dataset_classes, sample_stem
from panoedge.synth.rig_render import synthetic_rig

__all__ = ["GENERATOR_SCHEMA", "SynthDataset", "generate_dataset"]

GENERATOR_SCHEMA = "panoedge.synth/1"
"""``schema`` of the generator parameters (``meta.json``'s ``generator``, and :class:`SynthDataset`)."""

SAMPLE_PARTS = ("rgb", "depth", "semantic", "cameras")
"""Sub-folders every sample writes (``fisheye`` too with a rig); a sample is finished when all exist."""

DEPTH_NOTE = "range in metres (ERP); 16-bit PNG millimetres"
"""``meta.json``'s ``depth``: what the ``depth/`` files hold."""


@dataclass(frozen=True)
class SynthDataset(Result):
    """What :func:`generate_dataset` wrote: the folder, the spec it renders, and how many samples this
    run rendered (the others were finished by an interrupted earlier run with the same spec)."""

    SCHEMA = GENERATOR_SCHEMA

    path: Path
    spec: SynthSpec
    rendered: int

    def format(self) -> str:
        h, w = self.spec.size
        return f"wrote {self.spec.n} {self.spec.family} panoramas ({h}x{w}) to {self.path}"


def _write_sample(root: Path, s: dict) -> None:
    stem = s["stem"]
    write_rgb(root / "rgb" / f"{stem}.png", s["rgb"])
    write_depth(root / "depth" / f"{stem}.png", s["depth"])
    write_labels(root / "semantic" / f"{stem}.png", s["semantic"])
    if "fisheye" in s:
        write_rgb(root / "fisheye" / f"{stem}.png", s["fisheye"])
    write_json(root / "cameras" / f"{stem}.json", s["camera"])


def _done(root: Path, stem: str, fisheye: bool) -> bool:
    parts = SAMPLE_PARTS + (("fisheye",) if fisheye else ())
    ext = {"cameras": ".json"}
    return all((root / p / f"{stem}{ext.get(p, '.png')}").is_file() for p in parts)


def _render_and_write(root: Path, spec: SynthSpec, rig, i: int) -> None:
    _write_sample(root, synth_dataset.render_sample(spec, i, rig))


def _fresh_partial(partial: Path, params: dict) -> None:
    """Keep ``partial`` only when it was started with the same ``params`` (else start again)."""
    if not partial.exists():
        return
    from panoedge.errors import ConfigError
    from panoedge.safe_load import load_json

    params_file = partial / ".params.json"
    try:
        old = load_json(params_file) if params_file.is_file() else None
    except ConfigError:  # damaged by an interrupted write: start again
        old = None
    if old != json.loads(json.dumps(params)):
        shutil.rmtree(partial)  # a different request: start again


def generate_dataset(out: str | Path, spec: SynthSpec, overwrite: bool = False, progress: bool = True) -> SynthDataset:
    """Render ``spec.n`` samples into the dataset folder ``out`` (resumable; see the module docstring)."""
    spec = spec.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another folder or pass --overwrite")
    partial = out.with_name(f".{out.name}.partial")
    params = {"schema": GENERATOR_SCHEMA, **asdict(spec)}
    params_file = partial / ".params.json"
    _fresh_partial(partial, params)
    partial.mkdir(parents=True, exist_ok=True)
    write_json(params_file, params)
    names, colors = dataset_classes(spec.family)
    rig = synthetic_rig(spec.frame_hw[0], seed=spec.seed) if spec.fisheye else None
    if rig is not None:
        save_rig(rig, partial / "rig.yaml")
    todo = [i for i in range(spec.n) if not _done(partial, sample_stem(spec, i), spec.fisheye)]
    bar = tqdm(total=spec.n, initial=spec.n - len(todo), desc=f"synth {spec.family}", unit="img", disable=not progress)
    workers = synth_dataset.render_workers(len(todo), spec.size)
    for _ in map_ordered(functools.partial(_render_and_write, partial, spec, rig), todo, workers):
        bar.update()
    bar.close()
    write_meta(partial, classes=names, colors=colors, source="panoedge synth", family=spec.family, generator=params,
               depth=DEPTH_NOTE, rig="rig.yaml" if spec.fisheye else None)
    os.remove(params_file)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return SynthDataset(path=out, spec=spec, rendered=len(todo))
