"""Renders of the synthetic world: cross-camera consistency, determinism, datasets on disk."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from panoedge.data import DatasetFolder
from panoedge.data.synth_folder import generate_dataset
from panoedge.errors import UsageError
from panoedge.geometry import ErpCamera, FisheyeCamera, PinholeCamera, erp_table_for_rays, rot_y, rotation_from_ypr
from panoedge.synth import dataset as synth_dataset
from panoedge.synth.dataset import SynthSpec
from panoedge.synth.render import render, render_erp
from panoedge.synth.world import make_world


def _erp_lookup(erp_view, R_erp, rays_world):
    """Sample an ERP render along world rays: range (bilinear), and where the 3x3 neighbourhood
    is smooth (depth spread < 5%, one label), the label."""
    h, w = erp_view.depth.shape
    table = erp_table_for_rays((h, w), rays_world @ R_erp)  # world -> ERP camera frame
    rng = table.apply(erp_view.depth[..., None])[..., 0]
    k = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(erp_view.depth, k) - cv2.erode(erp_view.depth, k)
    lab_var = cv2.dilate(erp_view.labels, k) != cv2.erode(erp_view.labels, k)
    smooth = (spread < 0.05 * erp_view.depth) & ~lab_var & (erp_view.depth > 0)
    smooth_s = table.apply(smooth, "nearest")
    lab = table.apply(erp_view.labels, "nearest")
    return rng, lab, smooth_s


@pytest.mark.parametrize("family", ["indoor", "outdoor"])
def test_depth_and_labels_agree_across_erp_pinhole_and_fisheye(family):
    world = make_world(family, 11)
    pos = world.default_camera()
    R_erp = rot_y(0.3)
    erp = render_erp(world, 512, 1024, pos, R_erp)
    cams = [
        (PinholeCamera.from_fov(90, 120, 100.0), rotation_from_ypr(0.8, -0.2, 0.1)),
        (FisheyeCamera.from_fov(120, 120, "equisolid", 200.0), rotation_from_ypr(-2.0, 0.3, 0.0)),
    ]
    for cam, R in cams:
        view = render(world, cam, pos, R)
        rays, valid = cam.rays()
        ref_range, ref_lab, smooth = _erp_lookup(erp, R_erp, rays @ R.T)
        rng = view.depth / rays[..., 2] if view.depth_kind == "z" else view.depth
        check = valid & smooth & (view.depth > 0)
        assert check.mean() > 0.3
        err = np.abs(rng[check] - ref_range[check])
        assert np.quantile(err, 0.99) < 0.01, (type(cam).__name__, np.quantile(err, 0.99))
        assert (view.labels[check] == ref_lab[check]).mean() > 0.995
        # Sky (outdoor) has no depth in any view and keeps its label.
        assert ((view.depth == 0) & valid).sum() == 0 or family == "outdoor"


def test_renders_are_deterministic_and_seeds_differ():
    a = render_erp(make_world("indoor", 5), 32, 64)
    b = render_erp(make_world("indoor", 5), 32, 64)
    c = render_erp(make_world("indoor", 6), 32, 64)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.rgb, c.rgb)
    assert a.depth_kind == "range" and isinstance(ErpCamera(32, 64), ErpCamera)


@pytest.mark.parametrize("kwargs,match", [
    (dict(size=(33, 66)), "multiple of 2"),
    (dict(size=(32, 100)), "W == 2"),
    (dict(family="moon"), "indoor"),
    (dict(n=0), "at least 1"),
    (dict(fisheye=True, fisheye_size=(64, 100)), "H x 2H"),
])
def test_bad_synth_arguments_are_clear_errors(kwargs, match):
    spec = SynthSpec(**{"n": 1, **kwargs})
    with pytest.raises(UsageError, match=match):
        spec.validate()


def test_dataset_folder_with_fisheye_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    spec = SynthSpec(n=3, seed=2, size=(32, 64), family="mixed", fisheye=True, fisheye_size=(48, 96))
    calls = []
    real = synth_dataset.render_sample

    def flaky(spec_, i, rig=None):
        calls.append(i)
        if i == 2 and len(calls) == 3:
            raise KeyboardInterrupt  # interrupted after two samples
        return real(spec_, i, rig)

    monkeypatch.setattr(synth_dataset, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(out, spec, progress=False)
    assert not out.exists()
    res = generate_dataset(out, spec, progress=False)
    assert calls == [0, 1, 2, 2]  # the rerun resumed: only the unfinished sample was rendered again
    assert res.path == out and res.rendered == 1 and res.spec.n == 3
    assert res.format() == f"wrote 3 mixed panoramas (32x64) to {out}"
    assert res.to_dict()["schema"] == "panoedge.synth/1" and res.to_dict()["spec"]["fisheye_size"] == [48, 96]
    ds = DatasetFolder(out)
    assert len(ds) == 3 and set(ds.modalities) == {"rgb", "depth", "semantic", "fisheye"}
    assert "sky" in ds.classes and "ceiling" in ds.classes and ds.colors.shape == (len(ds.classes), 3)
    s = ds.load(ds.stems[1])
    assert s["rgb"].shape == (32, 64, 3) and s["fisheye"].shape == (48, 96, 3)
    assert s["depth"].dtype == np.float32 and s["semantic"].max() < len(ds.classes)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["schema"] == "panoedge.dataset/1" and meta["rig"] == "rig.yaml" and (out / "rig.yaml").is_file()
    with pytest.raises(UsageError, match="already exists"):
        generate_dataset(out, spec, progress=False)


def test_worker_processes_write_the_same_dataset_as_one_process(tmp_path, monkeypatch):
    spec = SynthSpec(n=4, seed=5, size=(32, 64), family="mixed", fisheye=True, fisheye_size=(48, 96))
    generate_dataset(tmp_path / "one", spec, progress=False)
    monkeypatch.setattr(synth_dataset, "render_workers", lambda n, size: 2)
    monkeypatch.setattr("panoedge.parallel._ALLOWED", True)  # pytest's main module is guarded
    generate_dataset(tmp_path / "two", spec, progress=False)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 4 * 5 + 2  # rgb, depth, semantic, fisheye, cameras per sample; meta.json, rig.yaml
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    monkeypatch.undo()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert synth_dataset.render_workers(192, (256, 512)) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert synth_dataset.render_workers(7, (256, 512)) == 1  # too little work to share
    assert synth_dataset.render_workers(192, (256, 512)) == min(24, len(os.sched_getaffinity(0)))


def test_library_callers_get_one_process_unless_allowed(monkeypatch):
    import subprocess
    import sys

    from panoedge import parallel

    code = "import panoedge.parallel as p, panoedge.synth.dataset; print(p._ALLOWED)"  # imports alone allow nothing
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    monkeypatch.setattr(parallel, "_ALLOWED", False)  # a script or notebook: its main module may not be importable
    assert list(parallel.map_ordered(lambda x: 2 * x, [1, 2, 3], workers=2)) == [2, 4, 6]  # a lambda: in-process


def test_synth_cli_writes_a_dataset(tmp_path):
    from typer.testing import CliRunner

    from panoedge.cli import app

    res = CliRunner().invoke(app, ["synth", str(tmp_path / "d"), "--n", "2", "--size", "32x64", "--family", "outdoor"])
    assert res.exit_code == 0, res.output
    ds = DatasetFolder(tmp_path / "d")
    assert ds.stems == ["outdoor_00000_00000", "outdoor_00000_00001"]
    assert ds.classes[ds.load(ds.stems[0])["semantic"].max()] in ds.classes


def test_resolve_data_renders_synth_once_and_checks_folders(tmp_path):
    from panoedge.data import parse_synth, resolve_data

    ds = resolve_data("synth:outdoor?n=2&size=32x64&seed=4", progress=False)
    assert len(ds) == 2 and "sky" in ds.classes
    again = resolve_data("synth:outdoor?n=2&size=32x64&seed=4", progress=False)
    assert again.root == ds.root  # cached by content
    assert parse_synth("synth:indoor", n=3).n == 3 and parse_synth("synth:indoor?n=5", n=3).n == 5
    with pytest.raises(UsageError, match="unknown option"):
        parse_synth("synth:indoor?frames=2")
    with pytest.raises(UsageError, match="indoor"):
        resolve_data("synth:moon?n=1", progress=False)
    with pytest.raises(UsageError, match="no such folder; DATA is a folder of panoramas"):
        resolve_data(tmp_path / "nothing")
