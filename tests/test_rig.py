"""The rig file: round trip and validation errors that name the file and the key."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from panoedge.errors import ConfigError
from panoedge.stitch.rig import load_rig, save_rig
from panoedge.synth.rig_render import synthetic_rig


def test_rig_round_trip(tmp_path):
    rig = synthetic_rig(256, seed=3)
    path = save_rig(rig, tmp_path / "rig.yaml")
    back = load_rig(path)
    assert back == rig
    cams = back.cameras()
    assert cams[0].h == 256 and cams[0].w == 512
    assert np.isclose(cams[0].radius_px, rig.lenses[0].radius_px)
    assert np.isclose(rig.lenses[0].vignetting_gain(1.0), 1 + rig.lenses[0].vignetting[0])


@pytest.mark.parametrize("edit,key", [
    (lambda d: d["lenses"][0].pop("radius_px"), "lenses[0].radius_px"),
    (lambda d: d["lenses"][1].__setitem__("fov_deg", 500), "lenses[1].fov_deg"),
    (lambda d: d["lenses"][0].__setitem__("model", "pinhole"), "lenses[0].model"),
    (lambda d: d["lenses"][0].__setitem__("fov_deg", 200) or d["lenses"][0].__setitem__("model", "orthographic"),
     "lenses[0].fov_deg"),
    (lambda d: d.__setitem__("layout", "diagonal"), "layout"),
    (lambda d: d.__setitem__("image_width_px", "wide"), "image_width_px"),
    (lambda d: d["lenses"].pop(), "lenses"),
    (lambda d: d["lenses"][0].__setitem__("translation_m", [0, 1]), "lenses[0].translation_m"),
])
def test_bad_rig_fields_name_file_and_key(tmp_path, edit, key):
    d = synthetic_rig(256).to_dict()
    edit(d)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as e:
        load_rig(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_missing_and_broken_rig_files(tmp_path):
    with pytest.raises(ConfigError, match="no such rig file"):
        load_rig(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("lenses: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rig(tmp_path / "broken.yaml")
