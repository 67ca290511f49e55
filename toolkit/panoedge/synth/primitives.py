"""Ray-primitive intersection for the procedural world, vectorised over rays.

Convention: world frame as the OpenCV camera at identity rotation: x right/east,
y down, z forward/north. The ground is the plane y = 0 and "up" is -y, so heights
above the ground are negative y values.

Every shape answers the same three questions, each vectorised over k rays or points:

- ``intersect(o, d)``: range ``t`` (k,) float64 of the first hit of ``o + t d`` seen from
  outside the shape, ``np.inf`` where the ray misses. ``o`` is (3,) (one origin for all
  rays) or (k, 3); ``d`` is (k, 3) unit directions. Hits closer than ``T_MIN`` are ignored.
- ``frame(p)``: for hit points p (k, 3), the point in the shape's own frame (k, 3) float32
  (texture coordinates), the outward normal in that frame and in the world (k, 3) float32.
- ``blocks(p, margin)``: (k,) bool, whether a point lies inside the solid grown by margin.

Each shape also carries a bounding sphere (``center`` (3,), ``radius``; ``inf`` for
unbounded shapes) used to reject rays cheaply before the exact test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

T_MIN = 1e-4
"""Smallest accepted range in metres: a ray never hits the surface it starts on."""


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the vertical (y) axis, (3, 3) float64, columns = local axes in world.

    Convention: the local +z axis points along world ``(sin yaw, 0, cos yaw)``, so yaw is a
    heading measured like longitude (``lon = atan2(x, z)``); ``p_world = R @ p_local``.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class Shape(ABC):
    """Base class: bounding sphere and the defaults of a non-solid shape."""

    center: np.ndarray
    radius: float
    solid = True

    @abstractmethod
    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Distance ``t`` along unit rays ``d`` from origins ``o`` to the first hit (inf if none)."""

    @abstractmethod
    def frame(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local coordinates, local normal and world normal of hit points ``p``."""

    def blocks(self, p: np.ndarray, margin: float) -> np.ndarray:
        return np.zeros(len(p), dtype=bool)


def _f32(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(a, dtype=np.float32) for a in arrays)


class Box(Shape):
    """A box with half sizes ``half`` (3,) about ``center``, turned by ``yaw`` about the y axis.

    Oriented boxes are handled by moving rays into the box frame and running the slab test.
    """

    def __init__(self, center, half, yaw: float = 0.0):
        self.c = np.asarray(center, dtype=np.float64)
        self.h = np.asarray(half, dtype=np.float64)
        self.yaw = float(yaw)
        self.R = yaw_matrix(self.yaw)
        self.aligned = abs(np.sin(self.yaw)) < 1e-12 and np.cos(self.yaw) > 0
        self.center = self.c
        self.radius = float(np.linalg.norm(self.h))

    def _local(self, v: np.ndarray) -> np.ndarray:
        return v if self.aligned else v @ self.R

    def intersect(self, o, d):
        ol = self._local(o - self.c)
        dl = self._local(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / dl
            t1 = (-self.h - ol) * inv
            t2 = (self.h - ol) * inv
        t_near = np.minimum(t1, t2).max(axis=-1)
        t_far = np.maximum(t1, t2).min(axis=-1)
        hit = (t_near <= t_far) & (t_near > T_MIN)
        return np.where(hit, t_near, np.inf)

    def frame(self, p):
        pl = self._local(p - self.c)
        rows = np.arange(len(p))
        axis = (np.abs(pl) / self.h).argmax(axis=1)
        nl = np.zeros_like(pl)
        nl[rows, axis] = np.sign(pl[rows, axis])
        nw = nl if self.aligned else nl @ self.R.T
        return _f32(pl, nl, nw)

    def blocks(self, p, margin):
        return np.all(np.abs(self._local(p - self.c)) <= self.h + margin, axis=1)


class Enclosure(Shape):
    """The walls of a room seen from inside: an axis-aligned rectangle in x-z, unbounded in y.

    Only rays starting inside the rectangle hit it (at their exit); normals point inwards.
    Floor and ceiling are separate ``HorizontalPlane`` shapes.
    """

    solid = False

    def __init__(self, x0: float, x1: float, z0: float, z1: float):
        self.x0, self.x1, self.z0, self.z1 = float(x0), float(x1), float(z0), float(z1)
        self.center = np.array([(x0 + x1) / 2, 0.0, (z0 + z1) / 2])
        self.radius = np.inf

    @staticmethod
    def _exit(o: np.ndarray, d: np.ndarray, lo: float, hi: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, (hi - o) / d, np.where(d < 0, (lo - o) / d, np.inf))

    def intersect(self, o, d):
        ox, oz = o[..., 0], o[..., 2]
        inside = (ox > self.x0) & (ox < self.x1) & (oz > self.z0) & (oz < self.z1)
        t = np.minimum(self._exit(ox, d[:, 0], self.x0, self.x1),
                       self._exit(oz, d[:, 2], self.z0, self.z1))
        return np.where(inside & (t > T_MIN), t, np.inf)

    def frame(self, p):
        gaps = np.stack([p[:, 0] - self.x0, self.x1 - p[:, 0], p[:, 2] - self.z0, self.z1 - p[:, 2]], 1)
        inward = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 1.0], [0, 0, -1.0]])
        n = inward[np.abs(gaps).argmin(axis=1)]
        return _f32(p, n, n)


class HorizontalPlane(Shape):
    """The one-sided plane y = ``y0`` facing ``facing`` (-1: faces up, a floor; +1: a ceiling).

    A ray hits it only from the side the normal points to. With ``extent`` the plane is a
    disc of that radius about the world origin (so a far horizon turns into sky).
    """

    solid = False

    def __init__(self, y0: float, facing: int, extent: float = np.inf):
        if facing not in (-1, 1):
            raise ValueError(f"facing must be -1 or +1, got {facing}")
        self.y0 = float(y0)
        self.facing = facing
        self.extent = float(extent)
        self.center = np.array([0.0, self.y0, 0.0])
        self.radius = np.inf

    def intersect(self, o, d):
        oy, dy = o[..., 1], d[:, 1]
        ok = ((oy - self.y0) * self.facing > 0) & (dy * self.facing < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.y0 - oy) / dy
            if np.isfinite(self.extent):
                x = o[..., 0] + t * d[:, 0]
                z = o[..., 2] + t * d[:, 2]
                ok &= x * x + z * z <= self.extent**2
        return np.where(ok & (t > T_MIN), t, np.inf)

    def frame(self, p):
        n = np.zeros_like(p)
        n[:, 1] = self.facing
        return _f32(p, n, n)


class Cylinder(Shape):
    """A capped vertical cylinder of radius ``r`` about (cx, cz), from y = ``y_top`` down to ``y_bot``."""

    def __init__(self, cx: float, cz: float, y_top: float, y_bot: float, r: float):
        if not y_top < y_bot:
            raise ValueError(f"y_top must be above (smaller than) y_bot, got {y_top}, {y_bot}")
        self.cx, self.cz, self.y_top, self.y_bot, self.r = map(float, (cx, cz, y_top, y_bot, r))
        self.center = np.array([self.cx, (self.y_top + self.y_bot) / 2, self.cz])
        self.radius = float(np.hypot(self.r, (self.y_bot - self.y_top) / 2))

    def intersect(self, o, d):
        ox, oy, oz = o[..., 0] - self.cx, o[..., 1], o[..., 2] - self.cz
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        a = dx * dx + dz * dz
        b = ox * dx + oz * dz
        c = ox * ox + oz * oz - self.r * self.r
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = c / (np.sqrt(np.maximum(disc, 0.0)) - b)  # near root, stable form
            y_side = oy + t_side * dy
            side = (c > 0) & (b < 0) & (disc >= 0) & (y_side >= self.y_top) & (y_side <= self.y_bot)
            cap_y = np.where(oy < self.y_top, self.y_top, np.where(oy > self.y_bot, self.y_bot, np.nan))
            t_cap = (cap_y - oy) / dy
            px, pz = ox + t_cap * dx, oz + t_cap * dz
            cap = (t_cap > T_MIN) & (px * px + pz * pz <= self.r * self.r)
        t = np.minimum(np.where(side, t_side, np.inf), np.where(cap, t_cap, np.inf))
        return np.where(t > T_MIN, t, np.inf)

    def frame(self, p):
        rel = p - np.array([self.cx, self.y_top, self.cz])
        rho = np.maximum(np.hypot(rel[:, 0], rel[:, 2]), 1e-12)
        gaps = np.stack([np.abs(rho - self.r), np.abs(p[:, 1] - self.y_top), np.abs(p[:, 1] - self.y_bot)], 1)
        which = gaps.argmin(axis=1)
        n = np.zeros_like(p)
        side = which == 0
        n[side, 0] = rel[side, 0] / rho[side]
        n[side, 2] = rel[side, 2] / rho[side]
        n[which == 1, 1] = -1.0
        n[which == 2, 1] = 1.0
        return _f32(rel, n, n)

    def blocks(self, p, margin):
        rho = np.hypot(p[:, 0] - self.cx, p[:, 2] - self.cz)
        y = p[:, 1]
        return (rho <= self.r + margin) & (y >= self.y_top - margin) & (y <= self.y_bot + margin)


class Ellipsoid(Shape):
    """An axis-aligned ellipsoid with semi-axes ``radii`` (3,) about ``center``; a sphere if equal."""

    def __init__(self, center, radii):
        self.c = np.asarray(center, dtype=np.float64)
        self.r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (3,)).copy()
        self.center = self.c
        self.radius = float(self.r.max())

    def intersect(self, o, d):
        ol = (o - self.c) / self.r
        dl = d / self.r
        a = (dl * dl).sum(-1)
        b = (ol * dl).sum(-1)
        c = (ol * ol).sum(-1) - 1.0
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t = c / (np.sqrt(np.maximum(disc, 0.0)) - b)  # near root, stable form
        hit = (c > 0) & (b < 0) & (disc >= 0) & (t > T_MIN)
        return np.where(hit, t, np.inf)

    def frame(self, p):
        rel = p - self.c
        n = rel / self.r**2
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        return _f32(rel, n, n)

    def blocks(self, p, margin):
        return (((p - self.c) / (self.r + margin)) ** 2).sum(axis=1) <= 1.0
