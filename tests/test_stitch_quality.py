"""Quality on synthetic rigs, where the true ERP and the true rig are known.

Frames are rendered at 2x and area-averaged (as a sensor integrates), with random per-lens
exposure, white balance, noise and vignetting (``SensorEffects.random``), a 3 cm baseline
(parallax) and a random mounting misalignment, as ``panoedge synth --fisheye`` makes them.
"""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.eval.stitch_quality import calibration_recovery, render_frames, synthetic_psnr
from panoedge.stitch.circles import find_circle
from panoedge.synth.rig_render import synthetic_rig


def test_psnr_against_the_true_erp_outside_and_inside_the_band():
    rows = synthetic_psnr(n=1, frame_h=256, out_h=128, families=("indoor", "outdoor"), seed=0)
    for r in rows:
        # Area-weighted, after one global gain per channel: the two lenses' random exposures can
        # only be made to agree with each other; their absolute level is not knowable.
        assert r["psnr_out_aligned"] >= 30.0, r
        assert r["psnr_band_aligned"] >= 28.0, r  # reported; parallax is largest in the band
        assert np.isfinite(r["psnr_out"]) and np.isfinite(r["psnr_band"])


def test_image_circles_are_found_to_a_tenth_of_a_pixel():
    rig = synthetic_rig(256, seed=2)
    (frame, _), = render_frames(lambda s: synthetic_rig(256 * s, seed=2), 1, "indoor", 2)
    for i, lens in enumerate(rig.lenses):
        x0 = 256 * i
        c = find_circle(frame[:, x0: x0 + 256])
        assert abs(c.cx + x0 - lens.center_x_px) < 0.1 and abs(c.cy - lens.center_y_px) < 0.1
        assert abs(c.radius - lens.radius_px) < 0.15


def test_self_calibration_recovers_rotation_and_fov_without_parallax():
    r = calibration_recovery("outdoor", seed=1, n=5, frame_h=256, baseline_m=0.0, attitude="handheld", supersample=1)
    assert r["start_rot_err_deg"] == pytest.approx(3.0, abs=1e-6)
    assert max(abs(e) for e in r["start_fov_err_deg"]) == pytest.approx(3.0)
    assert r["rot_err_deg"] < 0.2, r
    assert max(abs(e) for e in r["fov_err_deg"]) < 1.0, r


@pytest.mark.slow
def test_self_calibration_with_a_3cm_baseline():
    """With real parallax the accuracy depends on the scene's depth around the seam (see
    ``calibration_recovery``): handheld frames of an outdoor scene reach the target."""
    r = calibration_recovery("outdoor", seed=2, n=5, frame_h=512, baseline_m=0.03, attitude="handheld")
    assert r["rot_err_deg"] < 0.2, r
    assert max(abs(e) for e in r["fov_err_deg"]) < 1.0, r
