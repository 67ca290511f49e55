"""The one DATA resolver: plain panorama folders, published layouts, stitched recordings.

Published layouts are built in tmp folders from the real Structured3D rooms in
../shared/data/real (symlinks, never copies into the repository).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from panoedge.data import DatasetFolder, ImageFolder, resolve_data
from panoedge.data.layouts import NYU40, STANFORD13, LayoutDataset
from panoedge.errors import DataError, UsageError
from panoedge.io import write_rgb
from tests.conftest import real_file

S3D = "erp_depth_semantic"
INDOOR = ["wall", "floor", "ceiling", "door", "window", "table", "chair", "sofa", "shelf", "person", "clutter"]


def structured3d_tree(root):
    """``root`` in the official Structured3D layout, linked to the two real rooms."""
    for room in ("581", "852"):
        full = root / "scene_03262" / "2D_rendering" / room / "panorama" / "full"
        full.mkdir(parents=True)
        for src, dst in (("rgb", "rgb_rawlight"), ("depth_mm", "depth"), ("semantic_nyu40", "semantic")):
            (full / f"{dst}.png").symlink_to(real_file(S3D, f"s3d_scene03262_room{room}_{src}.png"))
    return root


def test_plain_folder_recursive_without_meta(tmp_path):
    rgb = np.zeros((16, 32, 3), np.uint8)
    write_rgb(tmp_path / "a.png", rgb)
    write_rgb(tmp_path / "day1" / "cam" / "0001.jpg", rgb)
    write_rgb(tmp_path / ".hidden" / "x.png", rgb)
    ds = resolve_data(tmp_path)
    assert isinstance(ds, ImageFolder) and ds.classes is None and ds.modalities == ["rgb"]
    assert ds.stems == ["a", "day1__cam__0001"]
    assert ds.load("day1__cam__0001")["rgb"].shape == (16, 32, 3)
    write_rgb(tmp_path / "a.jpg", rgb)  # same stem as a.png
    with pytest.raises(DataError, match="a.jpg and .*a.png: two images with the same name"):
        _ = resolve_data(tmp_path).stems


def test_rgb_folder_without_meta_and_dataset_folder(tmp_path):
    write_rgb(tmp_path / "rgb" / "s0.png", np.zeros((8, 16, 3), np.uint8))
    write_rgb(tmp_path / "depth" / "s0.png", np.zeros((8, 16, 3), np.uint8))  # not read as a panorama
    ds = resolve_data(tmp_path)
    assert isinstance(ds, ImageFolder) and ds.stems == ["s0"] and ds.root == tmp_path / "rgb"
    from panoedge.data import write_meta

    write_meta(tmp_path, ["a"], [[1, 2, 3]], "test")
    assert type(resolve_data(tmp_path)) is DatasetFolder


def test_structured3d_layout_through_class_maps(tmp_path):
    ds = resolve_data(f"structured3d:{structured3d_tree(tmp_path / 's3d')}")
    assert isinstance(ds, LayoutDataset)
    assert ds.stems == ["scene_03262__581", "scene_03262__852"] and ds.classes == INDOOR
    assert ds.modalities == ["rgb", "depth", "semantic"]
    s = ds.load("scene_03262__581")
    raw_d = cv2.imread(str(real_file(S3D, "s3d_scene03262_room581_depth_mm.png")), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(s["depth"], raw_d / 1000.0, rtol=1e-6)  # millimetres -> metres
    assert 0.70 < s["depth"].min() and s["depth"].max() < 6.0
    from PIL import Image

    raw = np.asarray(Image.open(real_file(S3D, "s3d_scene03262_room581_semantic_nyu40.png")))
    lab = s["semantic"]
    assert (lab[raw == 1] == INDOOR.index("wall")).all() and (lab[raw == 2] == INDOOR.index("floor")).all()
    assert (lab[raw == 11] == INDOOR.index("wall")).all()  # picture counts as wall in nyu40_to_indoor
    assert (lab[raw == 3] == 255).all() and (lab[raw == 0] == 255).all()  # cabinet ignored, unlabelled ignored
    assert s["rgb"].shape == (512, 1024, 3)


def test_stanford2d3d_and_matterport3d_layouts(tmp_path):
    root = tmp_path / "s2d3d"
    pano = root / "area_1" / "pano"
    labels = ["<UNK>_0_0", "chair_1_office_1", "floor_1_office_1", "beam_2_office_1"]
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "semantic_labels.json").write_text(json.dumps(labels))
    idx = np.array([[0, 1, 2, 3] * 4] * 8)
    sem = np.stack([idx // 65536, (idx // 256) % 256, idx % 256], -1).astype(np.uint8)
    write_rgb(pano / "semantic" / "camera_x_domain_semantic.png", sem)
    write_rgb(pano / "rgb" / "camera_x_domain_rgb.png", np.zeros((8, 16, 3), np.uint8))
    depth = np.full((8, 16), 1024, np.uint16)
    depth[0, 0] = 65535
    (pano / "depth").mkdir()
    cv2.imwrite(str(pano / "depth" / "camera_x_domain_depth.png"), depth)
    ds = resolve_data(f"stanford2d3d:{root}")
    s = ds.load("area_1__camera_x_domain")
    assert s["depth"][0, 0] == 0 and s["depth"][1, 1] == pytest.approx(2.0)  # 1/512 m, 65535 = no reading
    want = [255, INDOOR.index("chair"), INDOOR.index("floor"), INDOOR.index("wall")]  # beam -> wall
    assert s["semantic"][0, :4].tolist() == want and len(STANFORD13) == 13

    mp = tmp_path / "mp3d" / "house"
    mp.mkdir(parents=True)
    (mp / "pano1_depth.png").symlink_to(real_file(S3D, "mp3d_001ad2ad14234e06b2d996d71bb96fc4_depth_gt_no_rgb.png"))
    write_rgb(mp / "pano1_color.jpg", np.zeros((8, 16, 3), np.uint8))
    ds = resolve_data(f"matterport3d:{tmp_path / 'mp3d'}")
    assert ds.stems == ["house__pano1"] and ds.modalities == ["rgb", "depth"]
    raw = cv2.imread(str(mp / "pano1_depth.png"), cv2.IMREAD_UNCHANGED)
    d = ds.load("house__pano1")["depth"]
    np.testing.assert_allclose(d, raw / 4000.0, rtol=1e-6)
    assert (d == 0).mean() == pytest.approx((raw == 0).mean())


def test_layout_errors(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        resolve_data(f"structured3d:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="no panoramas in the structured3d layout"):
        _ = resolve_data(f"structured3d:{tmp_path}").stems
    with pytest.raises(UsageError, match="structured3d:PATH"):
        resolve_data(tmp_path / "missing")
    with pytest.raises(UsageError, match="--every 2: .* --rig"):
        resolve_data(tmp_path, every=2)
    assert len(NYU40) == 40


def test_rig_recording_stitched_every_nth_frame(tmp_path):
    frame = real_file("dual_fisheye", "insta360air_still002_outdoor_1920x960.png")
    rec = tmp_path / "rec"
    rec.mkdir()
    for i in range(3):
        (rec / f"f{i}.png").symlink_to(frame)
    from panoedge.data.rig_source import stitched_folder

    out = stitched_folder(rec, "insta360_air_1920", every=2, out_hw=(32, 64), progress=False)
    ds = ImageFolder(out)
    assert ds.stems == ["frame000000", "frame000002"]
    assert ds.load("frame000000")["rgb"].shape == (32, 64, 3)
    assert stitched_folder(rec, "insta360_air_1920", every=2, out_hw=(32, 64), progress=False) == out  # cached
    with pytest.raises(UsageError, match="dual-fisheye video or a folder"):
        stitched_folder(frame, "insta360_air_1920")


def test_synth_stands_below_data():
    """``data`` resolves ``synth:`` and writes synthetic dataset folders; ``synth`` never imports ``data``
    (lazy imports included: the graph is read from the source)."""
    from tests.import_graph import build

    g = build()
    up = [f"{e.source}:{e.line} -> {e.target}" for e in g.edges
          if g.package_of(e.source) == "synth" and g.package_of(e.target) == "data"]
    assert not up, up
