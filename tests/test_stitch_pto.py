"""Hugin ``.pto`` lenses in our conventions, and the Gear 360 presets level like Hugin's panorama."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.errors import ConfigError
from panoedge.geometry import rotation_from_ypr_deg
from panoedge.stitch.presets import load_preset
from panoedge.stitch.pto import (PtoImage, horizon_difference_deg, kabsch, orientation_against, oriented_like,
                                 read_pto)

from tests.conftest import real_file

PTO = "gear360_gen1_video2560.pto"


def _image(y, p, r, d=0.0):
    return PtoImage(projection=2, width=512, height=256, hfov_deg=380.0, yaw_deg=y, pitch_deg=p, roll_deg=r, d_px=d)


def test_pto_angles_follow_hugin_conventions():
    # Positive yaw turns the image centre right (+x), positive pitch up (-y), as in ours.
    centre = (255.5, 127.5)
    np.testing.assert_allclose(_image(30, 0, 0).rays(*centre), [np.sin(np.pi / 6), 0, np.cos(np.pi / 6)], atol=1e-9)
    np.testing.assert_allclose(_image(0, 30, 0).rays(*centre), [0, -np.sin(np.pi / 6), np.cos(np.pi / 6)], atol=1e-9)
    # Yaw and pitch alone agree with our yaw/pitch; roll turns the image about its axis.
    np.testing.assert_allclose(_image(20, 10, 0).rotation, rotation_from_ypr_deg(20, 10, 0), atol=1e-12)
    r = _image(0, 0, 15).rotation
    assert np.isclose(abs(np.degrees(np.arccos(r[0, 0]))), 15.0) and np.isclose(r[2, 2], 1.0)


def test_kabsch_recovers_a_rotation():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    R = rotation_from_ypr_deg(40, -12, 7)
    np.testing.assert_allclose(kabsch(src, src @ R.T), R, atol=1e-12)


def test_read_pto_and_its_errors(tmp_path):
    ims = read_pto(real_file("lens_params", PTO))
    assert len(ims) == 2 and ims[0].projection == 2 and np.isclose(ims[0].roll_deg, 11.8008389973319)
    assert ims[1].crop == (1250.0, 2587.0, -28.0, 1308.0)
    bad = tmp_path / "bad.pto"
    bad.write_text("p f2 w100 h50 v360\ni w100 h50 f2 vwide r0 p0 y0\n")
    with pytest.raises(ConfigError, match=r"bad\.pto.*line 2: v"):
        read_pto(bad)
    bad.write_text("p f2 w100 h50 v360\n")
    with pytest.raises(ConfigError, match="i lines"):
        read_pto(bad)


@pytest.mark.parametrize("name", ["gear360_c200_video2560", "gear360_c200_video2560_selfcal"])
def test_gear360_presets_are_within_one_degree_of_hugins_level(name):
    ims = read_pto(real_file("lens_params", PTO))
    pitch, roll, tilt = horizon_difference_deg(orientation_against(load_preset(name), ims))
    assert abs(pitch) < 1.0 and abs(roll) < 1.0, (pitch, roll)


def test_oriented_like_turns_a_nominal_rig_to_hugins_level_and_keeps_it_facing_forward():
    ims = read_pto(real_file("lens_params", PTO))
    rig = load_preset("gear360_c200_video2560").with_lens(0, yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0) \
        .with_lens(1, yaw_deg=180.0, pitch_deg=0.0, roll_deg=0.0)
    assert horizon_difference_deg(orientation_against(rig, ims))[2] > 10.0  # the camera is held rolled
    for per_lens in (True, False):
        out = oriented_like(rig, ims, per_lens=per_lens)
        assert horizon_difference_deg(orientation_against(out, ims))[2] < 0.05
        assert abs(out.lenses[0].yaw_deg) < 1e-6
    kept = oriented_like(rig, ims, per_lens=False)
    np.testing.assert_allclose(kept.relative_rotation(), rig.relative_rotation(), atol=1e-5)
