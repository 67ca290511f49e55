"""The procedural 360° world: class tables, ``World.cast`` and ``make_world``.

Convention: world frame as the OpenCV camera at identity rotation: x right/east, y down,
z forward/north. The ground/floor is the plane y = 0 and "up" is -y, so a camera 1.5 m
above the floor sits at y = -1.5. Ranges ``t`` are metres along unit rays.

A world is a list of things (object instances made of primitive parts). ``cast`` works in
chunks of rays: one matrix product tests every thing's bounding sphere against every ray,
things are visited near to far and skipped where a nearer hit is already known, and only
the winning part of each ray is shaded at the end, grouped by part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from panoedge.errors import UsageError, unknown_name
from panoedge.synth.indoor import build_indoor
from panoedge.synth.outdoor import build_outdoor
from panoedge.synth.scene import Layout

FAMILIES = ("indoor", "outdoor")
INDOOR_CLASSES = ("wall", "floor", "ceiling", "door", "window", "table", "chair", "sofa", "shelf",
                  "person", "clutter")
OUTDOOR_CLASSES = ("road", "sidewalk", "building", "wall", "pole", "vegetation", "terrain", "sky",
                   "person", "car")

_CLASSES = {"indoor": INDOOR_CLASSES, "outdoor": OUTDOOR_CLASSES}
_COLORS = {
    "indoor": ((174, 199, 232), (152, 223, 138), (255, 187, 120), (214, 39, 40), (23, 190, 207),
               (255, 127, 14), (188, 189, 34), (140, 86, 75), (148, 103, 189), (220, 20, 60),
               (227, 119, 194)),
    "outdoor": ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (153, 153, 153),
                (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (0, 0, 142)),
}
_BUILDERS = {"indoor": build_indoor, "outdoor": build_outdoor}

CHUNK = 65536
"""Rays cast together; bounds the temporary memory to a few tens of MB."""

SPREAD_MAX = 0.5
"""Metres: per-ray origins closer than this to their mean share one bounding-sphere test."""

CLEARANCE = 0.3
"""Metres kept free around a camera and the column below it (a robot's body)."""


def _check_family(family: str) -> None:
    if family not in _CLASSES:
        raise unknown_name("world family", family, FAMILIES)


def class_names(family: str) -> tuple[str, ...]:
    """Class names of ``family`` in label-id order."""
    _check_family(family)
    return _CLASSES[family]


def class_colors(family: str) -> np.ndarray:
    """Display colours (K, 3) uint8 RGB, one per class of ``family``, in label-id order."""
    _check_family(family)
    return np.array(_COLORS[family], dtype=np.uint8)


@dataclass(frozen=True)
class Hit:
    """What N rays see.

    ``t`` (N,) float32 range in metres (``inf`` where nothing is hit); ``label`` (N,) uint8
    class id (the family's sky class, or 255 where an indoor ray escapes); ``rgb`` (N, 3)
    float32 in [0, 1] display RGB (gamma-encoded, write ``round(255 * rgb)`` as is), a function
    of the hit point only (of the direction for sky); ``normal`` (N, 3) float32 outward
    unit surface normal in the world frame (zeros where nothing is hit).
    """

    t: np.ndarray
    label: np.ndarray
    rgb: np.ndarray
    normal: np.ndarray


class World:
    """A deterministic scene of family ``family`` built from ``seed``; see ``make_world``."""

    def __init__(self, family: str, seed: int, layout: Layout):
        self.family = family
        self.seed = seed
        self.classes = class_names(family)
        self._layout = layout
        self._parts = [part for thing in layout.things for part in thing.parts]
        first = np.cumsum([0] + [len(thing.parts) for thing in layout.things])
        self._thing_parts = [range(first[i], first[i + 1]) for i in range(len(layout.things))]
        self._centers = np.array([thing.center for thing in layout.things])
        self._radii = np.array([thing.radius for thing in layout.things]) + 1e-3
        self._solids = [part.shape for part in self._parts if part.shape.solid]
        self._default: np.ndarray | None = None

    # ---------------------------------------------------------------- casting
    def cast(self, origins, dirs) -> Hit:
        """Cast rays ``origins + t * dirs`` into the world.

        ``origins`` (3,) or (N, 3) float64 world metres; ``dirs`` (N, 3) float64 unit rays in
        the world frame. Any N; processed in chunks of ``CHUNK`` rays.
        """
        d = np.asarray(dirs, dtype=np.float64)
        o = np.asarray(origins, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != 3:
            raise UsageError(f"dirs must have shape (N, 3), got {d.shape}")
        if o.shape != (3,) and o.shape != d.shape:
            raise UsageError(f"origins must have shape (3,) or {d.shape}, got {o.shape}")
        if len(d) and np.abs(np.einsum("ij,ij->i", d, d) - 1.0).max() > 1e-4:
            raise UsageError("dirs must be unit vectors (t is the range along each ray)")
        n = len(d)
        t = np.empty(n, np.float32)
        label = np.empty(n, np.uint8)
        rgb = np.empty((n, 3), np.float32)
        normal = np.empty((n, 3), np.float32)
        for s in range(0, n, CHUNK):
            e = min(s + CHUNK, n)
            oc = o if o.ndim == 1 else o[s:e]
            t_c, part = self._trace(oc, d[s:e])
            t[s:e] = t_c
            label[s:e], rgb[s:e], normal[s:e] = self._shade(oc, d[s:e], t_c, part)
        return Hit(t=t, label=label, rgb=rgb, normal=normal)

    def _candidates(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays that may hit each thing's bounding sphere: mask (T, k) bool, and a lower bound
        (T,) on the range at which any of these rays can reach each thing.

        Rays from one origin (or origins within ``SPREAD_MAX`` of their mean, as for a camera
        rig) are tested against spheres grown by that spread with one float32 matrix product;
        widely spread origins get an exact per-ray test in float64.
        """
        if o.ndim == 1:
            base, spread = o, 0.0
        else:
            base = o.mean(axis=0)
            spread = float(np.sqrt(((o - base) ** 2).sum(axis=1).max()))
            if spread > SPREAD_MAX:
                return self._candidates_per_ray(o, d)
        rel = self._centers - base
        dist = np.sqrt((rel * rel).sum(axis=1))
        radii = self._radii + spread
        with np.errstate(invalid="ignore"):
            # A ray meets a sphere it starts outside of iff its projection of the centre reaches
            # sqrt(dist^2 - r^2); the 1e-6 relative slack covers float32 rounding.
            thresh = np.where(dist <= radii, -np.inf, np.sqrt(np.maximum(dist**2 - radii**2, 0.0)) - 1e-6 * dist)
        along = rel.astype(np.float32) @ d.astype(np.float32).T
        mask = along >= thresh.astype(np.float32)[:, None]
        return mask, np.nan_to_num(np.maximum(dist - radii, 0.0), nan=0.0)

    def _candidates_per_ray(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_candidates`` for rays with far-apart origins (k, 3): the exact test per ray pair."""
        r2 = self._radii[:, None] ** 2
        along = self._centers @ d.T - (o * d).sum(axis=1)
        dist2 = (self._centers**2).sum(axis=1)[:, None] - 2.0 * self._centers @ o.T + (o * o).sum(axis=1)
        with np.errstate(invalid="ignore"):
            mask = (dist2 <= r2) | ((along > 0) & (along * along >= dist2 - r2))
            near = np.maximum(np.sqrt(np.maximum(dist2.min(axis=1), 0.0)) - self._radii, 0.0)
        return mask, np.nan_to_num(near, nan=0.0)

    def _trace(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest range (k,) float64 and winning part id (k,) int (-1: nothing) per ray."""
        k = len(d)
        t_best = np.full(k, np.inf)
        part = np.full(k, -1, np.int64)
        mask, near = self._candidates(o, d)
        for i in np.argsort(near, kind="stable"):  # near to far, so nearer hits cull later things
            idx = np.flatnonzero(mask[i])
            idx = idx[t_best[idx] > near[i]]
            if idx.size == 0:
                continue
            o_sub = o if o.ndim == 1 else o[idx]
            d_sub = d[idx]
            for pid in self._thing_parts[i]:
                t = self._parts[pid].shape.intersect(o_sub, d_sub)
                better = t < t_best[idx]
                if better.any():
                    won = idx[better]
                    t_best[won] = t[better]
                    part[won] = pid
        return t_best, part

    def _shade(self, o, d, t, part) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, RGB and normals of rays whose nearest part is known, grouped by part."""
        k = len(d)
        label = np.full(k, self._layout.miss_label, np.uint8)
        rgb = np.zeros((k, 3), np.float32)
        normal = np.zeros((k, 3), np.float32)
        order = np.argsort(part, kind="stable")
        ids, first, counts = np.unique(part[order], return_index=True, return_counts=True)
        for pid, f, c in zip(ids, first, counts):
            rows = order[f:f + c]
            if pid < 0:
                if self._layout.sky is not None:
                    rgb[rows] = self._layout.sky.rgb(d[rows])
                continue
            p = (o if o.ndim == 1 else o[rows]) + t[rows, None] * d[rows]
            shape, paint = self._parts[pid].shape, self._parts[pid].paint
            p_local, n_local, n_world = shape.frame(p)
            label[rows], albedo = paint.paint(p, p_local, n_local)
            rgb[rows] = self._layout.lighting.apply(albedo, n_world)
            normal[rows] = n_world
        return label, rgb, normal

    # ---------------------------------------------------------------- cameras
    def is_free(self, points: np.ndarray, clearance: float = CLEARANCE) -> np.ndarray:
        """(m,) bool: a camera at each point (m, 3) has ``clearance`` m around it and the column below."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        column = np.repeat(points[:, None, :], 25, axis=1)  # (m, 25, 3): camera down to the ground
        column[:, :, 1] *= np.linspace(0.0, 1.0, 25)
        flat = column.reshape(-1, 3)
        blocked = np.zeros(len(flat), dtype=bool)
        for shape in self._solids:
            blocked |= shape.blocks(flat, clearance)
        return ~blocked.reshape(len(points), -1).any(axis=1) & (points[:, 1] < 0)

    def camera_positions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) float64 camera centres in free space at the family's camera heights."""
        if n < 0:
            raise UsageError(f"n must be >= 0, got {n}")
        lo, hi = self._layout.height_range
        found: list[np.ndarray] = []
        batch = max(4 * n, 64)
        for _ in range(200):
            if sum(len(f) for f in found) >= n:
                break
            xz = self._layout.region.sample(rng, batch)
            pts = np.stack([xz[:, 0], -rng.uniform(lo, hi, batch), xz[:, 1]], 1)
            found.append(pts[self.is_free(pts)])
        pts = np.concatenate(found) if found else np.zeros((0, 3))
        if len(pts) < n:
            raise RuntimeError(f"{self.family} world {self.seed}: found {len(pts)} free camera spots of {n}")
        return pts[:n]

    def default_camera(self) -> np.ndarray:
        """A deterministic free camera centre (3,).

        Of 64 free candidates drawn from the seed, the one nearest the middle of the camera
        region among those with the most room around them (2 m, 1 m, else the minimum).
        """
        if self._default is None:
            cands = self.camera_positions(64, np.random.default_rng([self.seed, 0xCA3]))
            for clearance in (2.0, 1.0, CLEARANCE):
                roomy = cands[self.is_free(cands, clearance)]
                if len(roomy):
                    break
            region = self._layout.region
            self._default = roomy[np.hypot(roomy[:, 0] - region.x, roomy[:, 2] - region.z).argmin()]
        return self._default.copy()

    def to_dict(self) -> dict:
        """JSON-able description: family, seed, classes, object counts per class, layout facts."""
        counts = Counter(thing.kind for thing in self._layout.things)
        return {"family": self.family, "seed": self.seed, "classes": list(self.classes),
                "objects": dict(sorted(counts.items())), "n_primitives": len(self._parts),
                "lighting": self._layout.lighting.to_dict(), **self._layout.meta}


def make_world(family: str, seed: int) -> World:
    """The world of ``family`` ("indoor" or "outdoor") built deterministically from ``seed``."""
    _check_family(family)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    ids = {name: i for i, name in enumerate(_CLASSES[family])}
    layout = _BUILDERS[family](np.random.default_rng(seed), ids)
    return World(family, int(seed), layout)
