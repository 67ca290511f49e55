"""Real teacher architectures, real panoramas, from the command line alone.

Tiny randomly initialised SegFormer (ADE20K's 150 class names), Mask2Former and Depth Anything
models are built from configs with transformers and saved locally (nothing is downloaded), then
run through ``hf:``, ``onnx:`` and ``torchscript:`` specs on downscaled real panoramas from
../shared/data/real.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.hf_tiny import save_tiny_depth_anything, save_tiny_segformer
import torch
import yaml
from typer.testing import CliRunner

from panoedge.cli import app
from panoedge.errors import UsageError
from panoedge.io import read_rgb, write_rgb
from tests.conftest import real_file
from tests.test_data_spec import INDOOR, structured3d_tree

runner = CliRunner()
PANOS = ("mp3d_7y3sRwLe3Va_1410b021_1024x512.png", "panocontext_asmasuxybohhcj_1024x512.png",
         "theta_v_incamera_erp_indoor_R0010221.jpg")
ADE = yaml.safe_load((__import__("panoedge.data.classmap", fromlist=["x"]).CLASSMAP_DIR
                      / "ade20k150_to_indoor.yaml").read_text())["source"]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    tf = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf_real")
    torch.manual_seed(0)
    labels = dict(enumerate(ADE))
    save_tiny_segformer(tf, root / "seg", labels)
    save_tiny_depth_anything(tf, root / "depth")
    m2f_labels = {0: "wall", 1: "floor", 2: "ceiling", 3: "windowpane"}
    swin = tf.SwinConfig(image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                         window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    m2f = tf.Mask2FormerConfig(backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, num_queries=8, num_labels=4, id2label=m2f_labels,
                               label2id={v: k for k, v in m2f_labels.items()}, common_stride=4)
    tf.Mask2FormerForUniversalSegmentation(m2f).save_pretrained(root / "m2f")
    tf.Mask2FormerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(root / "m2f")
    return root


@pytest.fixture(scope="module")
def panos(tmp_path_factory):
    """The real panoramas, downscaled to 64x128, in a plain folder with a sub-folder (no meta.json)."""
    import cv2

    root = tmp_path_factory.mktemp("panos")
    for i, name in enumerate(PANOS):
        rgb = cv2.resize(read_rgb(real_file("erp_plain", name)), (128, 64), interpolation=cv2.INTER_AREA)
        write_rgb(root / ("sub" if i == 2 else ".") / f"{name.rsplit('.', 1)[0]}.png", rgb)
    return root


def _config(tmp_path, **extra):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"erp_hw": [64, 128], "batch": 2, "generations": 1, "eval_data": "",
                                    "ckpt_every": 1000, **extra}))
    return str(path)


def _distill(tmp_path, teacher, data, *flags, steps=2, config=None):
    out = tmp_path / "run"
    res = runner.invoke(app, ["distill", "--teacher", teacher, "--data", str(data), "--steps", str(steps),
                              "--out", str(out), "--config", config or _config(tmp_path), *flags])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


def test_hf_seg_depth_on_real_panorama_tangent_with_class_map(hf, panos):
    from panoedge.eval.evaluate import load_predictor
    from panoedge.eval.predictors import with_class_map
    from panoedge.models.teachers import load_class_map

    pred = load_predictor(f"hf:{hf / 'seg'}+hf:{hf / 'depth'}", mode="tangent")
    assert pred.depth_kind == "relative" and len(pred.classes) == 150
    rgb = read_rgb(next(panos.glob("*.png")))
    labels, depth = pred.predict(rgb)
    assert labels.shape == depth.shape == (64, 128) and labels.max() < 150 and (depth > 0).any()
    pred = with_class_map(pred, load_class_map("ade20k150_to_indoor", pred.classes, INDOOR))
    labels, _ = pred.predict(rgb)
    assert pred.classes == tuple(INDOOR) and labels.max() < len(INDOOR)


def test_mask2former_teacher(hf):
    from panoedge.models.teachers import load_teacher

    t = load_teacher(f"hf:{hf / 'm2f'}")
    assert t.classes == ("wall", "floor", "ceiling", "windowpane") and t.depth_kind is None
    out = t.predict(torch.rand(2, 3, 40, 80), features=True)
    assert out.probs.shape == (2, 4, 40, 80) and torch.allclose(out.probs.sum(1), torch.ones(2, 40, 80), atol=1e-5)
    assert out.features is not None


@pytest.fixture(scope="module")
def exported(hf, tmp_path_factory):
    """The SegFormer as ONNX and TorchScript (seg, no features) and the Depth Anything as TorchScript
    (depth), each with its sidecar."""
    import transformers as tf

    tmp_path = tmp_path_factory.mktemp("exported")
    seg = tf.AutoModelForSemanticSegmentation.from_pretrained(hf / "seg").eval()
    dep = tf.AutoModelForDepthEstimation.from_pretrained(hf / "depth").eval()

    class Seg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = seg

        def forward(self, x):
            return self.m(pixel_values=x).logits

    class Depth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = dep

        def forward(self, x):
            return self.m(pixel_values=x).predicted_depth

    torch.onnx.export(Seg(), (torch.rand(1, 3, 64, 64),), str(tmp_path / "seg.onnx"), dynamo=False, opset_version=17,
                      input_names=["pixel_values"], output_names=["logits"], dynamic_axes={"pixel_values": {0: "b"}})
    norm = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump({"input_hw": [64, 64], **norm, "outputs": {"seg": "logits"},
                                                       "classes": ADE}))
    torch.jit.trace(Depth(), torch.rand(1, 3, 56, 56), check_trace=False).save(str(tmp_path / "depth.pt"))
    (tmp_path / "depth.yaml").write_text(yaml.safe_dump({"input_hw": [56, 56], "mean": [0.5] * 3, "std": [0.5] * 3,
                                                         "outputs": {"depth": 0}, "depth_kind": "inverse-relative"}))
    torch.jit.trace(Seg(), torch.rand(1, 3, 64, 64), check_trace=False).save(str(tmp_path / "seg_ts.pt"))
    (tmp_path / "seg_ts.yaml").write_text(yaml.safe_dump({"input_hw": [64, 64], **norm, "outputs": {"seg": 0},
                                                          "classes": ADE}))
    return tmp_path


def test_onnx_and_torchscript_specs_match_hf(hf, exported):
    from panoedge.models.teachers import load_teacher

    files = exported
    x = torch.rand(2, 3, 64, 64)
    ref = load_teacher(f"hf:{hf / 'seg'}").predict(x)
    got = load_teacher(f"onnx:{files / 'seg.onnx'}+torchscript:{files / 'depth.pt'}").predict(x)
    assert got.classes == ref.classes and got.depth_kind == "inverse-relative"
    assert torch.allclose(got.probs, ref.probs, atol=1e-4)


def test_distill_plain_folder_clusters_then_bundle_and_eval(hf, panos, tmp_path):
    run = _distill(tmp_path, f"hf:{hf / 'seg'}+hf:{hf / 'depth'}", panos, "--clusters", "3")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["classes"] == ["cluster00", "cluster01", "cluster02"] and cfg["depth_kind"] == "relative"
    rep = json.loads((run / "report.json").read_text())
    assert rep["teacher_labels"]["clusters_of"] == "features" and rep["n_train_images"] == 3
    bundle = tmp_path / "bundle"
    res = runner.invoke(app, ["build", str(run), "--target", "cpu", "--calib", str(panos), "--size", "64x128",
                              "--no-eval", "--out", str(bundle)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads((bundle / "manifest.json").read_text())["depth_kind"] == "relative"
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(bundle / "model.fp32.onnx")).metadata_props}
    assert json.loads(meta["panoedge.depth_kind"]) == "relative"
    s3d = structured3d_tree(tmp_path / "s3d")
    out = tmp_path / "e.json"
    res = runner.invoke(app, ["eval", str(run), "--data", f"structured3d:{s3d}", "--class-map", "nyu40_to_indoor",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ev = json.loads(out.read_text())
    assert ev["n_images"] == 2 and ev["class_match"]["by"] == "hungarian" and ev["miou_area"] is not None
    assert ev["depth_kind"] == "relative" and ev["depth_alignment"] == "scale_shift" and ev["absrel_area"] > 0


def test_distill_class_map_and_seg_only_student(hf, panos, tmp_path):
    run = _distill(tmp_path, f"hf:{hf / 'seg'}", panos, "--class-map", "ade20k150_to_indoor")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["classes"] == INDOOR and cfg["depth_kind"] is None
    from panoedge.models import load_student

    model, info = load_student(run)
    assert tuple(model.config.heads) == ("seg",) and "depth" not in model(torch.zeros(1, 3, 64, 128))
    from panoedge.deploy.export import export_model

    rep = export_model(run, tmp_path / "s.onnx", (64, 128), n_verify=1).to_dict()
    assert rep["depth_kind"] == "none"
    from panoedge.eval.evaluate import load_predictor

    assert load_predictor(str(run)).depth_kind is None and load_predictor(str(tmp_path / "s.onnx")).depth_kind is None


def test_label_free_with_torchscript_teachers(exported, panos, tmp_path):
    files = exported
    run = _distill(tmp_path, f"torchscript:{files / 'seg_ts.pt'}", panos, "--clusters", "2", steps=1)
    assert json.loads((run / "report.json").read_text())["teacher_labels"]["clusters_of"] == "probs"
    from panoedge.distill.config import resolve_config
    from panoedge.distill.trainer import load_training_set

    cfg = resolve_config(_config(tmp_path), teacher=f"torchscript:{files / 'depth.pt'}", data=str(panos), n_clusters=2)
    with pytest.raises(UsageError, match="neither features nor classes"):
        load_training_set(cfg, progress=False)
    from panoedge.home import panoedge_home

    assert not list((panoedge_home() / "pseudo").glob("*/meta.json"))[1:]  # no labels built for the depth-only teacher


def test_camera_height_recovers_the_scale_of_a_floor():
    from panoedge.distill.camera_height import floor_scale, metric_from_camera_height
    from panoedge.geometry import erp_rays

    h, w, cam = 32, 64, 1.4
    rays = erp_rays(h, w)
    down = rays[..., 1] > 0.2  # floor below the camera: y down, plane y = cam
    rng = np.linspace(0.5, 3.0, h * w).reshape(h, w)
    metric = np.where(down, cam / np.maximum(rays[..., 1], 1e-6), rng).astype(np.float32)
    rel = metric / 3.7  # a relative teacher: right up to scale
    (s, t), st = floor_scale(rel, down, cam)
    assert s == pytest.approx(3.7, rel=1e-5) and abs(t) < 1e-5 and st["tilt_deg"] < 1e-3
    (s, t), _ = floor_scale((metric - 0.3) / 2.0, down, cam)  # right up to scale and shift
    assert s == pytest.approx(2.0, rel=1e-4) and t == pytest.approx(0.3, abs=1e-4)
    probs = torch.zeros(1, len(INDOOR), h, w)
    probs[0, INDOOR.index("floor")] = torch.from_numpy(down.astype(np.float32))
    probs[0, 0] = 1 - probs[0, INDOOR.index("floor")]
    out, stats = metric_from_camera_height(torch.from_numpy(rel)[None], probs, INDOOR, cam)
    np.testing.assert_allclose(out[0].numpy(), metric, rtol=1e-4)
    with pytest.raises(UsageError, match="floor"):
        metric_from_camera_height(torch.from_numpy(rel)[None], probs[:, :2], ["a", "b"], cam)


def test_stream_fuser_chunks_and_block_upsampling(monkeypatch):
    from panoedge.distill import tangent
    from panoedge.distill.tangent import StreamFuser, make_layout
    from panoedge.eval import predictors

    layout = make_layout(20, 100.0, (16, 16))
    maps = torch.rand(20, 5, 16, 16)
    whole = tangent.fuse_probs(maps, layout, (32, 64))[0]
    f = StreamFuser(layout, (32, 64), 5, "cpu")
    for s in (0, 7, 14):
        f.add(s, maps[s:s + 7])
    assert torch.allclose(f.result(), whole, atol=1e-6)
    with pytest.raises(UsageError, match="added twice"):
        f.add(3, maps[3:5])
    scores = np.random.default_rng(0).random((5, 8, 16)).astype(np.float32)
    full = predictors._erp_upsample_rows(scores, 32, 64, slice(0, 32)).argmax(0)
    monkeypatch.setattr(predictors, "UPSAMPLE_BLOCK_BYTES", 4 * 5 * 64 * 3)  # 3 rows a block
    assert np.array_equal(predictors._labels(scores, 32, 64), full)
    assert tangent.patches_per_call(150, (512, 512)) == 1 and tangent.patches_per_call(11, (64, 64)) == 16


def test_zmq_header_carries_depth_kind():
    from panoedge.live.publisher import decode_message, encode_message
    from panoedge.live.sinks import Result

    r = Result(seq=1, t_capture=0.0, t_wall=0.0, erp=np.zeros((4, 8, 3), np.uint8), labels=np.zeros((4, 8), np.uint8),
               depth=np.ones((4, 8), np.float32))
    head = decode_message(encode_message(r, ["a"], depth_kind="relative"))["header"]
    assert head["depth"]["depth_kind"] == "relative" and head["depth"]["unit"] == "1"
    assert decode_message(encode_message(r, ["a"]))["header"]["depth"]["depth_kind"] == "metric"


def test_eval_class_map_side_and_errors(hf, tmp_path):
    from panoedge.data import resolve_data
    from panoedge.eval.evaluate import apply_class_map, load_predictor

    s3d = resolve_data(f"structured3d:{structured3d_tree(tmp_path / 's3d')}")
    pred = load_predictor(f"hf:{hf / 'seg'}")
    p2, d2, side = apply_class_map(pred, s3d, "ade20k150_to_indoor")  # the teacher's classes: model side
    assert side == "model" and p2.classes == tuple(INDOOR) and d2 is s3d
    p3, d3, side = apply_class_map(load_predictor(f"hf:{hf / 'm2f'}"), s3d, "nyu40_to_indoor")  # the layout's
    assert side == "data" and d3.classes == INDOOR
    with pytest.raises(UsageError, match="neither the model's classes"):
        apply_class_map(load_predictor(f"hf:{hf / 'm2f'}"), s3d, "cityscapes19_to_outdoor")
