"""``panoedge stitch``, ``panoedge rig ...`` and ``panoedge bench stitch``: kinds of input, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import panoedge.cli.stitch  # noqa: F401  (registers the commands)
from panoedge.cli.app import app
from panoedge.errors import ConfigError, DataError, UsageError
from panoedge.io import write_rgb
from panoedge.stitch.rig import save_rig
from panoedge.synth.rig_render import synthetic_rig

from tests.test_stitch import fisheye_frame, smooth_erp

runner = CliRunner()


@pytest.fixture(scope="module")
def rig_and_frames():
    rig = synthetic_rig(64, seed=21)
    scene = smooth_erp(64)
    frames = [fisheye_frame(rig, np.roll(scene, 7 * k, axis=1)) for k in range(3)]
    return rig, frames


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)


def test_stitch_an_image_a_folder_and_a_video(tmp_path, rig_and_frames):
    rig, frames = rig_and_frames
    rig_path = save_rig(rig, tmp_path / "rig.yaml")
    write_rgb(tmp_path / "one.png", frames[0])
    res = invoke("stitch", tmp_path / "one.png", "--rig", rig_path, "--out", tmp_path / "one_erp.jpg", "--size", "32x64")
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(tmp_path / "one_erp.jpg")).shape == (32, 64, 3)

    folder = tmp_path / "frames"
    for k, f in enumerate(frames):
        write_rgb(folder / f"f{k}.png", f)
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "erps"
    res = invoke("stitch", folder, "--rig", rig_path, "--out", out, "--level", "10,0,0", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f2.png"]
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["frames"] == 3 and rep["skipped"] == 1 and "broken.png" in rep["skipped_reasons"][0]
    assert list(rep) == ["schema", "command", "rig", "kind", "out", "frames", "skipped", "skipped_reasons", "seconds",
                         "fps", "level"]  # the panoedge.stitch/1 JSON keeps its keys and their order

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 64))
    for f in frames + frames[:2]:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    data = bytearray(video.read_bytes())  # destroy the 3rd frame's JPEG data: it cannot be decoded
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    eoi = [i for i in range(soi[2], len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD9][0]
    data[soi[2]: eoi + 2] = bytes(eoi + 2 - soi[2])
    video.write_bytes(bytes(data))
    res = invoke("stitch", video, "--rig", rig_path, "--out", tmp_path / "clip_erp.avi", "--json", tmp_path / "v.json")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "v.json").read_text())
    assert rep["frames"] == 4 and rep["skipped"] == 1, rep
    cap = cv2.VideoCapture(str(tmp_path / "clip_erp.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_stitch_a_front_back_pair(tmp_path):
    rig = synthetic_rig(64, seed=22)
    frame = fisheye_frame(rig, smooth_erp(64))
    d = rig.to_dict()
    d.update(layout="separate", image_width_px=64)
    d["lenses"][1]["center_x_px"] -= 64
    rig_path = tmp_path / "pair.yaml"
    rig_path.write_text(yaml.safe_dump(d))
    write_rgb(tmp_path / "shot_front.png", frame[:, :64])
    write_rgb(tmp_path / "shot_back.png", frame[:, 64:])
    for inputs in ([tmp_path / "shot_front.png", tmp_path / "shot_back.png"], [tmp_path / "shot_back.png"]):
        res = invoke("stitch", *inputs, "--rig", rig_path, "--out", tmp_path / "pair.png")
        assert res.exit_code == 0, res.output
        assert cv2.imread(str(tmp_path / "pair.png")).shape == (64, 128, 3)


def test_bad_inputs_are_clear_errors(tmp_path, rig_and_frames):
    rig, frames = rig_and_frames
    rig_path = save_rig(rig, tmp_path / "rig.yaml")
    write_rgb(tmp_path / "small.png", frames[0][:, :100])
    res = invoke("stitch", tmp_path / "small.png", "--rig", rig_path, "--out", tmp_path / "o.png")
    assert isinstance(res.exception, UsageError) and "rig expects 128x64" in str(res.exception)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    res = invoke("stitch", tmp_path / "corrupt.jpg", "--rig", rig_path, "--out", tmp_path / "o.png")
    assert isinstance(res.exception, DataError) and "not a readable image" in str(res.exception)
    d = rig.to_dict()
    del d["lenses"][1]["radius_px"]
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(d))
    res = invoke("stitch", tmp_path / "small.png", "--rig", tmp_path / "missing.yaml", "--out", tmp_path / "o.png")
    assert isinstance(res.exception, ConfigError) and "lenses[1].radius_px" in str(res.exception)
    d = rig.to_dict()
    d["lenses"][0]["center_x_px"] = 5000
    (tmp_path / "range.yaml").write_text(yaml.safe_dump(d))
    res = invoke("stitch", tmp_path / "small.png", "--rig", tmp_path / "range.yaml", "--out", tmp_path / "o.png")
    assert isinstance(res.exception, ConfigError) and "out of range" in str(res.exception)
    res = invoke("stitch", tmp_path / "small.png", "--rig", "no_such_camera", "--out", tmp_path / "o.png")
    assert isinstance(res.exception, UsageError) and "gear360_c200_video2560" in str(res.exception)
    res = invoke("stitch", tmp_path / "small.png", "--rig", rig_path, "--out", tmp_path / "o.png", "--level", "1,2")
    assert isinstance(res.exception, UsageError) and "YAW,PITCH,ROLL" in str(res.exception)


def test_rig_show_list_and_calibrate(tmp_path):
    res = invoke("rig", "list")
    assert res.exit_code == 0 and "theta_s_liveview_1920x1080" in res.output and "generic" in res.output
    res = invoke("rig", "show", "gopro_fusion_video3k")
    assert res.exit_code == 0 and "separate" in res.output and "published" in res.output
    truth = synthetic_rig(128, seed=23, baseline_m=0.0)
    scene = smooth_erp(256)
    noise = cv2.resize(np.random.default_rng(1).integers(0, 255, (64, 128, 3), dtype=np.uint8), (512, 256))
    scene = cv2.addWeighted(scene, 0.5, noise, 0.5, 0)
    paths = []
    for k in range(2):
        paths.append(write_rgb(tmp_path / f"c{k}.png", fisheye_frame(truth, np.roll(scene, 40 * k, axis=1))))
    start = truth.with_lens(1, yaw_deg=truth.lenses[1].yaw_deg + 1.5)
    save_rig(start, tmp_path / "start.yaml")
    res = invoke("rig", "calibrate", *paths, "--init", tmp_path / "start.yaml", "--out", tmp_path / "cal.yaml",
                 "--json", tmp_path / "cal.json")
    assert res.exit_code == 0, res.output
    assert "residual" in res.output and "lens 1 relative to lens 0" in res.output
    rep = json.loads((tmp_path / "cal.json").read_text())
    assert list(rep) == ["schema", "command", "rig", "n_frames", "circles", "residual_before", "residual_after", "rounds",
                         "relative_ypr_deg", "fov_deg", "parallax_deg", "per_frame"]
    assert rep["residual_after"]["median_deg"] < rep["residual_before"]["median_deg"]
    from panoedge.geometry import rotation_angle
    from panoedge.stitch import load_rig

    cal = load_rig(tmp_path / "cal.yaml")
    assert np.rad2deg(rotation_angle(cal.relative_rotation().T @ truth.relative_rotation())) < 0.3
    assert cal.extra["calibration"]["frames"] == 2 and cal.name == "cal"
    assert "lenses[1].yaw_deg" in cal.extra["provenance"]["self_calibrated"]


def test_bench_stitch_reports_floor_and_ratio(tmp_path):
    res = invoke("bench", "stitch", "--size", "32x64", "--repeat", "3", "--warmup", "1", "--json", tmp_path / "b.json")
    assert res.exit_code == 0, res.output
    assert "remap_floor" in res.output and "stitch_over_floor" in res.output and "threads" in res.output
    rep = json.loads(Path(tmp_path / "b.json").read_text())
    assert rep["schema"] == "panoedge.bench/1"
    assert set(rep["cases"]) == {"stitch", "remap_floor"}
    assert rep["ratios"]["stitch_over_floor"] > 0
    assert rep["machine"]["cores"] >= 1 and rep["backend"]["opencv_threads"] >= 1
    assert {"min", "median", "p99"} <= set(rep["cases"]["stitch"]["latency_ms"])


@pytest.mark.slow
def test_rig_recovery_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "rec.json"
    res = CliRunner().invoke(app, ["rig", "recovery", "--cases", "1", "--frames", "3", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "rotation error: median" in res.output and "outdoor  handheld" in res.output
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["frames"] == 3 and rows[0]["start_rot_err_deg"] > 2.9
    assert rows[0]["rot_err_deg"] < rows[0]["start_rot_err_deg"]


def test_stitch_level_auto_and_the_level_command(tmp_path):
    from tests.conftest import real_file

    from panoedge.stitch.level import gravity_from_image

    frame = real_file("dual_fisheye", "theta_s_liveview_dualfisheye_1920x1080.jpg")
    out = tmp_path / "ts.png"
    res = CliRunner().invoke(app, ["stitch", str(frame), "--rig", "theta_s_liveview_1920x1080_selfcal", "--out",
                                   str(out), "--size", "256x512", "--device", "cpu", "--level", "auto",
                                   "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "level: lines" in res.output
    rep = json.loads((tmp_path / "s.json").read_text())
    assert rep["level"][0]["confidence"] >= 0.3
    res = CliRunner().invoke(app, ["level", str(out), "--out", str(tmp_path / "lv"), "--source", "image"])
    assert res.exit_code == 0, res.output
    assert gravity_from_image(cv2.cvtColor(cv2.imread(str(tmp_path / "lv" / "ts.png")), cv2.COLOR_BGR2RGB)).tilt_deg < 1.5
    bad = CliRunner().invoke(app, ["level", str(out), "--out", str(tmp_path / "lv"), "--source", "gyro"])
    assert bad.exit_code != 0 and "gyro" in str(bad.exception)
    bad = CliRunner().invoke(app, ["stitch", str(frame), "--rig", "theta_s_liveview_1920x1080", "--out",
                                   str(tmp_path / "x.png"), "--level", "sideways"])
    assert bad.exit_code != 0 and "auto" in str(bad.exception)
