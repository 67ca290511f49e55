"""The stitcher: tables built once, exact geometry, exposure and vignetting, levelling, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.errors import UsageError
from panoedge.geometry import erp_rays, erp_to_fisheye, rotate_erp, rotation_from_ypr_deg
from panoedge.stitch import Stitcher, level_from_gravity, level_from_ypr_deg
from panoedge.stitch.table_cache import TABLES, TableCache
from panoedge.synth.rig_render import synthetic_rig


def smooth_erp(h: int = 256) -> np.ndarray:
    """A smooth, seam-continuous RGB ERP (uint8)."""
    d = erp_rays(h, 2 * h)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    img = np.stack([0.5 + 0.4 * np.sin(3 * x + 1) * z, 0.5 + 0.3 * np.cos(4 * y + 2 * x),
                    0.5 + 0.4 * np.sin(5 * z * y + x)], axis=-1)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def fisheye_frame(rig, erp: np.ndarray, gains=((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))) -> np.ndarray:
    """What ``rig`` sees of the scene ``erp`` (no parallax), with its vignetting and per-lens gains."""
    h, w = rig.frame_hw
    frame = np.zeros((h, w, 3), dtype=np.float64)
    for i, lens in enumerate(rig.lenses):
        img, valid = erp_to_fisheye(erp, lens.camera(h, w), lens.rotation)
        x0, y0, x1, y1 = rig.lens_region(i)
        own = np.zeros_like(valid)
        own[y0:y1, x0:x1] = True
        v, u = np.mgrid[0:h, 0:w]
        vig = lens.vignetting_gain(np.hypot(u - lens.center_x_px, v - lens.center_y_px) / lens.radius_px)
        sel = valid & own
        frame[sel] = img[sel] * vig[sel][:, None] * np.asarray(gains[i])
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def psnr(a, b, mask=None) -> float:
    err = (a.astype(np.float64) - b) ** 2
    err = err[mask] if mask is not None else err
    return float(10 * np.log10(255.0 ** 2 / max(err.mean(), 1e-12)))


@pytest.fixture(scope="module")
def scene():
    return smooth_erp(256)


def test_tables_are_built_once_and_reused(tmp_path, monkeypatch, scene):
    rig = synthetic_rig(128, seed=1)
    TABLES.clear()
    before = TABLES.builds
    st = Stitcher(rig, (64, 128), device="cpu")
    frame = fisheye_frame(rig, scene)
    for _ in range(3):
        st.stitch(frame)
    Stitcher(rig, (64, 128), device="cpu").stitch(frame)
    assert TABLES.builds == before + 1
    Stitcher(rig, (32, 64), device="cpu")
    assert TABLES.builds == before + 2
    # The disk cache serves a new process (a fresh cache) the same tables.
    monkeypatch.setenv("PANOEDGE_HOME", str(tmp_path))
    first, second = TableCache(), TableCache()
    t1 = first.get(rig, (64, 128), 5.0, rig.output_rotation, disk=True)
    t2 = second.get(rig, (64, 128), 5.0, rig.output_rotation, disk=True)
    assert (first.builds, second.builds, second.disk_loads) == (1, 0, 1)
    for a, b in ((t1.main_maps[0], t2.main_maps[0]), (t1.gain_basis, t2.gain_basis), (t1.band_idx, t2.band_idx)):
        np.testing.assert_array_equal(a, b)


def test_geometry_is_exact_on_a_parallax_free_scene(scene):
    rig = synthetic_rig(256, seed=3, vignetting=0.0)
    out = Stitcher(rig, (128, 256), exposure=False, device="cpu").stitch(fisheye_frame(rig, scene))
    import cv2

    truth = cv2.resize(scene, (256, 128), interpolation=cv2.INTER_AREA)
    assert psnr(out, truth) > 45.0


def test_exposure_colour_and_vignetting_are_compensated(scene):
    rig = synthetic_rig(256, seed=4, vignetting=-0.3)
    gains = ((1.12, 1.0, 0.94), (0.9, 1.04, 1.08))
    frame = fisheye_frame(rig, scene, gains)
    st = Stitcher(rig, (128, 256), device="cpu")
    out = st.stitch(frame)
    ratio = np.array(gains[1]) / np.array(gains[0])
    est = st.exposure.applied[0] / st.exposure.applied[1]  # lens 0 is brought up by the inverse ratio
    np.testing.assert_allclose(est, ratio, rtol=0.01)
    # Up to one global gain per channel (the geometric mean exposure, scaled down together where
    # a lens would clip its highlights), the scene comes back.
    import cv2

    truth = cv2.resize(scene, (256, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
    g = np.sqrt(np.array(gains[0]) * np.array(gains[1])) * st.exposure.highlight_scale
    assert psnr(out, np.clip(truth * g, 0, 255)) > 38.0
    plain = Stitcher(rig, (128, 256), exposure=False, device="cpu").stitch(frame)
    band = st.tables().band_mask()
    assert np.abs(out.astype(int) - np.clip(truth * g, 0, 255))[band].mean() < \
        np.abs(plain.astype(int) - truth)[band].mean()


def test_levelling_rotates_the_output_without_rebuilding_per_frame(scene):
    rig = synthetic_rig(256, seed=5, vignetting=0.0)
    frame = fisheye_frame(rig, scene)
    st = Stitcher(rig, (128, 256), exposure=False, device="cpu", level_step_deg=0.1)
    R = level_from_ypr_deg(20.0, 8.0, -5.0)
    levelled = st.stitch(frame, level=R)
    # out(d) = rig(R^T d): the unlevelled panorama resampled by rotate_erp (out(d) = in(M d)) with M = R^T.
    expected = rotate_erp(st.stitch(frame), R.T)
    assert psnr(levelled, expected) > 34.0
    t = st.tables(R)
    assert st.tables(level_from_ypr_deg(20.02, 8.0, -5.0)) is t  # within the 0.1 degree step: cached
    assert st.tables(level_from_ypr_deg(21.0, 8.0, -5.0)) is not t
    np.testing.assert_allclose(level_from_gravity([0.0, 1.0, 0.0]), np.eye(3), atol=1e-12)
    g = rotation_from_ypr_deg(0, 10, 0) @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(level_from_gravity(g) @ g, [0.0, 1.0, 0.0], atol=1e-12)


def test_async_levelling_keeps_stitching_while_tables_build(scene):
    rig = synthetic_rig(128, seed=6)
    frame = fisheye_frame(rig, scene)
    with Stitcher(rig, (64, 128), device="cpu", async_tables=True) as st:
        first = st.tables()
        R = level_from_ypr_deg(0.0, 12.0, 0.0)
        assert st.tables(R) is first  # not built yet: the latest tables serve this frame
        st._pending[next(iter(st._pending))].result()
        assert st.tables(R) is not first
        assert st.stitch(frame, level=R).shape == (64, 128, 3)


def test_multiband_blend_matches_feather_quality(scene):
    rig = synthetic_rig(256, seed=7, vignetting=-0.2)
    frame = fisheye_frame(rig, scene, ((1.1, 1.0, 1.0), (0.92, 1.0, 1.05)))
    feather = Stitcher(rig, (128, 256), device="cpu").stitch(frame)
    multi = Stitcher(rig, (128, 256), blend="multiband", device="cpu").stitch(frame)
    assert psnr(multi, feather) > 35.0


def test_frame_buffer_skips_the_copy(scene):
    rig = synthetic_rig(128, seed=8)
    frame = fisheye_frame(rig, scene)
    st = Stitcher(rig, (64, 128), device="cpu")
    expected = st.stitch(frame.copy())
    buf = st.frame_buffer()
    buf[:] = frame
    np.testing.assert_array_equal(st.stitch(buf), expected)


@pytest.mark.parametrize("make,match", [
    (lambda rig: np.zeros((100, 200, 3), np.uint8), "rig expects 256x128"),
    (lambda rig: np.zeros((128, 256), np.uint8), r"\(H, W, 3\) uint8"),
    (lambda rig: np.zeros((128, 256, 3), np.float32), r"\(H, W, 3\) uint8"),
    (lambda rig: [np.zeros((128, 256, 3), np.uint8)] * 2, "numpy image"),
])
def test_wrong_frames_are_clear_errors(make, match):
    rig = synthetic_rig(128, seed=9)
    with pytest.raises(UsageError, match=match):
        Stitcher(rig, (64, 128), device="cpu").stitch(make(rig))


def test_bad_stitcher_settings_are_clear_errors():
    rig = synthetic_rig(128, seed=9)
    with pytest.raises(UsageError, match="feather, multiband"):
        Stitcher(rig, (64, 128), blend="laplace")
    with pytest.raises(UsageError, match="W == 2"):
        Stitcher(rig, (64, 100))
    with pytest.raises(UsageError, match="band width"):
        Stitcher(rig, (64, 128), band_deg=0.0)
    with pytest.raises(UsageError, match="rotation matrix"):
        Stitcher(rig, (64, 128)).stitch(np.zeros((128, 256, 3), np.uint8), level=np.ones((3, 3)))
