"""Procedural materials for the synthetic world: lattice noise, patterns and palettes.

Every pattern is a function of a surface point in its object's own frame (and that
face's normal), never of the camera, so one 3D point has one colour from any view.
Shapes: points ``p`` (k, 3) float32 metres, normals (k, 3), albedo (k, 3) float32 in [0, 1].

Colours are drawn per object instance from wide, overlapping pools (a wall, a door and a
sofa may all be beige), so colour alone never tells the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

_U = np.uint32


def _mix(h: np.ndarray) -> np.ndarray:
    """Avalanche a uint32 array (lowbias32) and map it to float32 in [0, 1)."""
    h = h ^ (h >> _U(16))
    h = h * _U(0x7FEB352D)
    h = h ^ (h >> _U(15))
    h = h * _U(0x846CA68B)
    h = h ^ (h >> _U(16))
    return (h >> _U(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _lattice(v: np.ndarray) -> np.ndarray:
    return np.floor(v).astype(np.int32).view(np.uint32)


def cell_hash(iu: np.ndarray, iv: np.ndarray, seed: int) -> np.ndarray:
    """A float32 in [0, 1) per integer cell (iu, iv) (arrays of floored coordinates)."""
    return _mix(_lattice(iu) * _U(0x8DA6B343) + _lattice(iv) * _U(0xD8163841) + _U(seed & 0xFFFFFFFF))


def value_noise(p: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 3D value noise in [0, 1), (k,) float32, with unit lattice spacing."""
    p = np.asarray(p, dtype=np.float32)
    fl = np.floor(p)
    f = p - fl
    f = f * f * (np.float32(3.0) - np.float32(2.0) * f)
    i = np.ascontiguousarray(fl.astype(np.int32)).view(np.uint32)
    hx0 = i[:, 0] * _U(0x8DA6B343)
    hy0 = i[:, 1] * _U(0xD8163841)
    hz0 = i[:, 2] * _U(0xCB1AB31F) + _U(seed & 0xFFFFFFFF)
    hx1, hy1, hz1 = hx0 + _U(0x8DA6B343), hy0 + _U(0xD8163841), hz0 + _U(0xCB1AB31F)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]

    def lerp(a, b, w):
        return a + (b - a) * w

    def edge(hy, hz):
        return lerp(_mix(hx0 + hy + hz), _mix(hx1 + hy + hz), fx)

    front = lerp(edge(hy0, hz0), edge(hy1, hz0), fy)
    back = lerp(edge(hy0, hz1), edge(hy1, hz1), fy)
    return lerp(front, back, fz)


def fbm(p: np.ndarray, seed: int, octaves: int = 2) -> np.ndarray:
    """Fractal sum of ``octaves`` value-noise layers, normalised to [0, 1), (k,) float32."""
    total = np.zeros(len(p), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        total += np.float32(amp) * value_noise(p * np.float32(2.0**k), seed + 101 * k)
        norm += amp
        amp *= 0.5
    return total / np.float32(norm)


def planar_uv(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Face coordinates (k, 2): drop the axis the normal points along; v is y on vertical faces."""
    axis = np.abs(n).argmax(axis=1)
    u = np.where(axis == 0, p[:, 2], p[:, 0])
    v = np.where(axis == 1, p[:, 2], p[:, 1])
    return np.stack([u, v], 1)


@dataclass(frozen=True)
class Material:
    """One instance's look: a pattern mixing ``base`` and ``second`` colours.

    ``scale`` is the pattern's size in metres (tile, stripe period, noise cell), ``contrast``
    in [0, 1] how strongly the pattern shows, ``seed`` decorrelates the noise of instances.
    """

    pattern: str
    base: tuple[float, float, float]
    second: tuple[float, float, float]
    scale: float
    contrast: float
    seed: int

    def albedo(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Albedo (k, 3) float32 at points ``p`` (k, 3) with normals ``n`` in the object frame."""
        weight, shade = PATTERNS[self.pattern](self, p, n)
        base = np.asarray(self.base, dtype=np.float32)
        second = np.asarray(self.second, dtype=np.float32)
        rgb = base + (second - base) * weight[:, None]
        return np.clip(rgb * shade[:, None], 0.0, 1.0)


# A pattern returns (weight of the second colour, brightness factor), each (k,) float32.
Pattern = Callable[[Material, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _grain_noise(m: Material, p: np.ndarray, cells: float, amount: float) -> np.ndarray:
    return 1.0 + np.float32(amount) * (value_noise(p * np.float32(cells / m.scale), m.seed + 7) - 0.5)


def _plain(m, p, n):
    return np.zeros(len(p), np.float32), 1.0 + np.float32(0.3 * m.contrast) * (fbm(p / np.float32(m.scale), m.seed) - 0.5)


def _mottled(m, p, n):
    w = np.clip((fbm(p / np.float32(m.scale), m.seed, 3) - 0.3) * 2.5, 0.0, 1.0)
    return w * np.float32(0.6 * m.contrast), _grain_noise(m, p, 8.0, 0.15)


def _stripes(m, p, n):
    u = planar_uv(p, n)[:, 0] / np.float32(m.scale)
    w = (np.sin(np.float32(2 * np.pi) * u) > 0).astype(np.float32) * np.float32(m.contrast)
    return w, _grain_noise(m, p, 4.0, 0.1)


def _tiles(m, p, n):
    uv = planar_uv(p, n) / np.float32(m.scale)
    cell = np.floor(uv)
    frac = uv - cell
    grout = np.minimum(frac, 1.0 - frac).min(axis=1) < 0.03
    tone = cell_hash(cell[:, 0], cell[:, 1], m.seed)
    checker = ((cell[:, 0] + cell[:, 1]) % 2).astype(np.float32)
    shade = 1.0 + np.float32(0.25 * m.contrast) * (tone - 0.5) - np.float32(0.12 * m.contrast) * checker
    return grout.astype(np.float32), shade * _grain_noise(m, p, 10.0, 0.08)


def _bricks(m, p, n):
    uv = planar_uv(p, n)
    rows = uv[:, 1] / np.float32(m.scale / 3.0)
    row = np.floor(rows)
    cols = uv[:, 0] / np.float32(m.scale) + np.float32(0.5) * (row % 2)
    col = np.floor(cols)
    mortar = ((rows - row) < 0.12) | ((cols - col) < 0.04)
    tone = cell_hash(col, row, m.seed)
    shade = 1.0 + np.float32(0.4 * m.contrast) * (tone - 0.5)
    return mortar.astype(np.float32), shade * _grain_noise(m, p, 12.0, 0.15)


def _grain(m, p, n):
    """Wood: boards ``scale`` wide along u with staggered joints, streaky grain, a tone per board."""
    uv = planar_uv(p, n)
    rows = uv[:, 1] / np.float32(m.scale)
    row = np.floor(rows)
    cols = uv[:, 0] / np.float32(8.0 * m.scale) + cell_hash(row, row, m.seed + 1)
    col = np.floor(cols)
    seam = ((rows - row) < 0.03) | ((cols - col) < 0.004)
    stretched = np.stack([uv[:, 0] * 0.4, uv[:, 1] * 10.0, rows], 1) / np.float32(m.scale)
    streak = np.clip(value_noise(stretched, m.seed) * 1.6 - 0.4, 0.0, 1.0) ** 2
    tone = cell_hash(col, row, m.seed)
    shade = (1.0 + np.float32(0.35 * m.contrast) * (tone - 0.5)) * np.where(seam, np.float32(0.6), np.float32(1.0))
    return (streak * np.float32(m.contrast)).astype(np.float32), shade.astype(np.float32)


def _speckle(m, p, n):
    """Asphalt or gravel: fine grains ``scale`` m across over large low-contrast patches."""
    patches = np.clip((fbm(p / np.float32(40.0 * m.scale), m.seed + 5) - 0.45) * 3.0, 0.0, 1.0)
    return patches * np.float32(m.contrast), 0.8 + 0.4 * value_noise(p / np.float32(m.scale), m.seed)


def _fabric(m, p, n):
    uv = planar_uv(p, n) * np.float32(2 * np.pi / m.scale)
    weave = 0.5 + 0.5 * np.sin(uv[:, 0]) * np.sin(uv[:, 1])
    return (weave * np.float32(0.5 * m.contrast)).astype(np.float32), _grain_noise(m, p, 3.0, 0.3)


def _facade(m, p, n):
    """Rows of windows (``second``, the glass) on a wall; ``scale`` is the storey height."""
    uv = planar_uv(p, n)
    floors = uv[:, 1] / np.float32(m.scale)
    bays = uv[:, 0] / np.float32(0.9 * m.scale)
    fy, fx = floors - np.floor(floors), bays - np.floor(bays)
    window = (np.abs(fx - 0.5) < 0.22 + 0.1 * m.contrast) & (np.abs(fy - 0.5) < 0.25)
    window &= np.abs(n[:, 1]) < 0.5
    lit = cell_hash(np.floor(bays), np.floor(floors), m.seed)
    shade = np.where(window, 0.6 + 0.9 * lit, _grain_noise(m, p, 4.0, 0.3))
    return window.astype(np.float32), shade.astype(np.float32)


def _foliage(m, p, n):
    w = (fbm(p / np.float32(m.scale), m.seed, 2) > 0.5).astype(np.float32) * np.float32(m.contrast)
    return w, 0.6 + 0.8 * value_noise(p * np.float32(6.0 / m.scale), m.seed + 3)


PATTERNS: dict[str, Pattern] = {
    "plain": _plain,
    "mottled": _mottled,
    "stripes": _stripes,
    "tiles": _tiles,
    "bricks": _bricks,
    "grain": _grain,
    "speckle": _speckle,
    "fabric": _fabric,
    "facade": _facade,
    "foliage": _foliage,
}

SCALES: dict[str, tuple[float, float]] = {
    "plain": (0.3, 2.0),
    "mottled": (0.2, 3.0),
    "stripes": (0.05, 0.4),
    "tiles": (0.2, 0.8),
    "bricks": (0.2, 0.35),
    "grain": (0.08, 0.25),
    "speckle": (0.04, 0.12),
    "fabric": (0.01, 0.04),
    "facade": (2.8, 3.6),
    "foliage": (0.1, 0.5),
}
"""Range of ``Material.scale`` in metres per pattern."""

POOLS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "neutral": ((0.86, 0.85, 0.81), (0.72, 0.71, 0.69), (0.56, 0.56, 0.57), (0.93, 0.91, 0.87),
                (0.38, 0.38, 0.40), (0.80, 0.74, 0.63), (0.66, 0.62, 0.55)),
    "wood": ((0.55, 0.38, 0.22), (0.42, 0.28, 0.16), (0.70, 0.54, 0.36), (0.30, 0.20, 0.13),
             (0.78, 0.64, 0.45), (0.62, 0.45, 0.30)),
    "bold": ((0.62, 0.16, 0.14), (0.16, 0.30, 0.58), (0.20, 0.45, 0.28), (0.80, 0.62, 0.18),
             (0.14, 0.48, 0.52), (0.42, 0.22, 0.48), (0.85, 0.40, 0.16)),
    "pastel": ((0.80, 0.70, 0.72), (0.68, 0.76, 0.84), (0.74, 0.82, 0.70), (0.88, 0.84, 0.66),
               (0.78, 0.72, 0.86)),
    "dark": ((0.12, 0.12, 0.13), (0.20, 0.18, 0.16), (0.10, 0.14, 0.22), (0.22, 0.12, 0.10),
             (0.16, 0.20, 0.14)),
    "earth": ((0.45, 0.38, 0.28), (0.55, 0.47, 0.34), (0.36, 0.32, 0.24), (0.50, 0.42, 0.36)),
    "green": ((0.22, 0.40, 0.16), (0.32, 0.46, 0.20), (0.18, 0.30, 0.14), (0.42, 0.48, 0.24),
              (0.28, 0.36, 0.22)),
    "asphalt": ((0.16, 0.16, 0.17), (0.24, 0.24, 0.25), (0.32, 0.31, 0.30), (0.42, 0.42, 0.41),
                (0.20, 0.19, 0.18)),
    "skin": ((0.86, 0.67, 0.54), (0.72, 0.52, 0.38), (0.52, 0.36, 0.25), (0.36, 0.24, 0.17),
             (0.94, 0.78, 0.66)),
}
"""Colour pools, linear-ish RGB. Classes draw from several pools, so classes share colours."""


def pick_color(rng: np.random.Generator, pools: tuple[str, ...]) -> tuple[float, float, float]:
    """One colour from one of ``pools``, jittered in brightness and hue; a tuple of 3 floats."""
    pool = POOLS[pools[rng.integers(len(pools))]]
    rgb = np.asarray(pool[rng.integers(len(pool))])
    rgb = rgb * rng.uniform(0.8, 1.15) * (1.0 + rng.normal(0.0, 0.06, 3))
    return tuple(float(v) for v in np.clip(rgb, 0.02, 0.98))


def random_material(rng: np.random.Generator, pools: tuple[str, ...], patterns: tuple[str, ...],
                    second_pools: tuple[str, ...] | None = None) -> Material:
    """A material with a pattern drawn from ``patterns`` and colours from the pools.

    ``second`` (mortar, grout, stripe or glass colour) comes from ``second_pools``, or is a
    darker/lighter variant of ``base`` when that is None.
    """
    pattern = patterns[rng.integers(len(patterns))]
    base = pick_color(rng, pools)
    if second_pools is None:
        factor = rng.choice([rng.uniform(0.45, 0.8), rng.uniform(1.15, 1.5)])
        second = tuple(float(v) for v in np.clip(np.asarray(base) * factor, 0.02, 0.98))
    else:
        second = pick_color(rng, second_pools)
    lo, hi = SCALES[pattern]
    return Material(pattern=pattern, base=base, second=second, scale=float(rng.uniform(lo, hi)),
                    contrast=float(rng.uniform(0.3, 1.0)), seed=int(rng.integers(1 << 31)))
