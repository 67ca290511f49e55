"""Lighting and sky of a synthetic world: view-independent shading only, display-encoded.

Shading is Lambertian under one directional key light (sun, or the ceiling lights of a
room), an opposite fill and an ambient term brighter on up-facing surfaces, then a
per-world tint and exposure. No specular term: a surface point has the same colour from
every camera. Directions are world-frame unit vectors (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.synth.textures import fbm

DISPLAY_GAMMA = 2.2
"""Shaded surface colours are encoded as ``linear ** (1 / DISPLAY_GAMMA)``; sky colours are
given directly as display values."""


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Lighting:
    """Key light ``direction`` (pointing towards the light) and the strengths of each term."""

    direction: tuple[float, float, float]
    key: float
    fill: float
    ambient: float
    tint: tuple[float, float, float]
    exposure: float

    def apply(self, albedo: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Display RGB (k, 3) float32 in [0, 1] from albedo (k, 3) and world normals (k, 3).

        Shading happens in linear light; the result is encoded with ``DISPLAY_GAMMA`` so it
        can be written to 8 bits as is.
        """
        light = np.asarray(self.direction, dtype=np.float32)
        ndl = normal @ light
        up = -normal[:, 1]
        shade = (np.float32(self.ambient) * (0.75 + 0.25 * up)
                 + np.float32(self.key) * np.maximum(ndl, 0.0)
                 + np.float32(self.fill) * np.maximum(-ndl, 0.0))
        gain = np.asarray(self.tint, dtype=np.float32) * np.float32(self.exposure)
        linear = np.clip(albedo * shade[:, None] * gain, 0.0, 1.0)
        return np.power(linear, np.float32(1.0 / DISPLAY_GAMMA)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"direction": [round(float(v), 4) for v in self.direction], "key": round(self.key, 3),
                "fill": round(self.fill, 3), "ambient": round(self.ambient, 3),
                "tint": [round(float(v), 3) for v in self.tint], "exposure": round(self.exposure, 3)}


def random_tint(rng: np.random.Generator, warmth: float) -> tuple[float, float, float]:
    """A white-balance tint; ``warmth`` > 0 is orange (tungsten), < 0 blue (shade, overcast)."""
    tint = np.array([1.0 + 0.18 * warmth, 1.0, 1.0 - 0.22 * warmth]) * (1.0 + rng.normal(0, 0.03, 3))
    return tuple(float(v) for v in tint / tint.mean())


def indoor_lighting(rng: np.random.Generator) -> Lighting:
    """Ceiling light: mostly from above, tilted up to ~40 degrees, warm to cool white."""
    tilt, azimuth = rng.uniform(0.1, 0.7), rng.uniform(-np.pi, np.pi)
    direction = _unit([np.sin(tilt) * np.sin(azimuth), -np.cos(tilt), np.sin(tilt) * np.cos(azimuth)])
    return Lighting(direction=tuple(direction), key=float(rng.uniform(0.45, 0.75)),
                    fill=float(rng.uniform(0.15, 0.35)), ambient=float(rng.uniform(0.3, 0.5)),
                    tint=random_tint(rng, rng.uniform(-0.4, 1.0)), exposure=float(rng.uniform(0.8, 1.25)))


def outdoor_lighting(rng: np.random.Generator) -> Lighting:
    """Sun at 12 to 70 degrees elevation, any azimuth; low sun is warmer and more contrasted."""
    elevation, azimuth = rng.uniform(0.2, 1.2), rng.uniform(-np.pi, np.pi)
    direction = _unit([np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    overcast = rng.uniform(0.0, 1.0)
    return Lighting(direction=tuple(direction), key=float(0.8 - 0.45 * overcast),
                    fill=float(rng.uniform(0.05, 0.15)), ambient=float(0.3 + 0.25 * overcast),
                    tint=random_tint(rng, (1.0 - elevation) * 0.8 - 0.3 * overcast),
                    exposure=float(rng.uniform(0.85, 1.3)))


@dataclass(frozen=True)
class Sky:
    """Background colour of rays that hit nothing: a function of the ray direction only."""

    zenith: tuple[float, float, float]
    horizon: tuple[float, float, float]
    sun: tuple[float, float, float]
    clouds: float
    seed: int

    def rgb(self, d: np.ndarray) -> np.ndarray:
        """Sky RGB (k, 3) float32 for world directions ``d`` (k, 3)."""
        d = np.asarray(d, dtype=np.float32)
        up = np.clip(-d[:, 1], 0.0, 1.0)
        blend = np.sqrt(up)[:, None]
        zenith = np.asarray(self.zenith, np.float32)
        horizon = np.asarray(self.horizon, np.float32)
        rgb = horizon + (zenith - horizon) * blend
        glow = np.maximum(d @ np.asarray(self.sun, np.float32), 0.0) ** 64
        rgb = rgb + glow[:, None] * np.float32(0.6)
        plane = d[:, [0, 2]] / (up[:, None] + np.float32(0.08))  # cloud layer, flattened near horizon
        cover = fbm(np.concatenate([plane * np.float32(1.5), np.zeros((len(d), 1), np.float32)], 1), self.seed, 3)
        cloud = np.clip((cover - (1.0 - self.clouds)) * 3.0, 0.0, 1.0)[:, None]
        rgb = rgb + (np.float32(0.9) - rgb) * cloud * np.float32(0.85)
        return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def random_sky(rng: np.random.Generator, lighting: Lighting) -> Sky:
    """A sky matching ``lighting``: bluer when sunny, greyer when the ambient term dominates."""
    grey = float(np.clip((lighting.ambient - 0.3) / 0.25, 0.0, 1.0))
    zenith = (1 - grey) * np.array([0.25, 0.45, 0.85]) + grey * np.array([0.6, 0.63, 0.68])
    horizon = (1 - grey) * np.array([0.7, 0.8, 0.92]) + grey * np.array([0.78, 0.79, 0.8])
    tint = np.asarray(lighting.tint)
    return Sky(zenith=tuple(float(v) for v in np.clip(zenith * tint, 0, 1)),
               horizon=tuple(float(v) for v in np.clip(horizon * tint, 0, 1)),
               sun=lighting.direction, clouds=float(rng.uniform(0.1, 0.6) + 0.3 * grey),
               seed=int(rng.integers(1 << 31)))
