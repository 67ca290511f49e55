"""Sphere maths: exact round trips, conventions, seam handling, peer agreement."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.errors import UsageError
from panoedge.geometry import (
    LENS_MODELS,
    FisheyeCamera,
    PinholeCamera,
    angle_between,
    camera_to_erp,
    check_erp_size,
    cubemap_to_erp,
    erp_area_weights,
    erp_pixel_to_lonlat,
    erp_rays,
    erp_solid_angle,
    erp_to_cubemap,
    erp_to_fisheye,
    erp_to_perspective,
    get_lens_model,
    lonlat_to_erp_pixel,
    lonlat_to_ray,
    mobius_erp,
    mobius_zoom_rays,
    perspective_to_erp,
    ray_to_lonlat,
    rodrigues_from_rotation,
    rot_y,
    rotate_erp,
    rotation_aligning,
    rotation_angle,
    rotation_from_rodrigues,
    rotation_from_ypr,
    ypr_from_rotation,
)

from .conftest import real_file

RNG = np.random.default_rng(0)
TOL = 1e-6  # radians, float64 round trips


def random_rays(n: int) -> np.ndarray:
    v = RNG.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- sphere and ERP -----------------------------------------------------------------------


def test_lonlat_conventions():
    assert np.allclose(lonlat_to_ray(0.0, 0.0), [0, 0, 1])  # lon 0 looks along +z
    assert np.allclose(lonlat_to_ray(np.pi / 2, 0.0), [1, 0, 0])  # positive lon is right (+x)
    assert np.allclose(lonlat_to_ray(0.0, np.pi / 2), [0, -1, 0])  # positive lat is up (-y)
    # Row 0's top edge is the north pole; column 0's left edge is lon = -pi.
    lon, lat = erp_pixel_to_lonlat(-0.5, -0.5, 4, 8)
    assert np.isclose(lon, -np.pi) and np.isclose(lat, np.pi / 2)


def test_ray_lonlat_pixel_round_trip():
    rays = random_rays(10000)
    lon, lat = ray_to_lonlat(rays)
    assert np.max(angle_between(lonlat_to_ray(lon, lat), rays)) < TOL
    u, v = lonlat_to_erp_pixel(lon, lat, 512, 1024)
    lon2, lat2 = erp_pixel_to_lonlat(u, v, 512, 1024)
    assert np.max(np.abs(lon2 - lon)) < TOL and np.max(np.abs(lat2 - lat)) < TOL


def test_solid_angle_sums_to_sphere_and_weights_follow_cos_lat():
    sa = erp_solid_angle(32, 64)
    assert np.isclose(sa.sum(), 4 * np.pi, rtol=1e-12)
    w = erp_area_weights(32, 64)
    assert np.isclose(w.mean(), 1.0, rtol=1e-6)
    _, lat = erp_pixel_to_lonlat(0, np.arange(32), 32, 64)
    ratio = w[:, 0] / np.cos(lat)
    assert np.allclose(ratio, ratio[16], rtol=2e-3)


@pytest.mark.parametrize("hw", [(0, 0), (10, 30), (11, 21)])
def test_bad_erp_size_is_a_clear_error(hw):
    with pytest.raises(UsageError, match="ERP|positive"):
        check_erp_size(*hw)


# -- rotations -----------------------------------------------------------------------------


def test_ypr_conventions_and_round_trip():
    assert np.allclose(rotation_from_ypr(0.3, 0, 0) @ [0, 0, 1], [np.sin(0.3), 0, np.cos(0.3)])  # yaw right
    assert rotation_from_ypr(0, 0.3, 0) @ np.array([0, 0, 1.0]) @ [0, -1, 0] > 0  # pitch up
    for _ in range(200):
        ypr = RNG.uniform([-np.pi, -np.pi / 2 + 0.01, -np.pi], [np.pi, np.pi / 2 - 0.01, np.pi])
        R = rotation_from_ypr(*ypr)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1.0)
        assert np.allclose(ypr_from_rotation(R), ypr, atol=TOL)


def test_rodrigues_round_trip_and_aligning():
    for _ in range(100):
        rvec = random_rays(1)[0] * RNG.uniform(0, np.pi - 1e-3)
        R = rotation_from_rodrigues(rvec)
        assert np.allclose(rodrigues_from_rotation(R), rvec, atol=1e-9)
        assert np.isclose(rotation_angle(R), np.linalg.norm(rvec))
        a, b = random_rays(2)
        assert np.allclose(rotation_aligning(a, b) @ a, b, atol=1e-12)
    assert np.allclose(rotation_aligning([0, 1, 0], [0, -1, 0]) @ [0, 1, 0], [0, -1, 0])


# -- pinhole -------------------------------------------------------------------------------


def test_pinhole_round_trip_and_depth_conversion():
    cam = PinholeCamera.from_fov(48, 64, 100.0)
    u, v = RNG.uniform(-0.4, 63.4, 500), RNG.uniform(-0.4, 47.4, 500)
    u2, v2, ok = cam.project(cam.unproject(u, v))
    assert ok.all() and np.allclose(u2, u, atol=1e-9) and np.allclose(v2, v, atol=1e-9)
    # Edge pixels' outer edges span the horizontal FOV exactly.
    edge = cam.unproject(np.array([-0.5, 63.5]), np.array([23.5, 23.5]))
    assert np.isclose(np.rad2deg(angle_between(edge[0], edge[1])), 100.0)
    z = RNG.uniform(0.5, 10, (48, 64)).astype(np.float32)
    z[0, 0] = 0
    r = cam.zdepth_to_range(z)
    rays, _ = cam.rays()
    assert np.allclose(r * rays[..., 2], z, atol=1e-5) and r[0, 0] == 0
    assert np.allclose(cam.range_to_zdepth(r), z, atol=1e-5)
    with pytest.raises(UsageError):
        PinholeCamera.from_fov(10, 10, 180.0)


# -- fisheye models ------------------------------------------------------------------------

KB = (0.02, -0.004, 0.0005, -0.00003)


@pytest.mark.parametrize("model", sorted(LENS_MODELS))
def test_lens_model_round_trip_to_1e6_rad(model):
    lens = get_lens_model(model)
    coeffs = KB if model == "kannala_brandt" else ()
    theta = np.linspace(0.0, lens.max_theta(coeffs) * 0.999, 5001)
    back = lens.inverse(lens.forward(theta, coeffs), coeffs)
    assert np.max(np.abs(back - theta)) < TOL


@pytest.mark.parametrize("model,fov", [("equidistant", 200), ("equisolid", 210), ("stereographic", 190),
                                       ("orthographic", 180), ("kannala_brandt", 220)])
def test_fisheye_camera_round_trip_beyond_180(model, fov):
    coeffs = KB if model == "kannala_brandt" else ()
    cam = FisheyeCamera.from_fov(200, 200, model, fov, radius_px=98, coeffs=coeffs)
    rays, valid = cam.rays()
    assert valid.sum() > 0.7 * np.pi * 98**2  # the image circle is valid
    u, v, ok = cam.project(rays[valid])
    uu, vv = np.meshgrid(np.arange(200.0), np.arange(200.0))
    assert ok.all()
    assert np.max(np.hypot(u - uu[valid], v - vv[valid])) < 1e-6
    theta = np.arccos(np.clip(rays[valid][:, 2], -1, 1))
    if fov > 180:
        assert theta.max() > np.pi / 2  # really sees behind the lens plane
    # unproject(project(ray)) is the ray: 1e-6 rad.
    test = random_rays(4000)
    u, v, ok = cam.project(test)
    back, ok2 = cam.unproject(u[ok], v[ok])
    assert np.max(angle_between(back, test[ok])) < TOL


def test_fisheye_rejects_impossible_fov_and_unknown_model():
    with pytest.raises(UsageError, match="orthographic"):
        FisheyeCamera.from_fov(100, 100, "orthographic", 200)
    with pytest.raises(UsageError, match="equidistant"):
        get_lens_model("fishy")


# -- resampling ----------------------------------------------------------------------------


def test_yaw_by_whole_columns_is_an_exact_roll_across_the_seam():
    img = RNG.integers(0, 255, (32, 64, 3), dtype=np.uint8)
    k = 5
    R = rot_y(2 * np.pi * k / 64)
    out = rotate_erp(img, R)
    assert np.array_equal(out, np.roll(img, -k, axis=1))


def test_rotation_round_trip_and_perspective_at_the_seam(smooth_erp):
    R = rotation_from_ypr(0.7, -0.4, 0.2)
    back = rotate_erp(rotate_erp(smooth_erp, R), R.T)
    assert np.abs(back - smooth_erp).mean() < 2e-3
    a = erp_to_perspective(smooth_erp, 80, 180, 10, (32, 32))
    b = erp_to_perspective(np.roll(smooth_erp, 64, axis=1), 80, 0, 10, (32, 32))
    assert np.abs(a - b).max() < 1e-3 and a.dtype == np.float32


def test_perspective_dtypes_and_inverse(smooth_erp):
    u8 = (smooth_erp * 255).astype(np.uint8)
    p = erp_to_perspective(u8, 90, 20, -10, (40, 48))
    assert p.dtype == np.uint8 and p.shape == (40, 48, 3)
    gray = erp_to_perspective(u8[..., 0], 90, 20, -10, (40, 48))
    assert gray.shape == (40, 48)
    view = erp_to_perspective(smooth_erp, 90, 20, -10, (64, 64))
    erp, valid = perspective_to_erp(view, 90, 20, -10, (64, 128))
    assert 0.05 < valid.mean() < 0.3
    assert np.abs(erp[valid] - smooth_erp[valid]).mean() < 5e-3


def test_cubemap_round_trip(smooth_erp):
    faces = erp_to_cubemap(smooth_erp, 48)
    assert set(faces) == {"F", "R", "B", "L", "U", "D"}
    # The front face centre looks along +z: lon 0, lat 0 of the ERP.
    centre = faces["F"][23:25, 23:25].mean(axis=(0, 1))
    assert np.allclose(centre, smooth_erp[31:33, 63:65].mean(axis=(0, 1)), atol=0.02)
    back = cubemap_to_erp(faces, (64, 128))
    assert np.abs(back - smooth_erp).mean() < 5e-3


def test_fisheye_view_of_erp_and_back(smooth_erp):
    cam = FisheyeCamera.from_fov(96, 96, "equidistant", 200.0)
    img, valid = erp_to_fisheye(smooth_erp, cam, rotation_from_ypr(0.5, 0.1, 0))
    assert img.shape == (96, 96, 3) and 0.6 < valid.mean() < 0.8
    assert (img[~valid] == 0).all()
    erp, ok = camera_to_erp(img, cam, (64, 128), rotation_from_ypr(0.5, 0.1, 0))
    inner = ok & (erp_rays(64, 128) @ rotation_from_ypr(0.5, 0.1, 0)[:, 2] > np.cos(np.deg2rad(90)))
    assert 0.4 < ok.mean() < 0.7
    assert np.abs(erp[inner] - smooth_erp[inner]).mean() < 1e-2
    with pytest.raises(UsageError, match="does not match"):
        camera_to_erp(img[:50], cam, (64, 128))


def test_many_channel_bool_and_wrong_size_remap(smooth_erp):
    stack = np.concatenate([smooth_erp, smooth_erp, smooth_erp[..., :1]], axis=2)  # 7 channels
    out = rotate_erp(stack, rotation_from_ypr(0.3, 0.1, 0))
    assert out.shape == (64, 128, 7)
    assert np.allclose(out[..., 3:6], out[..., :3])
    mask = smooth_erp[..., 0] > 0.5
    rm = rotate_erp(mask, rot_y(2 * np.pi * 3 / 128), interpolation="nearest")
    assert rm.dtype == np.bool_ and np.array_equal(rm, np.roll(mask, -3, axis=1))
    from panoedge.geometry.transforms import _rotation_table, _key

    with pytest.raises(UsageError, match="table built for"):
        _rotation_table((64, 128), _key(np.eye(3))).apply(smooth_erp[:32, :64])


# -- Möbius --------------------------------------------------------------------------------


def test_mobius_zoom_follows_stereographic_law_and_inverts():
    rays = random_rays(3000)
    s = 1.7
    out = mobius_zoom_rays(rays, s)
    nadir = np.array([0, 1.0, 0])
    t_in, t_out = angle_between(rays, nadir), angle_between(out, nadir)
    ok = t_in < np.pi - 1e-3
    assert np.allclose(np.tan(t_out[ok] / 2), s * np.tan(t_in[ok] / 2), rtol=1e-9, atol=1e-12)
    assert np.max(angle_between(mobius_zoom_rays(out, 1 / s), rays)) < TOL
    centre = random_rays(1)[0]
    back = mobius_zoom_rays(mobius_zoom_rays(rays, s, centre), 1 / s, centre)
    assert np.max(angle_between(back, rays)) < TOL
    assert np.allclose(mobius_zoom_rays(centre[None], s, centre), centre)


def test_mobius_erp_identity_and_magnification(smooth_erp):
    assert np.abs(mobius_erp(smooth_erp, 1.0) - smooth_erp).max() < 1e-3
    zoomed = mobius_erp(smooth_erp, 2.0, center=[0, 0, 1.0])
    assert zoomed.shape == smooth_erp.shape
    # The centre is fixed; its neighbourhood changes less than far regions do.
    assert np.allclose(zoomed[31:33, 63:65], smooth_erp[31:33, 63:65], atol=0.02)


# -- torch twins ---------------------------------------------------------------------------


def test_torch_twins_match_numpy(smooth_erp):
    torch = pytest.importorskip("torch")
    from panoedge.geometry import torch_ops as T

    assert np.allclose(T.erp_rays(16, 32, dtype=torch.float64).numpy(), erp_rays(16, 32), atol=1e-12)
    assert np.allclose(T.erp_area_weights(16, 32).numpy()[:, 0], erp_area_weights(16, 32)[:, 0], atol=1e-5)
    rays = random_rays(500)
    assert np.allclose(T.mobius_zoom_rays(torch.from_numpy(rays)[None], 1.3)[0].numpy(),
                       mobius_zoom_rays(rays, 1.3), atol=1e-9)
    ypr = torch.tensor([0.4]), torch.tensor([-0.2]), torch.tensor([0.1])
    R = rotation_from_ypr(0.4, -0.2, 0.1)
    assert np.allclose(T.rotation_from_ypr(*ypr)[0].numpy(), R, atol=1e-6)
    x = torch.from_numpy(smooth_erp).permute(2, 0, 1)[None].requires_grad_(True)
    y = T.rotate_erp(x, torch.from_numpy(R).float())
    ref = rotate_erp(smooth_erp, R)
    assert np.abs(y[0].permute(1, 2, 0).detach().numpy() - ref).mean() < 2e-3
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # Yaw by whole columns rolls exactly across the seam in torch too.
    rolled = T.rotate_erp(x.detach(), torch.from_numpy(rot_y(2 * np.pi * 3 / 128)).float())
    assert torch.allclose(rolled, torch.roll(x.detach(), -3, dims=3), atol=1e-5)
    z = T.mobius_erp(x.detach(), 1.5)
    assert np.abs(z[0].permute(1, 2, 0).numpy() - mobius_erp(smooth_erp, 1.5)).mean() < 3e-3


# -- peer agreement ------------------------------------------------------------------------


def test_erp_to_perspective_agrees_with_py360convert_on_a_real_panorama():
    py360convert = pytest.importorskip("py360convert")
    import cv2

    path = real_file("erp_plain", "mp3d_7y3sRwLe3Va_1410b021_1024x512.png")
    erp = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    size = 256
    for fov, yaw, pitch in [(90, 0, 0), (90, 30, 20), (100, -120, -40), (60, 170, 10), (90, -179, 75)]:
        # py360convert spans its FOV between the outer pixel *centres*; ours spans the pixel
        # edges (as OpenCV intrinsics do). Convert the FOV so both mean the same view.
        ours_fov = np.rad2deg(2 * np.arctan(np.tan(np.deg2rad(fov) / 2) * size / (size - 1)))
        a = erp_to_perspective(erp, ours_fov, yaw, pitch, (size, size))
        b = py360convert.e2p(erp, fov, yaw, pitch, (size, size), mode="bilinear")
        mad = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()
        assert mad < 1.0, (fov, yaw, pitch, mad)
