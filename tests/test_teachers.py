"""Teacher adapters, class maps and their errors, on tiny models each test builds (nothing downloads)."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: tests never download

import pytest

from tests.hf_tiny import save_tiny_depth_anything, save_tiny_segformer
import torch
import yaml
from torch import nn

from panoedge.errors import ConfigError, DataError, UsageError
from panoedge.models import count_parameters, create_student
from panoedge.models.teacher_net import TeacherNet, create_teacher_net, list_teacher_nets
from panoedge.models.teachers import (
    DEPTH_KINDS,
    TEACHER_KINDS,
    ClassMap,
    CombinedTeacher,
    apply_class_map,
    load_class_map,
    load_teacher,
    save_teacher_folder,
    shipped_class_maps,
)
from panoedge.models.teachers.classmap import normalise_name
from panoedge.synth.world import class_names
from tests.conftest import real_file

pytestmark = [  # torch 2.9+ deprecates torch.jit and the TorchScript ONNX exporter these tests build models with
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
]

H, W = 48, 72  # the images teachers see in these tests (not their input sizes)
CITYSCAPES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
              "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
              "bicycle")
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def images(b: int = 2, h: int = H, w: int = W) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b * 1000 + h))


def check_output(out, classes, depth_kind, b: int = 2, h: int = H, w: int = W) -> None:
    """Shapes at the input size, probabilities that sum to 1, names and kinds as declared."""
    if classes is None:
        assert out.probs is None and out.classes is None
    else:
        assert out.probs.shape == (b, len(classes), h, w) and out.probs.dtype == torch.float32
        assert torch.allclose(out.probs.sum(1), torch.ones(b, h, w), atol=1e-5)
        assert out.probs.min() >= 0 and tuple(out.classes) == tuple(classes)
    if depth_kind is None:
        assert out.depth is None and out.depth_kind is None
    else:
        assert out.depth.shape == (b, 1, h, w) and torch.isfinite(out.depth).all()
        assert out.depth_kind == depth_kind and out.depth_kind in DEPTH_KINDS


def write_yaml(path, doc: dict):
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- the builtin teacher network and folder ------------------------------------------------


def test_teacher_large_is_registered_and_large():
    assert "teacher-large" in list_teacher_nets()
    with torch.device("meta"):
        big, small = create_teacher_net("teacher-large", 19), create_student("pano-small", 19)
    assert count_parameters(big) >= max(15_000_000, 10 * count_parameters(small))
    with pytest.raises(UsageError, match="teacher-large"):
        create_teacher_net("teacher-huge", 19)
    with pytest.raises(UsageError, match="width_mult"):
        create_teacher_net("teacher-large", 19, widths=(8, 8, 8, 8))


def test_teacher_net_pads_with_zeros_unless_erp():
    persp = create_teacher_net("teacher-large", 3, width_mult=0.125).eval()
    erp = create_teacher_net("teacher-large", 3, width_mult=0.125, erp=True).eval()
    assert persp.stem.pad == 0 and persp.stem.conv.padding == (1, 1)
    assert erp.stem.pad == 1 and erp.stem.conv.padding == (1, 0)
    erp.load_state_dict(persp.state_dict())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = persp(x), erp(x)
    assert a["seg"].shape == b["seg"].shape == (1, 3, 64, 96)
    assert not torch.allclose(a["seg"], b["seg"])  # the padding really differs at the borders


@pytest.fixture(scope="module")
def builtin_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = create_teacher_net("teacher-large", 3, width_mult=0.125)
    folder = tmp_path_factory.mktemp("builtin") / "teacher"
    save_teacher_folder(folder, model, ("road", "sky", "car"), (64, 96), *IMAGENET,
                        arch_options={"width_mult": 0.125})
    return folder, model.eval()


def test_builtin_teacher_predicts_and_matches_its_network(builtin_folder):
    folder, model = builtin_folder
    teacher = load_teacher(f"builtin:{folder}")
    assert teacher.classes == ("road", "sky", "car") and teacher.depth_kind == "metric"
    assert teacher.input_hw == (64, 96)
    out = teacher.predict(images(), features=True)
    check_output(out, ("road", "sky", "car"), "metric")
    # fully convolutional: the image runs at its own size rounded to multiples of 32, not squeezed to input_hw
    assert out.features.shape == (2, model.config.decoder, round(H / 32) * 8, round(W / 32) * 8)
    assert teacher.model_hw(100, 200) == (96, 192) and teacher.model_hw(10, 20) == (32, 32)
    assert (out.depth > 0).all()
    x = images(1, 64, 96)  # at the input size nothing is resized: exactly the network's output
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    with torch.no_grad():
        ref = model((x - mean) / std)
    out = teacher.predict(x)
    assert torch.allclose(out.probs, torch.softmax(ref["seg"], 1), atol=1e-5)
    assert torch.allclose(out.depth, ref["depth"], atol=1e-4)


def test_builtin_teacher_errors_name_the_file(builtin_folder, tmp_path):
    with pytest.raises(DataError, match="no such teacher folder"):
        load_teacher(f"builtin:{tmp_path / 'nothing'}")
    folder, model = builtin_folder
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "teacher.pt").write_bytes((folder / "teacher.pt").read_bytes())
    meta = json.loads((folder / "teacher.json").read_text())
    del meta["input_hw"]
    (broken / "teacher.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as err:
        load_teacher(f"builtin:{broken}")
    assert err.value.key == "input_hw" and str(broken / "teacher.json") in str(err.value)
    meta["input_hw"], meta["arch_options"] = [64, 96], {"width_mult": 0.25}  # weights of another size
    (broken / "teacher.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="teacher.pt"):
        load_teacher(f"builtin:{broken}")


def test_load_teacher_spec_errors(builtin_folder):
    with pytest.raises(UsageError) as err:
        load_teacher("tensorflow:model.pb")
    for kind in ("builtin", "onnx", "torchscript", "hf"):
        assert kind in str(err.value) and kind in TEACHER_KINDS
    with pytest.raises(UsageError, match="KIND:PATH_OR_ID"):
        load_teacher("model.onnx")
    folder, _ = builtin_folder
    with pytest.raises(UsageError, match="adds nothing"):  # the second part is never used
        load_teacher(f"builtin:{folder}+builtin:{folder}")


# --- ONNX and TorchScript, with a sidecar --------------------------------------------------


class TinySegDepth(nn.Module):
    """(B, 3, h, w) -> logits (B, 4, h/2, w/2), depth (B, 1, h/2, w/2) and features (B, 8, h/2, w/2)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.seg, self.depth = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 1, 1)

    def forward(self, x):
        f = self.body(x)
        return self.seg(f), torch.sigmoid(self.depth(f)) * 10 + 0.1, f


SIDE = {"input_hw": [32, 48], "mean": IMAGENET[0], "std": IMAGENET[1],
        "outputs": {"seg": "logits", "depth": "depth", "features": "feat"},
        "classes": ["floor", "wall", "chair", "person"], "depth_kind": "metric"}


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    net = TinySegDepth().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 48),), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits", "depth", "feat"], dynamic_axes={"image": {0: "b"}})
    write_yaml(path.with_suffix(".yaml"), SIDE)
    return path, net


def test_onnx_teacher_matches_torch(onnx_model):
    path, net = onnx_model
    teacher = load_teacher(f"onnx:{path}")
    out = teacher.predict(images(3), features=True)
    check_output(out, SIDE["classes"], "metric", b=3)
    assert out.features.shape == (3, 8, 16, 24)
    x = images(1, 32, 48)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    with torch.no_grad():
        logits, depth, _ = net((x - mean) / std)
    out = teacher.predict(x)
    assert torch.allclose(out.probs, torch.softmax(nn.functional.interpolate(logits, size=(32, 48), mode="bilinear"), 1),
                          atol=1e-5)
    assert torch.allclose(out.depth, nn.functional.interpolate(depth, size=(32, 48), mode="bilinear"), atol=1e-4)


def test_onnx_teacher_bad_inputs(onnx_model, tmp_path):
    path, _ = onnx_model
    with pytest.raises(DataError, match="no such ONNX file"):
        load_teacher(f"onnx:{tmp_path / 'missing.onnx'}")
    copy = tmp_path / "m.onnx"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(DataError, match=r"m\.yaml"):
        load_teacher(f"onnx:{copy}")  # no sidecar
    cases = [({k: v for k, v in SIDE.items() if k != "mean"}, "mean", "missing"),
             (dict(SIDE, input_hw="32x48"), "input_hw", "two positive integers"),
             (dict(SIDE, std=[0.2, 0.2]), "std", "three numbers"),
             (dict(SIDE, depth_kind="absolute"), "depth_kind", "metric"),
             (dict(SIDE, outputs={"seg": "scores"}, depth_kind=None), "outputs.seg", "logits, depth, feat"),
             (dict(SIDE, outputs={"segmentation": "logits"}), "outputs.segmentation", "unknown role"),
             (dict(SIDE, classes=["a", "b"]), "classes", "4 channels"),
             (dict(SIDE, input_name="pixels"), "input_name", "image"),
             (dict(SIDE, input_hw=[64, 64]), "input_hw", "32x48"),
             (dict(SIDE, widht=3), "widht", "unknown key")]
    for doc, key, words in cases:
        write_yaml(copy.with_suffix(".yaml"), doc)
        with pytest.raises(ConfigError) as err:
            load_teacher(f"onnx:{copy}")
        assert err.value.key == key and str(copy.with_suffix(".yaml")) in str(err.value), str(err.value)
        assert words in str(err.value)


def test_onnx_input_of_wrong_rank(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "rank3",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 32, 48])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 32, 48])])
    path = tmp_path / "rank3.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    write_yaml(path.with_suffix(".yaml"), dict(SIDE, outputs={"depth": "y"}, classes=None))
    with pytest.raises(DataError, match="rank 3") as err:
        load_teacher(f"onnx:{path}")
    assert str(path) in str(err.value)


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = TinySegDepth()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        seg, depth, _ = self.net(x)
        return {"out": seg, "depth": depth[:, 0]}


class NhwcNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = TinySegDepth()

    def forward(self, x):
        seg, depth, feat = self.net(x.permute(0, 3, 1, 2))
        return torch.softmax(seg, 1), feat


def test_torchscript_teacher(tmp_path):
    scripted = tmp_path / "dict.pt"
    torch.jit.script(DictNet().eval()).save(str(scripted))
    write_yaml(scripted.with_suffix(".yaml"), dict(SIDE, outputs={"seg": "out", "depth": "depth"},
                                                   depth_kind="relative"))
    teacher = load_teacher(f"torchscript:{scripted}")
    check_output(teacher.predict(images()), SIDE["classes"], "relative")
    traced = tmp_path / "nhwc.pt"
    torch.jit.trace(NhwcNet().eval(), torch.zeros(1, 32, 48, 3)).save(str(traced))
    write_yaml(traced.with_suffix(".yaml"), dict(SIDE, layout="NHWC", outputs={"seg": 0, "features": 1},
                                                 seg_output="probs", depth_kind=None))
    out = load_teacher(f"torchscript:{traced}").predict(images(), features=True)
    check_output(out, SIDE["classes"], None)
    assert out.features.shape == (2, 8, 16, 24)


def test_torchscript_bad_outputs_and_rank(tmp_path):
    path = tmp_path / "dict.pt"
    torch.jit.script(DictNet().eval()).save(str(path))
    write_yaml(path.with_suffix(".yaml"), dict(SIDE, outputs={"seg": "logits"}, depth_kind=None))
    with pytest.raises(ConfigError) as err:
        load_teacher(f"torchscript:{path}")
    assert err.value.key == "outputs.seg" and "keys out, depth" in str(err.value)
    write_yaml(path.with_suffix(".yaml"), dict(SIDE, layout="NHWC", outputs={"seg": "out"}, depth_kind=None))
    with pytest.raises(DataError, match="rank-4") as err:  # NCHW weights fed an NHWC batch
        load_teacher(f"torchscript:{path}")
    assert str(path) in str(err.value)


# --- Hugging Face ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    tf = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    labels = {0: "road", 1: "sky", 2: "bed ", 3: "car"}  # ADE20K's label file really has "bed "
    save_tiny_segformer(tf, root / "seg", labels)
    save_tiny_depth_anything(tf, root / "depth")
    return root


def test_hf_segmenter_and_depth(hf_models):
    seg = load_teacher(f"hf:{hf_models / 'seg'}")
    assert seg.classes == ("road", "sky", "bed", "car") and seg.depth_kind is None
    check_output(seg.predict(images()), seg.classes, None)
    depth = load_teacher(f"hf:{hf_models / 'depth'}")
    assert depth.classes is None and depth.depth_kind == "inverse-relative"
    assert depth.model_hw(H, W) == (56, 84)  # keep_aspect_ratio, multiples of 14
    out = depth.predict(images(), features=True)
    check_output(out, None, "inverse-relative")
    assert out.features.shape == (2, 16, 4, 6)  # ViT tokens laid on the 4x6 patch grid


def test_hf_pair_combines_seg_and_depth(hf_models):
    teacher = load_teacher(f"hf:{hf_models / 'seg'}+hf-depth:{hf_models / 'depth'}")
    assert isinstance(teacher, CombinedTeacher)
    check_output(teacher.predict(images()), ("road", "sky", "bed", "car"), "inverse-relative")
    cmap = ClassMap.by_name(teacher.classes, class_names("outdoor"))
    assert cmap.index[2] == -1 and cmap.target[cmap.index[3]] == "car"


def test_hf_metric_kind_and_missing_folder(hf_models, tmp_path):
    import shutil

    import transformers as tf

    metric = tmp_path / "metric"
    shutil.copytree(hf_models / "depth", metric)
    cfg = tf.AutoConfig.from_pretrained(metric)
    cfg.depth_estimation_type = "metric"
    cfg.save_pretrained(metric)
    assert load_teacher(f"hf:{metric}").depth_kind == "metric"
    with pytest.raises(DataError, match="no such model folder"):
        load_teacher(f"hf:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="Hugging Face hub"):  # offline, and not in the cache
        load_teacher("hf:nobody/not-a-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="config.json"):
        load_teacher(f"hf:{tmp_path / 'empty'}")


# --- class maps -----------------------------------------------------------------------------

FAMILY_OF = {"cityscapes19_to_outdoor": "outdoor", "ade20k150_to_indoor": "indoor",
             "ade20k150_to_outdoor": "outdoor", "nyu40_to_indoor": "indoor", "mpcat40_to_indoor": "indoor",
             "stanford13_to_indoor": "indoor"}


def test_shipped_maps_load_against_real_and_student_classes():
    maps = shipped_class_maps()
    assert set(FAMILY_OF) <= set(maps)
    nyu40 = [line.split("\t")[1].strip() for line in
             real_file("erp_depth_semantic", "s3d_nyu40_labelids.txt").read_text().splitlines() if line.strip()]
    for name, path in maps.items():
        source = yaml.safe_load(path.read_text())["source"]
        if name.startswith("cityscapes19"):
            assert tuple(source) == CITYSCAPES
        elif name.startswith("nyu40"):
            assert source == nyu40
        elif name.startswith("ade20k150"):
            assert len(set(source)) == 150 and (source[0], source[12], source[20], source[149]) == (
                "wall", "person", "car", "flag")
        target = class_names(FAMILY_OF[name])
        cmap = load_class_map(name, source, target)
        assert cmap.target_family == FAMILY_OF[name] and len(cmap.index) == len(source)
        fed = cmap.describe()
        absent = {"person"} if name.startswith(("mpcat40", "stanford13")) else set()  # those label sets have none
        assert all(fed[t] for t in target if t not in absent), \
            f"{name}: no source class feeds {[t for t in target if not fed[t]]}"


def test_apply_class_map_sums_probabilities():
    source = ("road", "Traffic  Light", "bed ", "sky")
    cmap = load_class_map("cityscapes19_to_outdoor", CITYSCAPES, class_names("outdoor"))
    probs = torch.softmax(torch.randn(2, 19, 5, 7), 1)
    target, ignore = apply_class_map(probs, cmap)
    assert target.shape == (2, len(class_names("outdoor")), 5, 7) and ignore.shape == (2, 1, 5, 7)
    assert torch.allclose(target.sum(1, keepdim=True) + ignore, torch.ones(2, 1, 5, 7), atol=1e-5)
    car = class_names("outdoor").index("car")
    assert torch.allclose(target[:, car], probs[:, [13, 14, 15]].sum(1))  # car, truck, bus
    assert torch.allclose(ignore[:, 0], probs[:, [16, 17, 18]].sum(1))  # train, motorcycle, bicycle
    by_name = ClassMap.by_name(source, ("sky", "traffic light"))
    assert by_name.index == (-1, 1, -1, 0) and normalise_name("Traffic  Light ") == "traffic light"
    assert list(cmap.label_lut()[[0, 16]]) == [class_names("outdoor").index("road"), 255]


def test_bad_class_maps_name_file_and_key(tmp_path):
    target = class_names("outdoor")
    good = {"schema": "panoedge.classmap/1", "target_family": "outdoor", "map": {"road": "road"}}
    cases = [(dict(good, map={"raod": "road"}), "map.raod", "no source class"),
             (dict(good, map={"road": "highway"}), "map.road", "does not exist"),
             (dict(good, source=["road", "sky"]), "source", "differ"),
             (dict(good, schema="panoedge.classmap/9"), "schema", "panoedge.classmap/1"),
             ({k: v for k, v in good.items() if k != "map"}, "map", "expected a mapping")]
    for doc, key, words in cases:
        path = write_yaml(tmp_path / "bad.yaml", doc)
        with pytest.raises(ConfigError) as err:
            load_class_map(path, CITYSCAPES, target)
        assert err.value.key == key and str(path) in str(err.value) and words in str(err.value)
    with pytest.raises(DataError, match="no such class-map file"):
        load_class_map(tmp_path / "absent.yaml", CITYSCAPES, target)
    with pytest.raises(UsageError) as err:
        load_class_map("kitti_to_outdoor", CITYSCAPES, target)
    assert "cityscapes19_to_outdoor" in str(err.value)
    with pytest.raises(ConfigError, match="source"):  # a Cityscapes map on an ADE20K teacher
        load_class_map("cityscapes19_to_outdoor", ("wall", "building", "sky"), target)


def test_images_must_be_unit_range_rgb(builtin_folder):
    teacher = load_teacher(f"builtin:{builtin_folder[0]}")
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        teacher.predict(images() * 255)
    with pytest.raises(UsageError, match=r"\(B, 3, H, W\)"):
        teacher.predict(torch.rand(3, H, W))
    assert isinstance(teacher.model, TeacherNet)
