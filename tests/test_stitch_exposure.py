"""Exposure compensation in linearised light, with highlight protection: it never blows out what
the lenses did not already clip (issue 18: at most +0.5 points of clipped pixels on every real frame)."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.eval.stitch_quality import REAL_FRAMES, clipped_fraction
from panoedge.stitch import Stitcher
from panoedge.stitch.exposure import CLIPPED_LEVEL, GAMMA, ExposureCompensator, highlight_headroom
from panoedge.stitch.frames import read_frame
from panoedge.stitch.presets import load_preset

from tests.conftest import real_file


def _samples(level_a, level_b, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 1.0, size=(n, 3))
    a = np.clip(np.round(base * level_a), 0, 255).astype(np.uint8)
    b = np.clip(np.round(base * level_b), 0, 255).astype(np.uint8)
    return a, b, np.ones(n), np.ones(n)


def test_gains_are_estimated_in_linear_light_and_applied_as_one_encoded_multiplier():
    # Lens b saw 1.3x the linear light of lens a: on encoded values that is 1.3 ** (1 / GAMMA).
    enc = 1.3 ** (1.0 / GAMMA)
    a, b, wa, wb = _samples(150.0, 150.0 * enc)
    ex = ExposureCompensator(protect_highlights=False)
    ex.update(a, b, wa, wb)
    np.testing.assert_allclose(ex.applied[0] / ex.applied[1], enc, rtol=0.01)
    np.testing.assert_allclose(ex.applied[0] * ex.applied[1], 1.0, rtol=1e-9)  # the geometric mean


def test_highlight_protection_keeps_the_ratio_and_never_lifts_a_clipped_lens():
    a, b, wa, wb = _samples(120.0, 170.0)
    free = ExposureCompensator(protect_highlights=False)
    free.update(a, b, wa, wb)
    assert free.applied[0].max() > 1.1  # unprotected, the dark lens is lifted
    ex = ExposureCompensator()
    ex.update(a, b, wa, wb, highs=np.array([255.0, 200.0]))  # the dark lens has a clipped sky
    assert ex.applied[0].max() <= 1.0 + 1e-9
    np.testing.assert_allclose(ex.applied[0] / ex.applied[1], free.applied[0] / free.applied[1], rtol=1e-9)
    # With headroom the lens may be lifted up to it, not past it.
    ex2 = ExposureCompensator()
    ex2.update(a, b, wa, wb, highs=np.array([230.0, 200.0]))
    assert ex2.applied[0].max() <= highlight_headroom(230.0) + 1e-9
    assert ex2.applied[0].max() * 230.0 < CLIPPED_LEVEL


def test_highlight_scale_is_smoothed_for_video_but_never_above_the_frames_limit():
    a, b, wa, wb = _samples(120.0, 170.0)
    ex = ExposureCompensator(smoothing=0.8)
    ex.update(a, b, wa, wb, highs=np.array([150.0, 150.0]))
    assert ex.highlight_scale == 1.0
    ex.update(a, b, wa, wb, highs=np.array([255.0, 150.0]))  # a highlight appears: protected at once
    assert ex.applied[0].max() <= 1.0 + 1e-9
    ex.update(a, b, wa, wb, highs=np.array([150.0, 150.0]))  # and released slowly
    assert ex.highlight_scale < 1.0


@pytest.mark.parametrize("rig_name,name", [(p, n) for p, n, _ in REAL_FRAMES] + [(s, n) for _, n, s in REAL_FRAMES],
                         ids=[p for p, _, _ in REAL_FRAMES] + [s for _, _, s in REAL_FRAMES])
def test_compensation_clips_no_more_than_half_a_point_beyond_the_raw_lenses_on_real_frames(rig_name, name):
    rig = load_preset(rig_name)
    frame = read_frame(rig, real_file("dual_fisheye", name))
    got = {}
    for exposure in (False, True):
        st = Stitcher(rig, (128, 256), exposure=exposure, device="cpu")
        got[exposure] = clipped_fraction(st.stitch(frame), st.tables().own >= 0)
    assert got[True] <= got[False] + 0.5, got


def test_clipped_channels_stay_white_under_a_mild_gain_only():
    from panoedge.stitch.stitcher import scale_keeping_clipped

    img = np.array([[[255, 200, 252], [100, 255, 0]]], dtype=np.uint8)
    mild = np.full_like(img, 115)  # 0.9 x one (128)
    out = scale_keeping_clipped(img.copy(), mild, 128)
    np.testing.assert_array_equal(out, [[[255, 180, 255], [90, 255, 0]]])
    strong = np.full_like(img, 64)  # 0.5: the other lens is far darker, its view is not clipped
    np.testing.assert_array_equal(scale_keeping_clipped(img.copy(), strong, 128), [[[128, 100, 126], [50, 128, 0]]])
