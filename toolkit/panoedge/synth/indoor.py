"""Indoor layouts: a furnished room of random size and shape.

The room spans x in [-W/2, W/2], z in [-D/2, D/2], floor y = 0, ceiling y = -H (y down).
It may be L-shaped (a solid block fills one corner) or split by a partial wall. Doors and
windows are thin boxes standing a few centimetres out of the walls; sofas and shelves
stand against walls, tables with chairs, people and clutter anywhere free.
"""

from __future__ import annotations

import numpy as np

from panoedge.synth.lighting import indoor_lighting
from panoedge.synth.primitives import Box, Cylinder, Ellipsoid, Enclosure, HorizontalPlane
from panoedge.synth.scene import Layout, Part, Placer, Pose, Region, Solid, Thing, person
from panoedge.synth.textures import random_material

WALL_LOOK = (("neutral", "neutral", "pastel", "bold", "wood"), ("plain", "plain", "mottled", "stripes", "bricks", "tiles"))
FLOOR_LOOK = (("wood", "neutral", "earth", "dark", "bold"), ("grain", "tiles", "plain", "mottled"))
CEILING_LOOK = (("neutral", "neutral", "pastel"), ("plain", "plain", "tiles"))
DOOR_LOOK = (("wood", "neutral", "bold", "dark", "pastel"), ("grain", "plain", "mottled"))
GLASS_LOOK = (("pastel", "neutral"), ("mottled", "plain"))
FRAME_LOOK = (("neutral", "wood", "dark"), ("plain", "grain"))
WOOD_LOOK = (("wood", "neutral", "dark", "bold", "pastel"), ("grain", "plain", "mottled"))
SOFA_LOOK = (("bold", "neutral", "pastel", "dark", "earth"), ("fabric", "plain", "mottled"))
CLUTTER_LOOK = (("bold", "neutral", "pastel", "dark", "wood", "earth", "green"), ("plain", "stripes", "mottled", "tiles"))

# Inward normal (x, z) and heading of something with its back to each wall: x0, x1, z0, z1.
_WALLS = (((1.0, 0.0), np.pi / 2), ((-1.0, 0.0), -np.pi / 2), ((0.0, 1.0), 0.0), ((0.0, -1.0), np.pi))


class Room:
    """The room's extent, its solid blocks, the floor discs and wall spans already taken."""

    def __init__(self, width: float, depth: float, height: float):
        self.x1, self.z1, self.height = width / 2, depth / 2, height
        self.blockers: list[tuple[float, float, float, float]] = []  # x-z rectangles (xa, xb, za, zb)
        self.placer = Placer()
        self.spans: dict[int, list[tuple[float, float]]] = {wall: [] for wall in range(4)}

    def in_bounds(self, x: float, z: float, hx: float, hz: float) -> bool:
        """Whether the x-z rectangle of half sizes (hx, hz) about (x, z) is inside and clear of blocks."""
        if abs(x) + hx > self.x1 + 1e-9 or abs(z) + hz > self.z1 + 1e-9:
            return False
        return not any(xa < x + hx and x - hx < xb and za < z + hz and z - hz < zb
                       for xa, xb, za, zb in self.blockers)

    def place_free(self, rng: np.random.Generator, r: float, tries: int = 40):
        """A random (x, z) whose disc of radius r is in the room and clear; claimed, or None."""
        for _ in range(tries):
            x, z = rng.uniform(-self.x1 + r, self.x1 - r), rng.uniform(-self.z1 + r, self.z1 - r)
            if self.in_bounds(x, z, r, r) and self.placer.free(x, z, r):
                self.placer.claim(x, z, r)
                return x, z
        return None

    def place_at_wall(self, rng: np.random.Generator, half_along: float, depth: float, floor: bool,
                      span: bool, tries: int = 40) -> Pose | None:
        """A pose on a wall facing into the room for something ``2 half_along`` wide.

        ``depth`` m in front of it must be in the room; ``floor`` claims that strip of floor,
        ``span`` claims the stretch of wall (doors, windows and shelves never overlap).
        """
        for _ in range(tries):
            wall = int(rng.integers(4))
            (nx, nz), heading = _WALLS[wall]
            along = self.z1 if nx else self.x1
            if along - half_along - 0.1 <= -along + half_along + 0.1:
                continue
            s = rng.uniform(-along + half_along + 0.1, along - half_along - 0.1)
            wx, wz = (-nx * self.x1, s) if nx else (s, -nz * self.z1)
            cx, cz = wx + nx * depth / 2, wz + nz * depth / 2
            hx, hz = (depth / 2, half_along) if nx else (half_along, depth / 2)
            r = float(np.hypot(half_along, depth / 2))
            if not self.in_bounds(cx, cz, hx, hz):
                continue
            if floor and not self.placer.free(cx, cz, r, gap=0.05):
                continue
            if span and any(a < s + half_along and s - half_along < b for a, b in self.spans[wall]):
                continue
            if floor:
                self.placer.claim(cx, cz, r)
            if span:
                self.spans[wall].append((s - half_along, s + half_along))
            return Pose(wx, wz, heading)
        return None


def _solid(rng, label: int, look) -> Solid:
    return Solid(label, random_material(rng, *look))


def _shell(rng, room: Room, ids) -> tuple[list[Thing], str]:
    """Floor, ceiling, walls and, sometimes, an L-shape block or a partition wall."""
    x1, z1, h = room.x1, room.z1, room.height
    wall = _solid(rng, ids["wall"], WALL_LOOK)
    things = [Thing("floor", [Part(HorizontalPlane(0.0, -1), _solid(rng, ids["floor"], FLOOR_LOOK))]),
              Thing("ceiling", [Part(HorizontalPlane(-h, 1), _solid(rng, ids["ceiling"], CEILING_LOOK))]),
              Thing("wall", [Part(Enclosure(-x1, x1, -z1, z1), wall)])]
    shape = str(rng.choice(["rect", "L", "partition"], p=[0.4, 0.3, 0.3]))
    if shape == "rect":
        return things, shape
    if shape == "L":
        sx, sz = rng.choice([-1.0, 1.0], 2)
        xa, xb = sorted([sx * (x1 + 0.1), sx * x1 * (1 - 2 * rng.uniform(0.25, 0.45))])
        za, zb = sorted([sz * (z1 + 0.1), sz * z1 * (1 - 2 * rng.uniform(0.25, 0.45))])
    else:
        side, reach, at = rng.choice([-1.0, 1.0]), rng.uniform(0.35, 0.6), rng.uniform(-0.4, 0.4)
        if rng.uniform() < 0.5:
            (xa, xb), (za, zb) = sorted([side * (x1 + 0.1), side * x1 * (1 - 2 * reach)]), (z1 * at - 0.06, z1 * at + 0.06)
        else:
            (za, zb), (xa, xb) = sorted([side * (z1 + 0.1), side * z1 * (1 - 2 * reach)]), (x1 * at - 0.06, x1 * at + 0.06)
    box = Box([(xa + xb) / 2, -h / 2, (za + zb) / 2], [(xb - xa) / 2, h / 2 + 0.01, (zb - za) / 2])
    look = wall if rng.uniform() < 0.7 else _solid(rng, ids["wall"], WALL_LOOK)
    things.append(Thing("wall", [Part(box, look)]))
    room.blockers.append((xa, xb, za, zb))
    return things, shape


def _door(rng, room: Room, label: int) -> Thing | None:
    half_w, height = rng.uniform(0.4, 0.5), rng.uniform(2.0, min(2.2, room.height - 0.15))
    pose = room.place_at_wall(rng, half_w + 0.1, 1.0, floor=True, span=True)
    if pose is None:
        return None
    leaf, frame = _solid(rng, label, DOOR_LOOK), _solid(rng, label, FRAME_LOOK)
    side = rng.choice([-1.0, 1.0])
    return Thing("door", [
        Part(pose.box([0, -(height + 0.06) / 2, 0], [half_w + 0.07, (height + 0.06) / 2, 0.025]), frame),
        Part(pose.box([0, -height / 2, 0], [half_w, height / 2, 0.045]), leaf),
        Part(pose.box([side * (half_w - 0.09), -1.0, 0.06], [0.06, 0.012, 0.025]), frame),
    ])


def _window(rng, room: Room, label: int) -> Thing | None:
    half_w, sill = rng.uniform(0.4, 1.1), rng.uniform(0.7, 1.0)
    top = min(sill + rng.uniform(0.9, 1.6), room.height - 0.2)
    pose = room.place_at_wall(rng, half_w + 0.05, 0.1, floor=False, span=True)
    if pose is None:
        return None
    glass, frame = _solid(rng, label, GLASS_LOOK), _solid(rng, label, FRAME_LOOK)
    mid, half_h, bar = -(sill + top) / 2, (top - sill) / 2, rng.uniform(0.03, 0.06)
    parts = [Part(pose.box([0, mid, 0], [half_w, half_h, 0.02]), glass)]
    for sign in (-1, 1):
        parts.append(Part(pose.box([sign * (half_w - bar), mid, 0], [bar, half_h, 0.045]), frame))
        parts.append(Part(pose.box([0, mid + sign * (half_h - bar), 0], [half_w, bar, 0.045]), frame))
    if half_w > 0.6:
        parts.append(Part(pose.box([0, mid, 0], [bar * 0.7, half_h, 0.04]), frame))
    return Thing("window", parts)


def _sofa(rng, room: Room, label: int) -> Thing | None:
    half_l, half_d = rng.uniform(0.8, 1.2), rng.uniform(0.4, 0.48)
    pose = room.place_at_wall(rng, half_l, 2 * half_d + 0.5, floor=True, span=False)
    if pose is None:
        return None
    look = _solid(rng, label, SOFA_LOOK)
    seat, back, arm = rng.uniform(0.38, 0.46), rng.uniform(0.75, 0.95), rng.uniform(0.55, 0.68)
    back_t, arm_w = rng.uniform(0.15, 0.25), rng.uniform(0.12, 0.2)
    z = half_d + 0.02
    return Thing("sofa", [
        Part(pose.box([0, -seat / 2, z], [half_l, seat / 2, half_d]), look),
        Part(pose.box([0, -back / 2, z - half_d + back_t / 2], [half_l, back / 2, back_t / 2]), look),
        Part(pose.box([-half_l + arm_w / 2, -arm / 2, z], [arm_w / 2, arm / 2, half_d]), look),
        Part(pose.box([half_l - arm_w / 2, -arm / 2, z], [arm_w / 2, arm / 2, half_d]), look),
    ])


def _shelf(rng, room: Room, ids) -> Thing | None:
    half_w, half_d = rng.uniform(0.4, 0.8), rng.uniform(0.15, 0.2)
    height = rng.uniform(1.1, min(2.2, room.height - 0.2))
    pose = room.place_at_wall(rng, half_w, 2 * half_d + 0.4, floor=True, span=True)
    if pose is None:
        return None
    look, t, z = _solid(rng, ids["shelf"], WOOD_LOOK), 0.018, half_d + 0.01
    parts = [Part(pose.box([sx * (half_w - t), -height / 2, z], [t, height / 2, half_d]), look) for sx in (-1, 1)]
    parts.append(Part(pose.box([0, -height / 2, 0.015], [half_w, height / 2, 0.005]), look))
    for level in np.linspace(0.05, height - t, int(rng.integers(3, 6))):
        parts.append(Part(pose.box([0, -level, z], [half_w, t, half_d]), look))
        if rng.uniform() < 0.6 and level < height - 0.3:
            fill, tall = rng.uniform(0.3, 0.9) * (half_w - t), rng.uniform(0.15, 0.28)
            books = _solid(rng, ids["clutter"], CLUTTER_LOOK)
            at = rng.uniform(-1, 1) * (half_w - t - fill)
            parts.append(Part(pose.box([at, -level - t - tall / 2, z], [fill, tall / 2, half_d * 0.8]), books))
    return Thing("shelf", parts)


def _chair(rng, pose: Pose, label: int) -> Thing:
    """A chair facing local +z: seat, back rest and four legs."""
    look = _solid(rng, label, WOOD_LOOK if rng.uniform() < 0.6 else SOFA_LOOK)
    seat, half, back = rng.uniform(0.42, 0.48), rng.uniform(0.19, 0.24), rng.uniform(0.35, 0.5)
    leg, inset = rng.uniform(0.015, 0.025), half - 0.03
    parts = [Part(pose.box([0, -seat, 0], [half, 0.02, half]), look),
             Part(pose.box([0, -seat - back / 2, -half + 0.015], [half, back / 2, 0.015]), look)]
    parts += [Part(pose.box([sx * inset, -(seat - 0.02) / 2, sz * inset], [leg, (seat - 0.02) / 2, leg]), look)
              for sx in (-1, 1) for sz in (-1, 1)]
    return Thing("chair", parts)


def _table_set(rng, room: Room, ids, tops: list) -> list[Thing]:
    """A table (rectangular on four legs, or round on one) with up to four chairs around it."""
    height, top_t = rng.uniform(0.68, 0.78), rng.uniform(0.025, 0.05)
    round_top = rng.uniform() < 0.3
    half_l, half_w = (rng.uniform(0.4, 0.65),) * 2 if round_top else (rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.5))
    n_chairs = int(rng.integers(0, 5))
    spot = room.place_free(rng, np.hypot(half_l, half_w) + (0.45 if n_chairs else 0.0))
    if spot is None:
        return []
    yaw = rng.uniform(-np.pi, np.pi) if rng.uniform() < 0.5 else rng.integers(4) * np.pi / 2
    pose = Pose(spot[0], spot[1], yaw)
    look = _solid(rng, ids["table"], WOOD_LOOK)
    if round_top:
        c = pose.point([0, 0, 0])
        parts = [Part(Cylinder(c[0], c[2], -height, -height + top_t, half_l), look),
                 Part(Cylinder(c[0], c[2], -height + top_t, 0.0, 0.04), look),
                 Part(Cylinder(c[0], c[2], -0.03, 0.0, 0.3), look)]
    else:
        leg = rng.uniform(0.02, 0.04)
        parts = [Part(pose.box([0, -height + top_t / 2, 0], [half_l, top_t / 2, half_w]), look)]
        parts += [Part(pose.box([sx * (half_l - 0.06), -(height - top_t) / 2, sz * (half_w - 0.06)],
                                [leg, (height - top_t) / 2, leg]), look) for sx in (-1, 1) for sz in (-1, 1)]
    tops.append((pose, half_l * (0.7 if round_top else 1.0), half_w * (0.7 if round_top else 1.0), height))
    things = [Thing("table", parts)]
    sides = [(0.0, -half_w - 0.25, 0.0), (0.0, half_w + 0.25, np.pi), (-half_l - 0.25, 0.0, np.pi / 2),
             (half_l + 0.25, 0.0, -np.pi / 2)]
    for i in rng.permutation(4)[:n_chairs]:
        lx, lz, turn = sides[i]
        c = pose.point([lx, 0, lz])
        chair_pose = Pose(c[0], c[2], yaw + turn + rng.uniform(-0.3, 0.3))
        things.append(_chair(rng, chair_pose, ids["chair"]))
    return things


def _clutter(rng, room: Room, label: int, tops: list) -> Thing | None:
    """A small box, cylinder or ball on the floor or on a table top."""
    size = rng.uniform(0.05, 0.25)
    if tops and rng.uniform() < 0.5:
        pose, half_l, half_w, base = tops[rng.integers(len(tops))]
        c = pose.point([rng.uniform(-1, 1) * max(half_l - size, 0), 0, rng.uniform(-1, 1) * max(half_w - size, 0)])
        size = min(size, 0.15)
    else:
        spot = room.place_free(rng, size * 1.5)
        if spot is None:
            return None
        c, base = np.array([spot[0], 0.0, spot[1]]), 0.0
    look = _solid(rng, label, CLUTTER_LOOK)
    kind = rng.integers(3)
    if kind == 0:
        tall = rng.uniform(0.5, 2.0) * size
        shape = Box([c[0], -base - tall, c[2]], [size, tall, size * rng.uniform(0.5, 1.0)], rng.uniform(-np.pi, np.pi))
    elif kind == 1:
        shape = Cylinder(c[0], c[2], -base - rng.uniform(1.0, 4.0) * size, -base, size * rng.uniform(0.5, 1.0))
    else:
        shape = Ellipsoid([c[0], -base - size, c[2]], size)
    return Thing("clutter", [Part(shape, look)])


def build_indoor(rng: np.random.Generator, ids: dict[str, int]) -> Layout:
    """A random furnished room; ``ids`` maps indoor class names to label ids."""
    room = Room(rng.uniform(4.0, 12.0), rng.uniform(4.0, 12.0), rng.uniform(2.4, 3.5))
    things, shape = _shell(rng, room, ids)
    tops: list = []
    crowd = float(np.clip(4 * room.x1 * room.z1 / 35.0, 0.7, 2.0))  # more things in bigger rooms
    makers = [
        (rng.integers(1, 3), lambda: _door(rng, room, ids["door"])),
        (rng.integers(1, 4) * crowd, lambda: _window(rng, room, ids["window"])),
        (rng.integers(1, 3) * crowd, lambda: _shelf(rng, room, ids)),
        (rng.choice([0, 1, 1, 1, 2]) * crowd, lambda: _sofa(rng, room, ids["sofa"])),
        (rng.integers(1, 3) * crowd, lambda: _table_set(rng, room, ids, tops)),
        (rng.integers(0, 3) * crowd, lambda: _free_chair(rng, room, ids["chair"])),
        (rng.integers(0, 4) * crowd, lambda: _free_person(rng, room, ids["person"])),
        (rng.integers(3, 10) * crowd, lambda: _clutter(rng, room, ids["clutter"], tops)),
    ]
    for count, make in makers:
        for _ in range(int(round(count))):
            made = make()
            things.extend(made if isinstance(made, list) else [made] if made is not None else [])
    region = Region(0.0, 0.0, room.x1 - 0.35, room.z1 - 0.35, 0.0)
    meta = {"room_size_m": [round(2 * room.x1, 3), round(2 * room.z1, 3), round(room.height, 3)],
            "room_shape": shape}
    return Layout(things=things, lighting=indoor_lighting(rng), sky=None, miss_label=255,
                  region=region, height_range=(1.0, 1.8), meta=meta)


def _free_chair(rng, room: Room, label: int) -> Thing | None:
    spot = room.place_free(rng, 0.35)
    return None if spot is None else _chair(rng, Pose(spot[0], spot[1], rng.uniform(-np.pi, np.pi)), label)


def _free_person(rng, room: Room, label: int) -> Thing | None:
    spot = room.place_free(rng, 0.35)
    return None if spot is None else person(rng, Pose(spot[0], spot[1], rng.uniform(-np.pi, np.pi)), label)
