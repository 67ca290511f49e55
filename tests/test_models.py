"""The student registry, networks, summaries and ONNX export, on tiny ERP inputs (64x128)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from panoedge.errors import UsageError
from panoedge.models import (
    HEADS,
    count_parameters,
    create_student,
    get_student_entry,
    list_students,
    model_summary,
    students_table,
)
from panoedge.models.blocks import wrap_pad_w, wrap_upsample
from panoedge.models.export import ALLOWED_ONNX_OPS, export_student_onnx, fold_batchnorm, graph_op_types

from .torch_util import randomise_bn

H, W, K = 64, 128, 7
STUDENTS = list_students()




@pytest.fixture(scope="module")
def models() -> dict:
    torch.manual_seed(0)
    return {name: randomise_bn(create_student(name, K)) for name in STUDENTS}


def test_registry_has_three_sizes():
    assert {"pano-nano", "pano-small", "pano-base"} <= set(STUDENTS)
    assert STUDENTS == sorted(STUDENTS)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UsageError) as err:
        create_student("pano-huge", K)
    for name in STUDENTS:
        assert name in str(err.value)


def test_unknown_option_is_usage_error():
    with pytest.raises(UsageError, match="max_depth_m"):
        create_student("pano-nano", K, max_depth=50.0)


@pytest.mark.parametrize("name", STUDENTS)
@pytest.mark.parametrize("batch", [1, 2])
def test_outputs_shapes_dtypes_and_positive_depth(models, name, batch):
    with torch.no_grad():
        out = models[name](torch.randn(batch, 3, H, W))
    assert list(out) == list(HEADS)
    assert out["seg"].shape == (batch, K, H, W) and out["seg"].dtype == torch.float32
    assert out["depth"].shape == (batch, 1, H, W) and out["depth"].dtype == torch.float32
    assert bool(torch.isfinite(out["seg"]).all())
    depth = out["depth"]
    assert bool((depth > 0).all()) and bool((depth <= models[name].config.max_depth_m).all())


@pytest.mark.parametrize("name", STUDENTS)
def test_parameter_count_near_nominal(name):
    nominal = get_student_entry(name).nominal_params
    assert abs(count_parameters(create_student(name, 20)) - nominal) <= 0.3 * nominal


@pytest.mark.parametrize("heads", [("seg",), ("depth",)])
def test_heads_switch_off(heads):
    model = create_student("pano-nano", K, heads=heads, max_depth_m=20.0).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, H, W))
    assert tuple(out) == heads
    full = count_parameters(create_student("pano-nano", K))
    assert count_parameters(model) < full
    if "depth" in heads:
        assert float(out["depth"].max()) <= 20.0


@pytest.mark.parametrize("latitude", [None, "sin", "cos"])
def test_rolling_input_rolls_outputs(latitude):
    """Wrap padding: a horizontal roll by a multiple of the total stride (32) commutes with the net.

    With zero padding at the seam the columns next to it would differ, so this fails.
    """
    model = randomise_bn(create_student("pano-nano", K, latitude=latitude), seed=1)
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        ref = model(x)
        rolled = model(torch.roll(x, shifts=32, dims=-1))
    for key in HEADS:
        expect = torch.roll(ref[key], shifts=32, dims=-1)
        assert torch.allclose(rolled[key], expect, atol=1e-4, rtol=1e-4), key


def test_wrap_helpers():
    x = torch.arange(8.0).view(1, 1, 1, 8)
    assert wrap_pad_w(x, 2)[0, 0, 0].tolist() == [6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    y = torch.randn(1, 2, 4, 8)
    up = wrap_upsample(y, 2)
    assert up.shape == (1, 2, 8, 16)
    assert torch.allclose(wrap_upsample(torch.roll(y, 3, -1), 2), torch.roll(up, 6, -1), atol=1e-6)
    # circular bilinear: output column 0 sits at input x = -0.25, between columns 7 and 0
    row = torch.randn(1, 2, 1, 8)
    up = wrap_upsample(row, 2)
    assert torch.allclose(up[..., 0], 0.25 * row[..., 7] + 0.75 * row[..., 0], atol=1e-6)
    assert torch.allclose(up[..., 15], 0.75 * row[..., 7] + 0.25 * row[..., 0], atol=1e-6)


@pytest.mark.parametrize("name", STUDENTS)
def test_one_wrap_per_stage_equals_the_per_conv_wrap(name):
    """Eval forward (one wrap per stage, valid convs across the width) == every conv wrapping its own input."""
    torch.manual_seed(0)
    model = create_student(name, K)
    for m in model.modules():  # non-trivial batch-norm so every column matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
    model.eval()
    for hw in ((64, 128), (96, 192)):
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            a, b = model(x), model.forward_per_conv(x)
        for key in HEADS:
            assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-5), (name, hw, key)


def test_extension_geometry():
    from panoedge.models.wrap import conv_geometry, crop_w, rewrap, upsample_ext

    x = torch.arange(4.0).view(1, 1, 1, 4)
    # a wrap wider than the panorama repeats it
    assert wrap_pad_w(x, 6)[0, 0, 0].tolist() == [2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert conv_geometry((1, 1), k=3, s=1, p=1) == (0, (0, 0))
    assert conv_geometry((4, 4), k=3, s=2, p=1) == (1, (1, 2))   # one column dropped to keep the stride's phase
    with pytest.raises(ValueError):
        conv_geometry((0, 3), k=3, s=1, p=1)
    y = torch.randn(1, 2, 3, 8)
    e, ee = rewrap(y, (0, 0), 3)
    assert torch.equal(crop_w(e, ee, (0, 0)), y)
    up, eu = upsample_ext(e, ee, 2)
    assert eu == (5, 5) and torch.allclose(crop_w(up, eu, (0, 0)), wrap_upsample(y, 2), atol=1e-6)


def test_exported_student_has_few_width_concats(tmp_path):
    """The DLA concatenates along channels only: every width concat is a GPU layer and a DLA loadable split."""
    import onnx

    from panoedge.models import export_student_onnx

    path = export_student_onnx(create_student("pano-small", K), tmp_path / "s.onnx", (64, 128))
    concats = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Concat"]
    assert len(concats) == 8  # input + 3 stages + 4 decoder levels (was one per 3x3 conv and upsample: 24)


def test_gradients_flow():
    model = create_student("pano-nano", K).train()
    out = model(torch.randn(2, 3, H, W))
    (out["seg"].square().mean() + out["depth"].mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("shape", [(1, 3, 64, 100), (1, 3, 48, 128), (1, 4, 64, 128), (3, 64, 128)])
def test_bad_input_size(shape):
    with pytest.raises(UsageError):
        create_student("pano-nano", K)(torch.randn(*shape))


def test_bad_options():
    with pytest.raises(UsageError):
        create_student("pano-nano", K, heads=("seg", "normals"))
    with pytest.raises(UsageError):
        create_student("pano-nano", K, min_depth_m=5.0, max_depth_m=2.0)
    with pytest.raises(UsageError):
        create_student("pano-nano", 0)


def test_fold_batchnorm_matches_eval(models):
    model = models["pano-nano"]
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        a, b = model(x), folded(x)
    for key in HEADS:
        assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-4)


def test_summary_and_table():
    s = model_summary("pano-nano", K, (256, 512))
    assert s["params"] == count_parameters(create_student("pano-nano", K))
    assert s["gflops"] == pytest.approx(2 * s["macs"] / 1e9)
    big = model_summary("pano-nano", K, (512, 1024))
    # 4x the pixels, less a little: each stage's seam wrap adds a fixed number of columns
    assert big["macs"] == pytest.approx(4 * s["macs"], rel=0.03) and big["macs"] < 4 * s["macs"]
    rows = students_table()
    assert [r.name for r in rows] == STUDENTS
    for r in rows:
        assert set(r.to_dict()) == {"name", "params", "gflops_256x512", "gflops_512x1024", "description"}
        assert 0 < r.gflops_at((256, 512)) < r.gflops_at((512, 1024)) and r.description
    by_name = {r.name: r for r in rows}
    assert by_name["pano-nano"].params < by_name["pano-small"].params < by_name["pano-base"].params


@pytest.mark.parametrize("name", STUDENTS)
def test_onnx_export_matches_torch(models, name, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = models[name]
    path = export_student_onnx(model, tmp_path / f"{name}.onnx", (H, W), dynamic_batch=(name == "pano-nano"))
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))
    proto = onnx.load(path)
    ops = graph_op_types(proto)
    assert "BatchNormalization" not in ops
    assert ops <= ALLOWED_ONNX_OPS, ops - ALLOWED_ONNX_OPS
    assert any(op.version == 17 for op in proto.opset_import if op.domain in ("", "ai.onnx"))
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["panoedge.config"]["name"] == name
    assert meta["panoedge.preprocess"]["mean"] == list(model.config.mean)

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == list(HEADS)
    batch = 2 if name == "pano-nano" else 1
    x = torch.randn(batch, 3, H, W)
    with torch.no_grad():
        ref = model(x)
    got = dict(zip(HEADS, sess.run(None, {"image": x.numpy()})))
    for key in HEADS:
        assert got[key].dtype == np.float32 and got[key].shape == tuple(ref[key].shape)
        assert float(np.abs(got[key] - ref[key].numpy()).max()) < 1e-3, key


def test_onnx_export_single_head_and_bad_size(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = create_student("pano-nano", K, heads=("depth",), latitude=None)
    path = export_student_onnx(model, tmp_path / "depth.onnx", (H, W))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["depth"]
    with pytest.raises(UsageError):
        export_student_onnx(model, tmp_path / "bad.onnx", (60, 120))
    assert not (tmp_path / "bad.onnx").exists()


def test_student_checkpoint_round_trip_and_bad_files(tmp_path):
    from panoedge.errors import DataError
    from panoedge.models import load_student, save_student

    model = create_student("pano-nano", 3, latitude="cos", max_depth_m=30.0)
    path = save_student(tmp_path / "run" / "student.pt", model, ["a", "b", "c"], [[1, 2, 3]] * 3, family="indoor")
    back, info = load_student(tmp_path / "run")
    assert info["classes"] == ["a", "b", "c"] and info["family"] == "indoor"
    x = torch.rand(1, 3, 64, 128)
    model.eval()
    with torch.no_grad():
        a, b = model(x), back(x)
    assert torch.allclose(a["seg"], b["seg"]) and torch.allclose(a["depth"], b["depth"])
    with pytest.raises(DataError, match="2 class names"):
        save_student(tmp_path / "x.pt", model, ["a", "b"])
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable"):
        load_student(path)
    with pytest.raises(DataError, match="no such"):
        load_student(tmp_path / "nothing")
