"""Building blocks of a synthetic scene: parts, things, layouts and placement helpers.

A *part* is one shape with one paint (what class and colour its surface has); a *thing* is
one object instance (a chair, a car), a few parts under one bounding sphere so a ray that
misses the sphere skips all of them. A *layout* is what a family's builder returns: the
things, the lighting, the sky and the region where cameras may stand.

Convention: world frame x right, y down, z forward, ground at y = 0; an object placed at
(x, z) with heading ``yaw`` has its local +z axis along world (sin yaw, 0, cos yaw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from panoedge.synth.lighting import Lighting, Sky
from panoedge.synth.primitives import Box, Cylinder, Ellipsoid, Shape, yaw_matrix
from panoedge.synth.textures import Material, random_material


class Paint(Protocol):
    """What a surface looks like: a class id and an albedo per hit point."""

    def paint(self, p_world: np.ndarray, p_local: np.ndarray, n_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels (k,) uint8, albedo (k, 3) float32) for hit points (k, 3) in world and shape frames."""

    def labels(self) -> tuple[int, ...]:
        """Every class id this paint can produce."""


@dataclass(frozen=True)
class Solid:
    """Paint with one class id and one material over the whole surface."""

    label: int
    material: Material

    def paint(self, p_world, p_local, n_local):
        return np.full(len(p_world), self.label, np.uint8), self.material.albedo(p_local, n_local)

    def labels(self):
        return (self.label,)


@dataclass(frozen=True)
class Part:
    shape: Shape
    paint: Paint


@dataclass
class Thing:
    """One object instance of class ``kind``; its bounding sphere encloses every part's."""

    kind: str
    parts: list[Part]
    center: np.ndarray = field(init=False)
    radius: float = field(init=False)

    def __post_init__(self):
        centers = np.array([part.shape.center for part in self.parts])
        radii = np.array([part.shape.radius for part in self.parts])
        self.center = centers.mean(axis=0)
        self.radius = float((np.linalg.norm(centers - self.center, axis=1) + radii).max())


@dataclass(frozen=True)
class Region:
    """Where cameras may stand: a rectangle of half sizes (half_u, half_v) about (x, z), turned by yaw."""

    x: float
    z: float
    half_u: float
    half_v: float
    yaw: float

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """(k, 2) uniform (x, z) points in the rectangle."""
        local = rng.uniform(-1.0, 1.0, (k, 2)) * np.array([self.half_u, self.half_v])
        return self.to_world(local)

    def to_world(self, local: np.ndarray) -> np.ndarray:
        """Map (k, 2) local (u, v) to world (x, z)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.stack([self.x + c * local[:, 0] + s * local[:, 1], self.z - s * local[:, 0] + c * local[:, 1]], 1)


@dataclass
class Layout:
    """Everything a family builder produces for ``World``."""

    things: list[Thing]
    lighting: Lighting
    sky: Sky | None
    miss_label: int
    region: Region
    height_range: tuple[float, float]
    meta: dict


class Placer:
    """Keeps the footprint discs (x, z, r) of placed objects apart on a ground plan."""

    def __init__(self):
        self.discs: list[tuple[float, float, float]] = []

    def free(self, x: float, z: float, r: float, gap: float = 0.1) -> bool:
        return all(np.hypot(x - dx, z - dz) >= r + dr + gap for dx, dz, dr in self.discs)

    def claim(self, x: float, z: float, r: float) -> None:
        self.discs.append((x, z, r))


class Pose:
    """Maps points and headings of an object's local frame (origin on the ground) to the world."""

    def __init__(self, x: float, z: float, yaw: float):
        self.origin = np.array([x, 0.0, z])
        self.yaw = float(yaw)
        self.R = yaw_matrix(yaw)

    def point(self, local) -> np.ndarray:
        return self.origin + self.R @ np.asarray(local, dtype=np.float64)

    def box(self, center, half, yaw: float = 0.0) -> Box:
        """A box given in the local frame (centre (3,), half sizes (3,), extra yaw)."""
        return Box(self.point(center), half, self.yaw + yaw)

    def cylinder(self, lx: float, lz: float, height_top: float, height_bottom: float, r: float) -> Cylinder:
        """A vertical cylinder at local (lx, lz) between two heights above the ground (metres, > 0)."""
        c = self.point([lx, 0.0, lz])
        return Cylinder(c[0], c[2], -height_top, -height_bottom, r)

    def ellipsoid(self, center, radii) -> Ellipsoid:
        return Ellipsoid(self.point(center), radii)


PERSON_SHIRT = ("bold", "dark", "neutral", "pastel")
PERSON_TROUSERS = ("dark", "neutral", "bold", "earth")


def person(rng: np.random.Generator, pose: Pose, label: int) -> Thing:
    """A standing person 1.5-1.95 m tall: two legs, torso, two arms (cylinders, box), sphere head."""
    height = rng.uniform(1.5, 1.95)
    hip, shoulder = 0.5 * height, 0.82 * height
    legs = Solid(label, random_material(rng, PERSON_TROUSERS, ("plain", "fabric", "mottled")))
    shirt = Solid(label, random_material(rng, PERSON_SHIRT, ("plain", "fabric", "stripes", "mottled")))
    skin = Solid(label, random_material(rng, ("skin",), ("plain",)))
    hair = Solid(label, random_material(rng, ("dark", "earth", "skin"), ("mottled",)))
    half_w, leg_r, arm_r = rng.uniform(0.17, 0.23), rng.uniform(0.06, 0.08), rng.uniform(0.04, 0.05)
    head_r = rng.uniform(0.095, 0.115)
    parts = [
        Part(pose.cylinder(-0.09, 0.0, hip, 0.0, leg_r), legs),
        Part(pose.cylinder(0.09, 0.0, hip, 0.0, leg_r), legs),
        Part(pose.box([0.0, -(hip + shoulder) / 2, 0.0], [half_w, (shoulder - hip) / 2, rng.uniform(0.1, 0.13)]), shirt),
        Part(pose.cylinder(-half_w - arm_r - 0.01, 0.0, shoulder, 0.47 * height, arm_r), shirt),
        Part(pose.cylinder(half_w + arm_r + 0.01, 0.0, shoulder, 0.47 * height, arm_r), shirt),
        Part(pose.ellipsoid([0.0, -(height - head_r), 0.0], [head_r, head_r * 1.15, head_r]),
             skin if rng.uniform() < 0.7 else hair),
    ]
    return Thing("person", parts)
