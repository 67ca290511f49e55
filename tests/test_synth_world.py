"""The procedural world: floor hits, determinism, cross-view consistency, classes, free cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest

from panoedge.errors import UsageError
from panoedge.synth.world import FAMILIES, class_colors, class_names, make_world

GROUND = {"indoor": {"floor"}, "outdoor": {"road", "sidewalk", "terrain"}}
HEIGHTS = {"indoor": (1.0, 1.8), "outdoor": (1.2, 2.5)}


def sphere_grid(h: int) -> np.ndarray:
    """(h * 2h, 3) unit rays at ERP pixel centres: lon = atan2(x, z), lat = -asin(y)."""
    lat = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    lon = ((np.arange(2 * h) + 0.5) / (2 * h) - 0.5) * 2 * np.pi
    lon, lat = np.meshgrid(lon, lat)
    return np.stack([np.cos(lat) * np.sin(lon), -np.sin(lat), np.cos(lat) * np.cos(lon)], -1).reshape(-1, 3)


def random_dirs(rng: np.random.Generator, n: int) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_ray_down_hits_ground_at_camera_height(family):
    world = make_world(family, 3)
    cam = world.default_camera()
    hit = world.cast(cam, np.array([[0.0, 1.0, 0.0]]))
    assert hit.t[0] == pytest.approx(-cam[1], abs=1e-4)
    assert world.classes[hit.label[0]] in GROUND[family]
    np.testing.assert_allclose(hit.normal[0], [0.0, -1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_world_other_seed_other_world(family):
    dirs = sphere_grid(24)
    a, b, c = make_world(family, 11), make_world(family, 11), make_world(family, 12)
    hit_a, hit_b = a.cast(a.default_camera(), dirs), b.cast(b.default_camera(), dirs)
    for field in ("t", "label", "rgb", "normal"):
        np.testing.assert_array_equal(getattr(hit_a, field), getattr(hit_b, field))
    assert a.to_dict() == b.to_dict()
    hit_c = c.cast(a.default_camera(), dirs)
    assert not np.array_equal(hit_a.t, hit_c.t)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_point_looks_the_same_from_another_camera(family):
    rng = np.random.default_rng(5)
    world = make_world(family, 7)
    o1 = world.default_camera()
    first = world.cast(o1, random_dirs(rng, 3000))
    seen = np.isfinite(first.t)
    p = o1 + first.t[seen, None].astype(np.float64) * random_dirs(np.random.default_rng(5), 3000)[seen]
    agree = visible = 0
    for o2 in world.camera_positions(3, rng):
        dist = np.linalg.norm(p - o2, axis=1)
        second = world.cast(o2, (p - o2) / dist[:, None])
        occluded = second.t < dist - 1e-3
        same = ((np.abs(second.t - dist) < 1e-3) & (second.label == first.label[seen])
                & np.all(np.abs(second.rgb - first.rgb[seen]) < 2e-3, axis=1))
        visible += int((~occluded).sum())
        agree += int((same & ~occluded).sum())
    assert visible > 1000
    assert agree / visible > 0.9


@pytest.mark.parametrize("family", FAMILIES)
def test_one_origin_and_per_ray_origins_agree(family):
    world = make_world(family, 2)
    cam = world.default_camera()
    dirs = sphere_grid(16)
    single = world.cast(cam, dirs)
    per_ray = world.cast(np.broadcast_to(cam, dirs.shape), dirs)
    np.testing.assert_array_equal(single.label, per_ray.label)
    np.testing.assert_allclose(single.t, per_ray.t, rtol=1e-6)
    cams = world.camera_positions(3, np.random.default_rng(1))  # far apart: the per-ray path
    mixed = world.cast(np.repeat(cams, len(dirs), axis=0), np.tile(dirs, (3, 1)))
    for i, cam in enumerate(cams):
        alone = world.cast(cam, dirs)
        np.testing.assert_array_equal(mixed.label[i * len(dirs):(i + 1) * len(dirs)], alone.label)
        np.testing.assert_allclose(mixed.t[i * len(dirs):(i + 1) * len(dirs)], alone.t, rtol=1e-6)


def test_unknown_family_is_a_usage_error_listing_the_valid_ones():
    with pytest.raises(UsageError, match="indoor, outdoor"):
        make_world("space", 0)
    with pytest.raises(UsageError):
        class_names("space")


@pytest.mark.parametrize("family", FAMILIES)
def test_class_tables(family):
    names, colors = class_names(family), class_colors(family)
    assert colors.shape == (len(names), 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == len(names)
    assert make_world(family, 0).classes == names
    json.dumps(make_world(family, 0).to_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_class_shows_up_in_a_few_worlds(family):
    dirs = sphere_grid(64)
    seen: set[int] = set()
    for seed in range(4):
        world = make_world(family, seed)
        for cam in [world.default_camera(), *world.camera_positions(2, np.random.default_rng(seed))]:
            seen |= set(np.unique(world.cast(cam, dirs).label).tolist())
    assert seen == set(range(len(class_names(family))))


@pytest.mark.parametrize("family", FAMILIES)
def test_camera_positions_are_in_free_space(family):
    world = make_world(family, 4)
    cams = world.camera_positions(16, np.random.default_rng(0))
    assert cams.shape == (16, 3)
    lo, hi = HEIGHTS[family]
    assert np.all((-cams[:, 1] >= lo) & (-cams[:, 1] <= hi))
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    for cam in cams:
        assert np.all(world.cast(cam, axes).t > 0.05)
