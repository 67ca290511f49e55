"""Deploy, part 2: calibrated QDQ INT8, the accuracy budget and its sensitivity loop, calibration errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from panoedge.deploy.quantize import QuantizeConfig, quantize_model
from panoedge.errors import DataError, UsageError
from tests.test_deploy_export import HW, dataset, deploy_root, export_report, fp32_onnx, student_dir  # noqa: F401

FAST = dict(n=6, n_eval=2, latency_repeat=2, threads=1)


@pytest.fixture(scope="session")
def int8_report(fp32_onnx, dataset, deploy_root) -> dict:
    import json

    saved = deploy_root / "quantize.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    rep = quantize_model(fp32_onnx, dataset, deploy_root / "nano.int8.onnx", QuantizeConfig(**FAST), progress=False)
    saved.write_text(json.dumps(rep.to_dict()))
    return rep.to_dict()


def test_quantize_writes_qdq_with_per_channel_weights(int8_report):
    import onnx

    proto = onnx.load(int8_report["files"]["int8"])
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: t for t in proto.graph.initializer}
    dq = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.input[1] in dq]
    assert convs, "no convolution reads int8 weights"
    for conv in convs:
        w = dq[conv.input[1]]
        axis = next(a.i for a in w.attribute if a.name == "axis")
        scale = inits[w.input[1]]
        weight = inits[w.input[0]]
        assert axis == 0 and len(scale.dims) == 1 and scale.dims[0] == weight.dims[0]
        assert weight.data_type == onnx.TensorProto.INT8
    # symmetric int8 activations (what TensorRT takes): every activation zero point is 0
    for n in proto.graph.node:
        if n.op_type == "QuantizeLinear":
            zp = onnx.numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any()
    assert int8_report["qdq"]["per_channel_weights"]


def test_quantize_report_shape(int8_report):
    r = int8_report
    assert r["schema"] == "panoedge.quantize/1"
    assert r["calibration"]["method"] == "entropy" and r["calibration"]["n_images"] == FAST["n"]
    assert len(r["calibration"]["sha256"]) == 64
    for block in (r["fp32"], r["int8"]):
        assert {"miou_area", "miou", "per_class_iou", "absrel_area", "absrel", "rmse", "delta1", "n_images"} <= set(block)
        assert block["n_images"] == FAST["n_eval"]
    assert isinstance(r["excluded_nodes"], list)
    assert set(r["latency"]["cases"]) == {"fp32", "int8"} and r["latency"]["int8_speedup"] > 0
    assert "/model/Sigmoid" in r["float_tail"]
    assert Path(r["files"]["trt_cache"]).is_file() and Path(r["files"]["ranges"]).is_file()


def test_quantize_report_reads_back_as_written(int8_report):
    """``quantize.json`` read back (a cached stage) is the same report, key for key and in order."""
    import json

    from panoedge.deploy.quantize import QuantizeResult

    back = QuantizeResult.from_dict(int8_report)
    assert json.dumps(back.to_dict()) == json.dumps(int8_report)
    assert back.latency.cases.int8.latency_ms.median > 0 and back.qdq.per_channel_weights
    assert "held-out images" in back.format() and "ORT CPU latency" in back.format()


def test_trt_cache_holds_the_same_statistics(int8_report, fp32_onnx):
    from onnxruntime.quantization.calibrate import load_tensors_data

    from panoedge.deploy.calib import tensor_amax
    from panoedge.deploy.onnx_io import load_onnx, tensor_names
    from panoedge.deploy.trt_cache import check_cache, read_cache

    header, scales = read_cache(int8_report["files"]["trt_cache"])
    assert header == {"version": 8602, "algorithm": "EntropyCalibration2"}
    amax = tensor_amax(load_tensors_data(int8_report["files"]["ranges"]))
    dropped = set(int8_report["calibration"]["trt_cache_float_tensors"])
    assert "depth" in dropped  # the depth tail stays float, in the QDQ model and for TensorRT's implicit INT8
    assert set(scales) == set(amax) - dropped and "image" in scales
    for name, a in scales.items():
        assert a == pytest.approx(max(amax[name], 1e-8) / 127.0, rel=1e-6)
    rep = check_cache(int8_report["files"]["trt_cache"], tensor_names(load_onnx(fp32_onnx)), "8.6.2")
    assert rep["ok"] and not rep["unknown"] and rep["version_matches"]


def test_same_calibration_set_same_hash(fp32_onnx, dataset, tmp_path, int8_report):
    from panoedge.deploy import calib

    images, _ = calib.split_data(dataset, FAST["n"], FAST["n_eval"], HW, progress=False)
    stream = calib.ImageStream(images, HW, {"scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]})
    assert sum(1 for _ in stream) == FAST["n"]
    assert stream.sha256() == int8_report["calibration"]["sha256"]


def test_no_calibration_data_is_an_error(fp32_onnx, tmp_path):
    with pytest.raises(UsageError, match="no calibration data"):
        quantize_model(fp32_onnx, None, tmp_path / "x.onnx", QuantizeConfig(**FAST), progress=False)
    with pytest.raises(DataError, match="no such calibration folder"):
        quantize_model(fp32_onnx, tmp_path / "nowhere", tmp_path / "x.onnx", QuantizeConfig(**FAST), progress=False)
    assert not (tmp_path / "x.onnx").exists()


def test_corrupt_model_is_an_error(tmp_path, dataset):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model at all")
    with pytest.raises(DataError, match="bad.onnx"):
        quantize_model(bad, dataset, tmp_path / "x.onnx", QuantizeConfig(**FAST), progress=False)


def _copy_dataset(src: Path, dst: Path, n: int = 4) -> Path:
    shutil.copytree(src, dst)
    for stem in sorted(p.stem for p in (dst / "rgb").iterdir())[n:]:
        for sub in ("rgb", "depth", "semantic"):
            (dst / sub / f"{stem}.png").unlink()
    return dst


def test_unreadable_calibration_image_is_named(fp32_onnx, dataset, tmp_path):
    folder = _copy_dataset(dataset, tmp_path / "bad")
    victim = sorted((folder / "rgb").iterdir())[1]
    victim.write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match=victim.name):
        quantize_model(fp32_onnx, folder, tmp_path / "x.onnx", QuantizeConfig(**{**FAST, "n_eval": 1}), progress=False)
    assert not (tmp_path / "x.onnx").exists()


def test_wrong_size_calibration_image_is_named(fp32_onnx, dataset, tmp_path):
    import cv2

    folder = _copy_dataset(dataset, tmp_path / "square")
    victim = sorted((folder / "rgb").iterdir())[0]
    cv2.imwrite(str(victim), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(DataError, match=f"{victim.name}.*64x64.*twice the height"):
        quantize_model(fp32_onnx, folder, tmp_path / "x.onnx", QuantizeConfig(**{**FAST, "n_eval": 1}), progress=False)


def _outlier_model(src: Path, dst: Path, gain: float = 3000.0) -> Path:
    """The model with one stem channel scaled by ``gain``: an activation outlier that per-tensor
    INT8 handles badly (every other channel of that tensor rounds to a few levels)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(src))
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    for t in proto.graph.initializer:
        if t.name in stem.input[1:]:
            a = numpy_helper.to_array(t).copy()
            a[0] *= gain
            t.CopyFrom(numpy_helper.from_array(a, t.name))
    onnx.save(proto, str(dst))
    return dst


def test_tiny_budget_runs_the_sensitivity_loop(fp32_onnx, dataset, tmp_path):
    """Budget 0 on a model INT8 hurts: layers are scanned, then the most sensitive are kept in
    float until the budget holds, or the report says it cannot be met."""
    import onnx

    model = _outlier_model(fp32_onnx, tmp_path / "outlier.onnx")
    cfg = QuantizeConfig(**{**FAST, "budget_miou": 0.0, "budget_absrel": 0.0, "scan_images": 1})
    rep = quantize_model(model, dataset, tmp_path / "strict.int8.onnx", cfg, progress=False)
    assert not rep.budget.first_pass.within, rep.budget
    scores = [r["score"] for r in rep.sensitivity]
    assert scores and scores == sorted(scores, reverse=True)
    assert rep.exclusion_trials and rep.excluded_nodes
    proto = onnx.load(str(tmp_path / "strict.int8.onnx"))
    dq_out = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    by_name = {n.name: n for n in proto.graph.node}
    from panoedge.deploy.trt_cache import read_cache

    _, scales = read_cache(rep.files.trt_cache)
    for e in rep.excluded_nodes:
        assert "sensitivity rank" in e.reason
        assert not any(i in dq_out for i in by_name[e.node].input), f"{e.node} still reads INT8"
        assert not set(by_name[e.node].output) & set(scales), f"{e.node} would run INT8 on the DLA"
    if not rep.budget.within:  # it says so, having tried every scanned layer in float
        assert rep.exclusion_trials[-1]["k"] == len(rep.excluded_nodes)
