"""Levelling (issue 18): GPano pose metadata, the vertical vanishing direction of the scene's lines,
the sky as a first guess, ``panoedge level`` and ``stitch --level auto``, and the IMU hook."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from panoedge.errors import DataError
from panoedge.geometry import rotate_erp, rotation_from_ypr_deg
from panoedge.io import read_rgb
from panoedge.stitch.level import (estimate_gravity, gravity_from_image, gravity_from_pose, gravity_from_sky,
                                   level_erp, level_files, read_gpano_pose)
from panoedge.stitch.level_hooks import GravityHook

from tests.conftest import real_file

Y = np.array([0.0, 1.0, 0.0])


def _angle(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def _tilted(img, pitch, roll):
    """``img`` (level) as a camera pitched/rolled by the given degrees sees it, and the true down there."""
    R = rotation_from_ypr_deg(0.0, pitch, roll)
    return rotate_erp(img, R), R.T @ Y  # out(d) = in(R d): down in the tilted frame is R^T y


def _jpeg_with_xmp(path, img, pitch, roll):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    xmp = (b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description "
           b"GPano:ProjectionType=\"equirectangular\" GPano:PosePitchDegrees=\"%s\" GPano:PoseRollDegrees=\"%s\"/>"
           b"</rdf:RDF></x:xmpmeta>" % (str(pitch).encode(), str(roll).encode()))
    seg = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    data = buf.tobytes()
    path.write_bytes(data[:2] + seg + data[2:])
    return path


def test_gpano_pose_is_read_from_theta_v_jpegs_and_bad_values_are_named(tmp_path):
    assert read_gpano_pose(real_file("erp_plain", "theta_v_incamera_erp_indoor_R0010221.jpg")) == \
        {"pitch_deg": 0.3, "roll_deg": 0.6, "heading_deg": 39.4}
    assert read_gpano_pose(real_file("erp_plain", "theta_v_incamera_erp_outdoor_street_R0010126.jpg"))["roll_deg"] == 6.2
    assert read_gpano_pose(real_file("erp_plain", "mp3d_7y3sRwLe3Va_1410b021_1024x512.png")) is None
    bad = _jpeg_with_xmp(tmp_path / "bad.jpg", np.zeros((16, 32, 3), np.uint8), "abc", 0)
    with pytest.raises(DataError, match=r"bad\.jpg.*PosePitchDegrees"):
        read_gpano_pose(bad)


def test_pose_gravity_levels_what_the_pose_describes():
    g = gravity_from_pose(4.0, -7.0)
    np.testing.assert_allclose(g.rotation() @ g.down, Y, atol=1e-12)
    assert np.isclose(g.tilt_deg, _angle(rotation_from_ypr_deg(0, 4, -7).T @ Y, Y))


@pytest.mark.parametrize("pitch,roll", [(5.0, -7.0), (-12.0, 3.0)])
def test_lines_recover_a_known_tilt_of_a_level_indoor_panorama_within_half_a_degree(pitch, roll):
    img = read_rgb(real_file("erp_plain", "mp3d_7y3sRwLe3Va_1410b021_1024x512.png"))
    tilted, down = _tilted(img, pitch, roll)
    g = gravity_from_image(tilted)
    assert g.confidence >= 0.5 and _angle(g.down, down) < 0.5, g.to_dict()
    assert gravity_from_image(level_erp(tilted, g)).tilt_deg < 0.5


def test_sky_gives_the_vertical_of_a_steeply_tilted_outdoor_frame():
    # The Fusion 3K frame was taken handheld at ~50 degrees: no lines near the vertical, but open sky.
    from panoedge.stitch import Stitcher
    from panoedge.stitch.frames import read_frame
    from panoedge.stitch.presets import load_preset

    rig = load_preset("gopro_fusion_video3k_selfcal")
    erp = Stitcher(rig, (128, 256), device="cpu").stitch(read_frame(rig, real_file("dual_fisheye",
                                                                                   "gopro_fusion_video3k_front.jpg")))
    g = gravity_from_image(erp)
    assert g.source.startswith("sky") and g.tilt_deg > 30.0 and g.confidence >= 0.3
    assert gravity_from_sky(level_erp(erp, g)).tilt_deg < 5.0


def test_panoedge_level_uses_the_pose_where_present_else_the_lines(tmp_path):
    img = read_rgb(real_file("erp_plain", "mp3d_7y3sRwLe3Va_1410b021_1024x512.png"))
    tilted, down = _tilted(img, 3.0, 6.0)
    with_pose = _jpeg_with_xmp(tmp_path / "posed.jpg", tilted, 3.0, 6.0)
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), cv2.cvtColor(tilted, cv2.COLOR_RGB2BGR))
    res = level_files([with_pose, plain], tmp_path / "out")
    rows = {r["input"].split("/")[-1]: r for r in res.to_dict()["files"]}
    assert rows["posed.jpg"]["gravity"]["source"] == "metadata"
    assert rows["plain.png"]["gravity"]["source"] == "lines"
    for name in ("posed.jpg", "plain.png"):
        out = read_rgb(tmp_path / "out" / name)
        assert gravity_from_image(out).tilt_deg < 0.7, name  # JPEG round trip included
    assert "posed.jpg" in res.format()


def test_theta_v_pose_is_what_auto_takes_and_agrees_with_the_lines_within_two_degrees():
    path = real_file("erp_plain", "theta_v_incamera_erp_outdoor_street_R0010126.jpg")
    small = cv2.resize(read_rgb(path), (1024, 512), interpolation=cv2.INTER_AREA)
    g = estimate_gravity(small, "auto", path)
    assert g.source == "metadata" and np.isclose(g.tilt_deg, 6.80, atol=0.01)
    assert g.details["image_vs_metadata_deg"] < 2.0


def test_gravity_hook_turns_imu_samples_into_level_rotations():
    hook = GravityHook(mount=rotation_from_ypr_deg(0, 0, 90))
    assert hook.rotation() is None
    hook.update([1.0, 0.0, 0.0])  # IMU x is the rig's down once the mount turns it
    np.testing.assert_allclose(hook.rotation() @ (hook.mount @ [1.0, 0.0, 0.0]), Y, atol=1e-12)
    before = hook.rotation()
    hook.update([0.0, 0.0, 0.0])  # a dropped sample keeps the attitude
    hook.update([np.nan, 1.0, 0.0])
    np.testing.assert_array_equal(hook.rotation(), before)


def test_image_level_hook_estimates_in_the_background_and_composes_with_the_rotation_used():
    from panoedge.stitch.level_hooks import ImageLevelHook

    img = read_rgb(real_file("erp_plain", "mp3d_7y3sRwLe3Va_1410b021_1024x512.png"))
    tilted, down = _tilted(img, 6.0, -4.0)
    hook = ImageLevelHook(every_s=1000.0)
    assert hook.rotation() is None
    assert hook.offer(tilted) and not hook.offer(tilted)  # one estimate at a time, then every every_s
    hook.wait()
    R = hook.rotation()
    np.testing.assert_allclose(R @ down, Y, atol=np.radians(0.5))
    # The next ERP comes stitched with R already: a level one keeps R.
    hook.every_s = 0.0
    assert hook.offer(level_erp(tilted, hook.estimates[-1]), R)
    hook.wait()
    assert np.degrees(np.arccos(np.clip((np.trace(hook.rotation().T @ R) - 1) / 2, -1, 1))) < 0.5
