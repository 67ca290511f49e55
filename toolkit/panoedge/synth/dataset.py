"""Write synthetic datasets to disk (``panoedge synth``): a dataset folder per CONVENTIONS.md.

Each sample is a new world (its own layout, textures and lighting) seen from a random camera
position with a random heading. Generation is resumable: samples go into a hidden
``.<name>.partial`` folder beside ``OUT``, each file written atomically; a rerun with the
same arguments skips finished samples, and the folder is renamed to ``OUT`` only when complete.
Samples are independent (each has its own world seed), so larger datasets are rendered by one
process per CPU core (:func:`render_workers`), with the same files as one process would write.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from panoedge.progress import tqdm

from panoedge.data.folder import write_meta
from panoedge.errors import UsageError, unknown_name
from panoedge.geometry import check_erp_size, rot_y
from panoedge.home import write_json
from panoedge.io import write_depth, write_labels, write_rgb
from panoedge.parallel import map_ordered, usable_cores
from panoedge.stitch.rig import save_rig
from panoedge.synth.render import render_erp
from panoedge.synth.rig_render import SensorEffects, render_rig_frame, synthetic_rig
from panoedge.synth.world import FAMILIES, class_colors, class_names, make_world

DATASET_FAMILIES = (*FAMILIES, "mixed")


@dataclass(frozen=True)
class SynthSpec:
    """Everything a synthetic dataset depends on (its resolved config)."""

    n: int
    seed: int = 0
    size: tuple[int, int] = (512, 1024)
    family: str = "indoor"
    fisheye: bool = False
    fisheye_size: tuple[int, int] | None = None

    def validate(self) -> "SynthSpec":
        if self.n < 1:
            raise UsageError(f"--count {self.n}: expected at least 1 panorama")
        if self.family not in DATASET_FAMILIES:
            raise unknown_name("family", self.family, DATASET_FAMILIES)
        check_erp_size(*self.size, what="--size", multiple=2)
        if self.fisheye:
            fh, fw = self.frame_hw
            if fw != 2 * fh or fh < 32:
                raise UsageError(f"--fisheye-size {fh}x{fw}: a side-by-side dual-fisheye frame is H x 2H, H >= 32")
        return self

    @property
    def frame_hw(self) -> tuple[int, int]:
        return tuple(self.fisheye_size) if self.fisheye_size else (self.size[0], 2 * self.size[0])

    def families(self) -> tuple[str, ...]:
        return FAMILIES if self.family == "mixed" else (self.family,)


def dataset_classes(family: str) -> tuple[list[str], np.ndarray]:
    """Class names and colours of a dataset family; ``mixed`` is the union, indoor classes first."""
    if family != "mixed":
        return list(class_names(family)), class_colors(family)
    names, colors = [], []
    for fam in FAMILIES:
        for name, col in zip(class_names(fam), class_colors(fam)):
            if name not in names:
                names.append(name)
                colors.append(col)
    return names, np.asarray(colors, dtype=np.uint8)


def sample_seed(seed: int, i: int) -> int:
    """The world seed of sample ``i`` of a dataset with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


def sample_stem(spec: SynthSpec, i: int) -> str:
    """The file stem of sample ``i``: its family, the dataset seed and the index."""
    fams = spec.families()
    return f"{fams[i % len(fams)]}_{spec.seed:05d}_{i:05d}"


def render_sample(spec: SynthSpec, i: int, rig=None) -> dict:
    """Render sample ``i``: a dict with ``stem``, ``rgb``, ``depth``, ``semantic`` (+ ``fisheye``)."""
    fams = spec.families()
    family = fams[i % len(fams)]
    wseed = sample_seed(spec.seed, i)
    world = make_world(family, wseed)
    rng = np.random.default_rng(wseed)
    position = world.camera_positions(1, rng)[0]
    R = rot_y(rng.uniform(-np.pi, np.pi))
    names, _ = dataset_classes(spec.family)
    lut = np.full(256, 255, dtype=np.uint8)
    for k, name in enumerate(class_names(family)):
        lut[k] = names.index(name)
    stem = sample_stem(spec, i)
    if spec.fisheye:
        rf = render_rig_frame(world, rig, position, R, SensorEffects.random(rng), spec.size, rng)
        view = rf.erp
        sample = {"fisheye": rf.frame}
    else:
        view = render_erp(world, *spec.size, position, R)
        sample = {}
    sample.update(stem=stem, rgb=view.rgb, depth=view.depth, semantic=lut[view.labels],
                  camera={"position_m": position.tolist(), "yaw_rad": float(np.arctan2(R[0, 2], R[2, 2])),
                          "world_seed": wseed, "family": family})
    return sample


def _write_sample(root: Path, s: dict) -> None:
    stem = s["stem"]
    write_rgb(root / "rgb" / f"{stem}.png", s["rgb"])
    write_depth(root / "depth" / f"{stem}.png", s["depth"])
    write_labels(root / "semantic" / f"{stem}.png", s["semantic"])
    if "fisheye" in s:
        write_rgb(root / "fisheye" / f"{stem}.png", s["fisheye"])
    write_json(root / "cameras" / f"{stem}.json", s["camera"])


def _done(root: Path, stem: str, fisheye: bool) -> bool:
    parts = ["rgb", "depth", "semantic", "cameras"] + (["fisheye"] if fisheye else [])
    ext = {"cameras": ".json"}
    return all((root / p / f"{stem}{ext.get(p, '.png')}").is_file() for p in parts)


def _render_and_write(root: Path, spec: SynthSpec, rig, i: int) -> None:
    _write_sample(root, render_sample(spec, i, rig))


def render_workers(n: int, size: tuple[int, int]) -> int:
    """Processes for ``n`` samples of ``size``: one per usable core (:func:`panoedge.parallel.usable_cores`),
    once each has at least about 4 s of rendering to do (8 samples of 256x512); below that,
    starting them costs more than it saves."""
    per_core = max(1, int(8 * 256 * 512 / max(1, size[0] * size[1])))
    return max(1, min(usable_cores(), n // per_core))


def generate_dataset(out: str | Path, spec: SynthSpec, overwrite: bool = False, progress: bool = True) -> Path:
    """Render ``spec.n`` samples into the dataset folder ``out`` (resumable; see module doc)."""
    spec = spec.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another folder or pass --overwrite")
    partial = out.with_name(f".{out.name}.partial")
    params = {"schema": "panoedge.synth/1", **asdict(spec)}
    params_file = partial / ".params.json"
    if partial.exists():
        from panoedge.errors import ConfigError
        from panoedge.safe_load import load_json

        try:
            old = load_json(params_file) if params_file.is_file() else None
        except ConfigError:  # damaged by an interrupted write: start again
            old = None
        if old != json.loads(json.dumps(params)):
            shutil.rmtree(partial)  # a different request: start again
    partial.mkdir(parents=True, exist_ok=True)
    write_json(params_file, params)
    names, colors = dataset_classes(spec.family)
    rig = synthetic_rig(spec.frame_hw[0], seed=spec.seed) if spec.fisheye else None
    if rig is not None:
        save_rig(rig, partial / "rig.yaml")
    todo = [i for i in range(spec.n) if not _done(partial, sample_stem(spec, i), spec.fisheye)]
    bar = tqdm(total=spec.n, initial=spec.n - len(todo), desc=f"synth {spec.family}", unit="img", disable=not progress)
    for _ in map_ordered(functools.partial(_render_and_write, partial, spec, rig), todo, render_workers(len(todo), spec.size)):
        bar.update()
    bar.close()
    write_meta(partial, names, colors, source="panoedge synth", family=spec.family, generator=params,
               depth="range in metres (ERP); 16-bit PNG millimetres",
               rig="rig.yaml" if spec.fisheye else None)
    os.remove(params_file)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
