"""The seam gain field (exposure that varies along the seam) and the seam comparison with Hugin
(its figures and the .pto alignment; Hugin itself is never needed)."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.errors import UsageError
from panoedge.eval import seam_compare
from panoedge.eval.seam_compare import Layers, aligned_pto, common_band, seam_figures
from panoedge.stitch import Stitcher
from panoedge.stitch.seam_gain import (AZIMUTH_LEVELS, MAX_FIELD_GAIN, SEAM_BINS, bin_log_ratios, field_from_bins,
                                       level_table)
from panoedge.synth.rig_render import synthetic_rig
from tests.test_stitch import fisheye_frame, smooth_erp


@pytest.fixture(scope="module")
def rig_and_scene():
    return synthetic_rig(256, seed=4), smooth_erp(256)


def azimuth_shaded(rig, frame: np.ndarray, amplitude: float = 0.25) -> np.ndarray:
    """``frame`` with lens 1 brightened/darkened by ``1 + amplitude cos(azimuth)`` about its centre."""
    lens = rig.lenses[1]
    x0, y0, x1, y1 = rig.lens_region(1)
    v, u = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    g = 1.0 + amplitude * np.cos(np.arctan2(v - lens.center_y_px, u - lens.center_x_px))
    out = frame.astype(np.float64)
    sel = (u >= x0) & (u < x1) & (v >= y0) & (v < y1)
    out[sel] *= g[sel][:, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def band_mad(st: Stitcher, frame) -> float:
    a, b, w = st.band_samples(frame)
    return float((np.abs(a - b).mean(1) * w).sum() / w.sum())


def test_bin_medians_and_the_field():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, AZIMUTH_LEVELS, 4000).astype(np.uint8)
    truth = 0.3 * np.sin(2 * np.pi * ((levels.astype(int) * SEAM_BINS) // AZIMUTH_LEVELS + 0.5) / SEAM_BINS)
    lr = np.repeat(truth[:, None], 3, axis=1) + rng.normal(0, 0.01, (4000, 3))
    med, weight = bin_log_ratios(lr, np.ones_like(lr), levels)
    assert med.shape == (SEAM_BINS, 3) and weight.sum() == pytest.approx(4000)
    want = 0.3 * np.sin(2 * np.pi * (np.arange(SEAM_BINS) + 0.5) / SEAM_BINS)
    np.testing.assert_allclose(med[:, 0], want, atol=0.015)  # a median bin is 0.012 wide
    weight[5] = 0.0  # an empty bin keeps the global gain; everything is clamped
    field = field_from_bins(med + 5.0, weight, np.zeros(3))
    assert np.all(np.abs(field) <= 2 * np.log(MAX_FIELD_GAIN) + 1e-9)
    field = field_from_bins(med, weight, np.zeros(3))
    assert abs(field[5, 0]) < 0.5 * abs(want[5])


def test_level_table_darkens_only_the_brighter_lens():
    field = np.zeros((SEAM_BINS, 3))
    field[:, 0] = 0.2  # lens 1 brighter in red everywhere
    field[:, 1] = -0.1  # lens 0 brighter in green
    t = level_table(field)
    assert t.shape == (AZIMUTH_LEVELS, 2, 3) and np.all(t <= 0)
    np.testing.assert_allclose(t[:, 0, 0], 0.0)
    np.testing.assert_allclose(t[:, 1, 0], -0.2, atol=1e-6)
    np.testing.assert_allclose(t[:, 0, 1], -0.1, atol=1e-6)
    np.testing.assert_allclose(t[:, 0] - t[:, 1], np.broadcast_to(field[0], (AZIMUTH_LEVELS, 3)), atol=1e-6)


@pytest.mark.parametrize("blend", ["feather", "multiband"])
def test_field_follows_an_exposure_that_changes_along_the_seam(rig_and_scene, blend):
    rig, scene = rig_and_scene
    frame = azimuth_shaded(rig, fisheye_frame(rig, scene))
    plain = Stitcher(rig, (64, 128), blend=blend, device="cpu", seam_field=False)
    field = Stitcher(rig, (64, 128), blend=blend, device="cpu")
    plain.stitch(frame), field.stitch(frame)
    assert field.seam_field() is not None and plain.seam_field() is None
    assert band_mad(field, frame) < 0.5 * band_mad(plain, frame)
    # The same through the seam comparison's layers, and the blended output steps less.
    lays = [seam_compare.panoedge_layers(rig, frame, (64, 128), blend=blend, seam_field=f)[0] for f in (False, True)]
    band = common_band(lays, plain.tables().seam_deg, 5.0)
    f_plain, f_field = (seam_figures(x, band) for x in lays)
    assert f_field["colour_mad_pct"] < 0.5 * f_plain["colour_mad_pct"]
    assert f_field["visible_step"] < f_plain["visible_step"]


def test_field_is_quiet_when_one_gain_suffices_and_costs_no_rebuild(rig_and_scene):
    rig, scene = rig_and_scene
    frame = fisheye_frame(rig, scene, ((1.1, 1.0, 0.95), (0.92, 1.0, 1.05)))
    st = Stitcher(rig, (64, 128), device="cpu")
    out = st.stitch(frame)
    assert np.max(np.abs(st.seam_field())) < 0.03
    plain = Stitcher(rig, (64, 128), device="cpu", seam_field=False).stitch(frame)
    assert np.abs(out.astype(int) - plain).mean() < 0.5
    gm = st._gm
    st.stitch(frame)
    assert st._gm is gm  # same frame, same field: the gain images are kept


def test_torch_path_applies_the_field_like_opencv(rig_and_scene):
    pytest.importorskip("torch")
    rig, scene = rig_and_scene
    frame = azimuth_shaded(rig, fisheye_frame(rig, scene))
    cpu = Stitcher(rig, (64, 128), device="cpu").stitch(frame)
    tch = Stitcher(rig, (64, 128), device="torch-cpu").stitch(frame)
    assert np.abs(cpu.astype(int) - tch).max() <= 1


def _layers(name, a, b, out, valid=None):
    valid = np.ones(a.shape[:2], bool) if valid is None else valid
    return Layers(name, a.astype(np.float32), b.astype(np.float32), valid, valid, out.astype(np.float32))


def test_seam_figures_are_zero_for_agreeing_lenses_and_see_a_hard_step():
    h, w = 64, 128
    x = np.arange(w, dtype=np.float32)
    texture = 120.0 + 60.0 * np.sin(0.9 * x)[None, :] * np.cos(0.7 * np.arange(h, dtype=np.float32))[:, None]
    base = np.repeat(texture[..., None], 3, axis=2)  # textured, so a spread-out step hides in it
    seam = np.zeros((h, w), np.float32)
    seam[:, : w // 2] = 1.0
    seam_deg = np.tile(np.linspace(-20, 20, w, dtype=np.float32), (h, 1))
    same = _layers("same", base, base, base)
    b = base * 1.2
    hard = _layers("hard", base, b, np.where(seam[..., None] > 0, base, b))
    ramp = np.clip(0.5 - seam_deg / 10.0, 0, 1)[..., None]
    soft = _layers("soft", base, b, ramp * base + (1 - ramp) * b)
    band = common_band([same, hard, soft], seam_deg, 10.0)
    assert band.any() and not band.all()
    f_same, f_hard, f_soft = (seam_figures(x, band) for x in (same, hard, soft))
    assert f_same["lens_mad"] == pytest.approx(0.0, abs=1e-4) and f_same["visible_step"] == pytest.approx(0, abs=1e-3)
    assert f_hard["lens_mad"] == pytest.approx(f_soft["lens_mad"])
    assert f_hard["lens_mad"] > 10.0
    assert f_hard["lens_mad_pct"] == pytest.approx(100 * f_hard["lens_mad"] / f_hard["band_level"])
    assert f_hard["visible_step"] > 2.0 * f_soft["visible_step"] > 0
    assert f_same["band_sharpness"] == pytest.approx(1.0, abs=1e-3)


def test_aligned_pto_turns_every_image_and_sets_a_full_erp():
    text = ("p f2 w2560 h1280 v359  E0 R0 n\"TIFF_m c:LZW r:CROP\"\n"
            "i w2560 h1280 f2 v377.2 r11.8 p-0.98 y179.65 d-609.7 e0 Vm5 n\"dummy.jpg\"\n"
            "i w2560 h1280 f2 v379.4 r-11.7 p2.45 y-10.66 TrX0 d601.3 n\"dummy.jpg\"\n"
            "c n0 N1 x118 y302 X2404 Y318 t0\n")
    out = aligned_pto(text, -180.0, 1024, 512).splitlines()
    assert out[0].startswith("p f2 w1024 h512 v360 ")
    assert " y-0.3499999999999943 " in out[1] and " y-190.66 " in out[2]
    assert " p-0.98 " in out[1] and " r-11.7 " in out[2]
    assert out[3] == "c n0 N1 x118 y302 X2404 Y318 t0"  # control points untouched


def test_hugin_missing_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(seam_compare.shutil, "which", lambda name: None)
    assert seam_compare.missing_hugin_tools() == ["nona", "enblend"]
    with pytest.raises(UsageError, match="nona, enblend not found.*apt-get install hugin-tools enblend"):
        seam_compare.hugin_render(tmp_path / "x.pto", tmp_path / "f.png", (64, 128))


def test_video_field_is_estimated_every_few_frames_with_the_gains_time_constant():
    from panoedge.stitch.exposure import ExposureCompensator
    from panoedge.stitch.seam_gain import FIELD_EVERY

    rng = np.random.default_rng(1)
    n = 6000
    levels = rng.integers(0, AZIMUTH_LEVELS, n).astype(np.uint8)
    a = rng.integers(60, 180, (n, 3)).astype(np.uint8)
    ones = np.ones(n, np.float32)

    def lens_b(amplitude):
        g = 1.0 + amplitude * np.cos(2 * np.pi * (levels.astype(float) + 0.5) / AZIMUTH_LEVELS)
        return np.clip(np.round(a * g[:, None]), 0, 255).astype(np.uint8)

    e = ExposureCompensator(smoothing=0.8, azimuthal=True)
    e.update(a, lens_b(0.0), ones, ones, azimuth=levels)
    first = e.seam_field.copy()
    assert np.max(np.abs(first)) < 0.03
    b = lens_b(0.3)
    for _ in range(FIELD_EVERY - 1):  # frames 2..FIELD_EVERY: not re-estimated
        e.update(a, b, ones, ones, azimuth=levels)
        np.testing.assert_array_equal(e.seam_field, first)
    assert e.update(a, b, ones, ones, azimuth=levels)  # frame FIELD_EVERY + 1: the field moves
    moved = np.max(np.abs(e.seam_field - first))
    assert 0.1 < moved < (1.0 - 0.8 ** FIELD_EVERY) * 0.6 + 0.02


def test_tables_azimuth_and_fade_follow_their_definitions(rig_and_scene):
    from panoedge.stitch.seam_gain import FIELD_FADE_DEG, azimuth_levels
    from panoedge.stitch.tables import _block_rays, build_tables

    rig, _ = rig_and_scene
    t = build_tables(rig, (64, 128))
    levels, fd = t.azimuth_fade()
    want = azimuth_levels(_block_rays(64, 128, 0, 64) @ t.r_out, rig.lenses[0].rotation).reshape(64, 128)
    diff = (levels.astype(int) - want) % AZIMUTH_LEVELS
    assert np.minimum(diff, AZIMUTH_LEVELS - diff).max() <= 1  # float32 against float64
    assert np.all(fd[t.band_mask()] == 255)
    assert np.all(fd[np.abs(t.seam_deg) > t.band_deg / 2 + FIELD_FADE_DEG] == 0)
    np.testing.assert_array_equal(t.band_azimuth(), levels.ravel()[t.band_idx])
