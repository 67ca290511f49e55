"""Outdoor layouts: a street with buildings, walls, poles, trees, cars and people.

Everything is laid out in a street frame turned by a random ``heading`` about the vertical:
u across the street (local x), s along it (local z), both in metres, the road centred on
u = 0. The flat ground (y = 0) is road where |u| < road half width (or inside an optional
cross street), sidewalk in the bands beside the roads, terrain elsewhere. Rays that hit
nothing are sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.synth.lighting import outdoor_lighting, random_sky
from panoedge.synth.primitives import HorizontalPlane
from panoedge.synth.scene import Layout, Part, Placer, Pose, Region, Solid, Thing, person
from panoedge.synth.textures import Material, random_material

ROAD_LOOK = (("asphalt",), ("speckle",))
SIDEWALK_LOOK = (("neutral", "earth", "bold", "pastel"), ("tiles", "bricks", "mottled"))
TERRAIN_LOOK = (("green", "earth", "green"), ("mottled", "foliage", "speckle"))
BUILDING_LOOK = (("neutral", "earth", "bold", "pastel", "wood"), ("facade", "facade", "facade", "bricks", "plain", "mottled"))
GLASS = ("dark", "pastel", "neutral")
WALL_LOOK = (("neutral", "earth", "bold", "pastel", "dark"), ("bricks", "plain", "mottled", "stripes"))
POLE_LOOK = (("neutral", "dark", "bold", "green"), ("plain", "mottled"))
TREE_LOOK = (("green", "green", "earth", "bold"), ("foliage", "mottled"))
BARK_LOOK = (("wood", "earth", "dark"), ("grain", "mottled"))
CAR_LOOK = (("bold", "neutral", "dark", "pastel"), ("plain",))

GROUND_EXTENT = 1500.0
"""Radius in metres of the ground disc; rays beyond it see sky just below the horizon."""


@dataclass(frozen=True)
class StreetGround:
    """Paint of the ground plane: road, sidewalk or terrain by position in the street frame."""

    pose_yaw: float
    road_half: float
    walk: float
    cross_s: float | None
    cross_half: float
    road: Material
    sidewalk: Material
    terrain: Material
    marking: tuple[float, float, float]
    ids: tuple[int, int, int]  # road, sidewalk, terrain

    def _street(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.cos(self.pose_yaw), np.sin(self.pose_yaw)
        return p[:, 0] * c - p[:, 2] * s, p[:, 0] * s + p[:, 2] * c

    def zones(self, p: np.ndarray) -> np.ndarray:
        """(k,) int: 0 road, 1 sidewalk, 2 terrain for world points (k, 3)."""
        u, s = self._street(p)
        au = np.abs(u)
        cross = np.abs(s - self.cross_s) if self.cross_s is not None else np.full(len(p), np.inf)
        road = (au < self.road_half) | (cross < self.cross_half)
        walk = (au < self.road_half + self.walk) | (cross < self.cross_half + self.walk)
        return np.where(road, 0, np.where(walk, 1, 2))

    def paint(self, p_world, p_local, n_local):
        u, s = self._street(p_world)
        zone = self.zones(p_world)
        street = np.stack([u, p_world[:, 1], s], 1).astype(np.float32)
        albedo = np.empty((len(p_world), 3), np.float32)
        for z, material in enumerate((self.road, self.sidewalk, self.terrain)):
            rows = np.flatnonzero(zone == z)
            if rows.size:
                albedo[rows] = material.albedo(street[rows], n_local[rows])
        albedo[self._markings(u, s, zone)] = self.marking
        return np.asarray(self.ids, np.uint8)[zone], albedo

    def _markings(self, u: np.ndarray, s: np.ndarray, zone: np.ndarray) -> np.ndarray:
        """Dashed centre line and solid edge lines on the main road, not across the junction."""
        au = np.abs(u)
        centre = (au < 0.07) & ((s / 9.0) % 1.0 < 0.4)
        edge = np.abs(au - (self.road_half - 0.35)) < 0.07
        marked = (zone == 0) & (centre | edge) & (au < self.road_half)
        if self.cross_s is not None:
            marked &= np.abs(s - self.cross_s) >= self.cross_half
        return marked

    def labels(self):
        return self.ids


@dataclass
class Street:
    """Street dimensions and placement state, all in the street frame (u across, s along)."""

    heading: float
    road_half: float
    walk: float
    half_length: float
    cross_s: float | None
    cross_half: float
    placer: Placer
    frontage: dict[float, list[tuple[float, float, float]]]  # side -> (s0, s1, setback) per building

    def open_depth(self, side: float, s0: float, s1: float) -> float:
        """Depth of open ground behind the sidewalk on ``side`` over s in [s0, s1] (inf: no building)."""
        depths = [setback for a, b, setback in self.frontage[side] if a < s1 and s0 < b]
        return min(depths, default=np.inf)

    def pose(self, u: float, s: float, yaw: float = 0.0) -> Pose:
        """Pose of something at street coordinates (u, s), turned ``yaw`` from the street axis."""
        c, sn = np.cos(self.heading), np.sin(self.heading)
        return Pose(c * u + sn * s, -sn * u + c * s, self.heading + yaw)

    def in_junction(self, s: float, margin: float) -> bool:
        return self.cross_s is not None and abs(s - self.cross_s) < self.cross_half + self.walk + margin

    @property
    def kerb(self) -> float:
        return self.road_half + self.walk


def _solid(rng, label: int, look, second=None) -> Solid:
    return Solid(label, random_material(rng, *look, second_pools=second))


def _buildings(rng, st: Street, ids) -> list[Thing]:
    """Boxes along both sides of the street, varied in width, depth, setback and height."""
    things = []
    for side in (-1.0, 1.0):
        s = -st.half_length + rng.uniform(-10, 0)
        while s < st.half_length:
            width = rng.uniform(8.0, 25.0)
            if st.in_junction(s + width / 2, width / 2):
                s += 4.0
                continue
            setback, depth, height = rng.uniform(0.0, 4.0) ** 2 / 4, rng.uniform(8.0, 20.0), rng.uniform(5.0, 35.0)
            u = side * (st.kerb + setback + depth / 2)
            look = _solid(rng, ids["building"], BUILDING_LOOK, GLASS)
            pose = st.pose(u, s + width / 2)
            things.append(Thing("building", [Part(pose.box([0, -height / 2, 0], [depth / 2, height / 2, width / 2]), look)]))
            st.frontage[side].append((s, s + width, setback))
            s += width + (rng.uniform(2.0, 10.0) if rng.uniform() < 0.4 else 0.0)
    return things


def _kerbside(rng, st: Street, offset: float, r: float, along: float | None = None, tries: int = 30):
    """A free (u, s) ``offset`` m out from the road edge, off the junction and clear of buildings.

    ``r`` is the footprint radius kept from other objects, ``along`` the half length along
    the street that must be clear of buildings (default ``r``).
    """
    along = r if along is None else along
    for _ in range(tries):
        side = rng.choice([-1.0, 1.0])
        u, s = side * (st.road_half + offset), rng.uniform(-st.half_length, st.half_length)
        reach = offset - st.walk + min(r, 1.0)
        if reach > 0 and st.open_depth(side, s - along, s + along) < reach:
            continue
        if not st.in_junction(s, along) and st.placer.free(u, s, r, gap=0.2):
            st.placer.claim(u, s, r)
            return u, s
    return None


def _pole(rng, st: Street, label: int) -> Thing | None:
    spot = _kerbside(rng, st, rng.uniform(0.3, 0.6), 0.3)
    if spot is None:
        return None
    u, s = spot
    pose = st.pose(u, s, 0.0 if u < 0 else np.pi)  # local +x points across towards the road
    look = _solid(rng, label, POLE_LOOK)
    height, r = rng.uniform(3.0, 9.0), rng.uniform(0.05, 0.12)
    parts = [Part(pose.cylinder(0.0, 0.0, height, 0.0, r), look)]
    if height > 5.0:
        arm = rng.uniform(0.8, 2.0)
        parts.append(Part(pose.box([arm / 2, -height + 0.1, 0], [arm / 2, 0.06, 0.08]), look))
        parts.append(Part(pose.box([arm - 0.2, -height + 0.02, 0], [0.3, 0.07, 0.15]), look))
    else:
        parts.append(Part(pose.box([0, -height + 0.35, r + 0.03], [0.35, 0.3, 0.02]), look))
    return Thing("pole", parts)


def _tree(rng, st: Street, label: int) -> Thing | None:
    spot = _kerbside(rng, st, st.walk * rng.uniform(0.5, 0.8) if rng.uniform() < 0.6 else st.walk + rng.uniform(0.5, 3.0), 1.0)
    if spot is None:
        return None
    pose = st.pose(*spot)
    trunk, crown = rng.uniform(1.8, 3.5), np.array([rng.uniform(1.2, 3.0), rng.uniform(1.2, 3.0), rng.uniform(1.2, 3.0)])
    return Thing("vegetation", [
        Part(pose.cylinder(0.0, 0.0, trunk + 0.5 * crown[1], 0.0, rng.uniform(0.1, 0.25)), _solid(rng, label, BARK_LOOK)),
        Part(pose.ellipsoid([0, -trunk - crown[1], 0], crown), _solid(rng, label, TREE_LOOK)),
    ])


def _bush(rng, st: Street, label: int) -> Thing | None:
    spot = _kerbside(rng, st, st.walk + rng.uniform(0.3, 2.5), 1.0)
    if spot is None:
        return None
    radii = np.array([rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.9), rng.uniform(0.4, 1.2)])
    return Thing("vegetation", [Part(st.pose(*spot).ellipsoid([0, -0.5 * radii[1], 0], radii), _solid(rng, label, TREE_LOOK))])


def _wall(rng, st: Street, label: int) -> Thing | None:
    length = rng.uniform(4.0, 15.0)
    spot = _kerbside(rng, st, st.walk + 0.2, 0.4, along=length / 2)
    if spot is None:
        return None
    height, half_t = rng.uniform(0.6, 2.2), rng.uniform(0.1, 0.18)
    pose = st.pose(*spot)
    return Thing("wall", [Part(pose.box([0, -height / 2, 0], [half_t, height / 2, length / 2]), _solid(rng, label, WALL_LOOK))])


def _car(rng, st: Street, label: int) -> Thing | None:
    length, half_w = rng.uniform(3.8, 4.9), rng.uniform(0.82, 0.97)
    for _ in range(30):
        lane = rng.choice([0.5, 0.5, 0.85]) * st.road_half * rng.choice([-1.0, 1.0])
        s = rng.uniform(-st.half_length, st.half_length)
        if st.placer.free(lane, s, length / 2, gap=0.5):
            st.placer.claim(lane, s, length / 2)
            break
    else:
        return None
    pose = st.pose(lane, s, (0.0 if lane > 0 else np.pi) + rng.normal(0.0, 0.05))
    body = _solid(rng, label, CAR_LOOK)
    glass = Solid(label, random_material(rng, ("dark",), ("plain",)))
    tyre = Solid(label, random_material(rng, ("dark",), ("mottled",)))
    top, roof = rng.uniform(0.95, 1.15), rng.uniform(1.4, 1.65)
    cabin = rng.uniform(0.45, 0.6) * length / 2
    return Thing("car", [
        Part(pose.box([0, -(0.3 + top) / 2, 0], [half_w, (top - 0.3) / 2, length / 2]), body),
        Part(pose.box([0, -(top + roof) / 2, -0.1 * length], [half_w - 0.08, (roof - top) / 2, cabin]), glass),
        Part(pose.box([0, -0.32, length / 2 - 0.8], [half_w + 0.02, 0.32, 0.32]), tyre),
        Part(pose.box([0, -0.32, -length / 2 + 0.8], [half_w + 0.02, 0.32, 0.32]), tyre),
    ])


def _pedestrian(rng, st: Street, label: int) -> Thing | None:
    for _ in range(30):
        u = rng.choice([-1.0, 1.0]) * (st.road_half + rng.uniform(0.3, st.walk - 0.3))
        if rng.uniform() < 0.2:
            u = rng.uniform(-st.road_half, st.road_half)
        s = rng.uniform(-st.half_length, st.half_length) * 0.6
        if st.placer.free(u, s, 0.4):
            st.placer.claim(u, s, 0.4)
            return person(rng, st.pose(u, s, rng.uniform(-np.pi, np.pi)), label)
    return None


def build_outdoor(rng: np.random.Generator, ids: dict[str, int]) -> Layout:
    """A random street scene; ``ids`` maps outdoor class names to label ids."""
    road_half, walk = rng.uniform(3.0, 7.5), rng.uniform(1.5, 4.0)
    half_length = rng.uniform(45.0, 90.0)
    cross_s = rng.uniform(-0.5, 0.5) * half_length if rng.uniform() < 0.4 else None
    st = Street(heading=rng.uniform(-np.pi, np.pi), road_half=road_half, walk=walk, half_length=half_length,
                cross_s=cross_s, cross_half=rng.uniform(3.0, 6.0), placer=Placer(), frontage={-1.0: [], 1.0: []})
    ground = StreetGround(
        pose_yaw=st.heading, road_half=road_half, walk=walk, cross_s=cross_s, cross_half=st.cross_half,
        road=random_material(rng, *ROAD_LOOK), sidewalk=random_material(rng, *SIDEWALK_LOOK),
        terrain=random_material(rng, *TERRAIN_LOOK),
        marking=(0.85, 0.85, 0.8) if rng.uniform() < 0.7 else (0.85, 0.7, 0.2),
        ids=(ids["road"], ids["sidewalk"], ids["terrain"]))
    things = [Thing("ground", [Part(HorizontalPlane(0.0, -1, GROUND_EXTENT), ground)])]
    things += _buildings(rng, st, ids)
    makers = [(rng.integers(1, 4), _wall, "wall"), (rng.integers(2, 8), _pole, "pole"),
              (rng.integers(2, 8), _tree, "vegetation"), (rng.integers(0, 5), _bush, "vegetation"),
              (rng.integers(2, 7), _car, "car"), (rng.integers(2, 8), _pedestrian, "person")]
    for count, make, name in makers:
        for _ in range(int(count)):
            thing = make(rng, st, ids[name])
            if thing is not None:
                things.append(thing)
    lighting = outdoor_lighting(rng)
    region = Region(0.0, 0.0, road_half + walk - 0.4, 0.6 * half_length, st.heading)
    meta = {"street": {"heading_rad": round(st.heading, 4), "road_width_m": round(2 * road_half, 3),
                       "sidewalk_width_m": round(walk, 3), "length_m": round(2 * half_length, 1),
                       "cross_street": cross_s is not None}}
    return Layout(things=things, lighting=lighting, sky=random_sky(rng, lighting), miss_label=ids["sky"],
                  region=region, height_range=(1.2, 2.5), meta=meta)
