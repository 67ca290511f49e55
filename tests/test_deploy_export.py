"""Deploy, part 1: shared tiny fixtures, export (ORT vs torch), and clear errors for bad models.

Fixtures are shared with the other ``test_deploy_*`` modules (they import them): one untrained
``pano-nano`` with non-trivial batch-norm statistics at 64x128, its ONNX, and a 10-panorama
synthetic dataset folder at 64x128 with labels and depth. pytest instantiates an imported fixture
once per module, so each one builds into the session's base temp folder and reuses what is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from panoedge.errors import DataError

from .torch_util import randomise_bn

HW = (64, 128)




@pytest.fixture(scope="session")
def deploy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "deploy"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def student_dir(deploy_root) -> Path:
    """An untrained pano-nano run folder (11 indoor classes) recorded as trained at 64x128."""
    from panoedge.models import create_student, save_student
    from panoedge.synth.dataset import dataset_classes

    if (deploy_root / "run" / "student.pt").is_file():
        return deploy_root / "run"
    names, colors = dataset_classes("indoor")
    torch.manual_seed(0)
    model = randomise_bn(create_student("pano-nano", len(names), max_depth_m=20.0))
    save_student(deploy_root / "run" / "student.pt", model, names, colors, family="indoor", meta={"size": list(HW)})
    return deploy_root / "run"


@pytest.fixture(scope="session")
def dataset(deploy_root) -> Path:
    """10 synthetic indoor panoramas at 64x128 with labels and depth."""
    from panoedge.data.synth_folder import generate_dataset
    from panoedge.synth.dataset import SynthSpec

    if (deploy_root / "synth" / "meta.json").is_file():
        return deploy_root / "synth"
    return generate_dataset(deploy_root / "synth", SynthSpec(n=10, seed=3, size=HW, family="indoor"), progress=False).path


@pytest.fixture(scope="session")
def export_report(student_dir, deploy_root) -> dict:
    from panoedge.deploy.export import export_model

    saved = deploy_root / "export.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    rep = export_model(student_dir, deploy_root / "nano.onnx", n_verify=1).to_dict()
    saved.write_text(json.dumps(rep))
    return rep


@pytest.fixture(scope="session")
def fp32_onnx(export_report) -> Path:
    return Path(export_report["out"])


def test_export_verifies_against_torch(export_report):
    ver = export_report["verify"]
    assert ver["ok"] and ver["n_frames"] == 1
    assert set(ver["outputs"]) == {"seg", "depth"}
    for v in ver["outputs"].values():
        assert v["max_abs_diff"] <= v["bound"] < 0.01
    assert export_report["hw"] == list(HW)
    assert export_report["simplify"]["tool"] in ("onnxslim", None)
    assert "Pad" not in export_report["op_types"]


def test_exported_model_carries_its_preprocessing(fp32_onnx):
    from panoedge.deploy.onnx_io import load_onnx, model_info

    info = model_info(load_onnx(fp32_onnx), fp32_onnx)
    assert info["hw"] == HW
    assert info["inputs"][0]["name"] == "image" and info["inputs"][0]["shape"] == [1, 3, *HW]
    assert [o["name"] for o in info["outputs"]] == ["seg", "depth"]
    assert info["preprocess"]["layout"] == "NCHW" and len(info["preprocess"]["mean"]) == 3


def test_corrupt_or_foreign_onnx_is_a_clear_error(tmp_path):
    from panoedge.deploy.onnx_io import load_onnx
    from panoedge.runtime.ort_runner import OrtRunner

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    with pytest.raises(DataError, match="model.onnx"):
        load_onnx(bad)
    with pytest.raises(DataError, match="model.onnx"):
        OrtRunner(bad)
    text = tmp_path / "notes.onnx"
    text.write_text("just text")
    with pytest.raises(DataError):
        load_onnx(text)
    with pytest.raises(DataError, match="no such"):
        load_onnx(tmp_path / "missing.onnx")


def test_onnx_without_panoedge_metadata_is_refused(tmp_path, fp32_onnx):
    import onnx

    from panoedge.deploy.onnx_io import load_onnx, model_info

    proto = onnx.load(str(fp32_onnx))
    del proto.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(DataError, match="panoedge export"):
        model_info(load_onnx(path), path)


def test_runner_checks_names_shapes_and_dtypes(fp32_onnx):
    from panoedge.errors import UsageError
    from panoedge.runtime.ort_runner import OrtRunner

    r = OrtRunner(fp32_onnx, threads=1)
    x = np.zeros((1, 3, *HW), np.float32)
    out = r.infer({"image": x})
    assert out["seg"].shape == (1, 11, *HW) and out["depth"].shape == (1, 1, *HW)
    with pytest.raises(UsageError, match="missing"):
        r.infer({"img": x})
    with pytest.raises(UsageError, match="dtype"):
        r.infer({"image": x.astype(np.float64)})
    with pytest.raises(UsageError, match="shape"):
        r.infer({"image": np.zeros((1, 3, 32, 64), np.float32)})
