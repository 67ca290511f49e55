"""Synthetic datasets as the world sees them: which samples a :class:`SynthSpec` holds and how each is rendered.

Each sample is a new world (its own layout, textures and lighting) seen from a random camera
position with a random heading. Samples are independent (each has its own world seed), so larger
datasets are rendered by one process per CPU core (:func:`render_workers`). Writing them into a
dataset folder is the data layer's job (:func:`panoedge.data.synth_folder.generate_dataset`): the
folder layout lives with the code that reads it back, and ``synth`` imports nothing of ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.errors import UsageError, unknown_name
from panoedge.geometry import check_erp_size, rot_y
from panoedge.io import IGNORE
from panoedge.parallel import usable_cores
from panoedge.synth.render import render_erp
from panoedge.synth.rig_render import SensorEffects, render_rig_frame
from panoedge.synth.world import FAMILIES, class_colors, class_names, make_world

DATASET_FAMILIES = (*FAMILIES, "mixed")

LABEL_VALUES = 256
"""Entries of a uint8 label lookup table (every value a label PNG can hold)."""

PIXELS_PER_PROCESS = 8 * 256 * 512
"""Rendering work (ERP pixels) below which a worker process costs more to start than it saves:
8 samples of 256x512. ``panoedge bench synth`` measures the render time per panorama."""


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
    lut = np.full(LABEL_VALUES, IGNORE, dtype=np.uint8)
    for k, name in enumerate(class_names(family)):
        lut[k] = names.index(name)
    stem = sample_stem(spec, i)
    if spec.fisheye:
        rf = render_rig_frame(world, rig, position=position, R_rig=R, effects=SensorEffects.random(rng),
                              erp_hw=spec.size, rng=rng)
        view = rf.erp
        sample = {"fisheye": rf.frame}
    else:
        view = render_erp(world, h=spec.size[0], w=spec.size[1], position=position, R=R)
        sample = {}
    sample.update(stem=stem, rgb=view.rgb, depth=view.depth, semantic=lut[view.labels],
                  camera={"position_m": position.tolist(), "yaw_rad": float(np.arctan2(R[0, 2], R[2, 2])),
                          "world_seed": wseed, "family": family})
    return sample


def render_workers(n: int, size: tuple[int, int]) -> int:
    """Processes for ``n`` samples of ``size``: one per usable core (:func:`panoedge.parallel.usable_cores`),
    once each has at least :data:`PIXELS_PER_PROCESS` of rendering to do; below that, starting
    them costs more than it saves."""
    per_core = max(1, int(PIXELS_PER_PROCESS / max(1, size[0] * size[1])))
    return max(1, min(usable_cores(), n // per_core))
