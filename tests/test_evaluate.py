"""panoedge eval / predict: exact scores on hand-made inputs, the CLI on student.pt and ONNX, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import panoedge.cli.evaluate  # noqa: F401  (registers eval and predict)
from panoedge.cli import app, main
from panoedge.data import DatasetFolder, write_meta
from panoedge.eval.evaluate import BANDS, SCHEMA, evaluate, load_predictor
from panoedge.eval.predictors import Predictor
from panoedge.errors import UsageError
from panoedge.geometry import erp_solid_angle
from panoedge.io import write_depth, write_labels, write_rgb
from tests.test_pseudo import make_dataset, make_teacher

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # the TorchScript ONNX exporter
runner = CliRunner()


class Fixed(Predictor):
    """Answers from a table keyed by the image bytes (``None`` for a missing head)."""

    def __init__(self, answers: dict, classes=("a", "b"), depth_kind="metric"):
        self.name, self.answers, self.classes = "fixed", answers, classes
        self.num_classes, self.depth_kind = len(classes or ()), depth_kind

    def predict(self, rgb):
        return self.answers[rgb.tobytes()]


def hand_dataset(root, labels: np.ndarray, depth: np.ndarray | None = None, classes=("a", "b")) -> DatasetFolder:
    """One panorama (its RGB a unique ramp) with the given ground truth."""
    h, w = labels.shape
    write_meta(root, classes, np.full((len(classes), 3), 200), "test")
    write_rgb(root / "rgb" / "p.png", np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3))
    write_labels(root / "semantic" / "p.png", labels)
    if depth is not None:
        write_depth(root / "depth" / "p.npy", depth)
    return DatasetFolder(root)


def halves(h: int, w: int) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    lab[:, w // 2:] = 1
    return lab


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny dataset, an untrained student.pt and its ONNX export."""
    from panoedge.models import create_student, export_student_onnx, save_student

    root = tmp_path_factory.mktemp("evaluate")
    ds = make_dataset(root / "data", n=2)
    model = create_student("pano-nano", len(ds.classes)).eval()
    save_student(root / "student.pt", model, ds.classes, ds.colors, family="indoor")
    export_student_onnx(model, root / "student.onnx", (32, 64))
    return ds, root / "student.pt", root / "student.onnx", root


def test_an_oracle_scores_perfectly_everywhere(models):
    ds = models[0]
    answers = {}
    for s in ds.stems:
        x = ds.load(s)
        answers[x["rgb"].tobytes()] = (x["semantic"], x["depth"])
    rep = evaluate(Fixed(answers, tuple(ds.classes)), ds, progress=False)
    assert rep.to_dict()["schema"] == SCHEMA and rep.n_images == 2 and rep.depth_alignment == "none"
    whole = rep.overall
    assert whole.miou == whole.miou_area == 100.0 and whole.absrel == whole.absrel_area == 0.0
    assert whole.rmse == 0.0 and whole.delta1 == whole.delta1_area == 1.0
    assert list(rep.by_latitude_band) == list(BANDS) and rep.seam.fraction_each_side == 0.05
    for block in (*rep.by_latitude_band.values(), rep.seam):
        assert block.absrel_area == 0.0 and block.miou_area in (100.0, None)
    assert rep.class_match.by == "name" and rep.machine["cores"] >= 1
    assert list(rep.to_dict()) == [  # the JSON's key order (CONVENTIONS.md): the whole image's scores at the top
        "schema", "model", "mode", "data", "machine", "miou_area", "per_class_iou", "absrel_area", "rmse_area",
        "delta1_area", "miou", "per_class_iou_plain", "absrel", "rmse", "delta1", "by_latitude_band", "seam",
        "n_images", "depth_kind", "depth_alignment", "class_match"]
    assert list(rep.to_dict()["seam"])[-1] == "fraction_each_side"
    assert rep.format().splitlines()[0].startswith("fixed (erp) on ")


def test_a_known_confusion_gives_the_hand_computed_iou(tmp_path):
    gt = halves(4, 8)  # a: columns 0-3, b: 4-7
    pred = np.zeros((4, 8), np.uint8)
    pred[:, 6:] = 1  # columns 4-5 of b called a: IoU(a) = 16 / 24, IoU(b) = 8 / 16
    ds = hand_dataset(tmp_path, gt)
    rep = evaluate(Fixed({ds.load("p")["rgb"].tobytes(): (pred, None)}, depth_kind=None), ds, progress=False)
    assert rep.overall.per_class_iou == pytest.approx({"a": 100 * 16 / 24, "b": 50.0})
    assert rep.overall.miou == pytest.approx(100 * (16 / 24 + 0.5) / 2) == rep.overall.miou_area  # column errors: same area
    assert "absrel" not in rep.to_dict() and rep.depth_kind is None


def test_area_weighting_counts_errors_at_the_poles_less(tmp_path):
    h, w = 6, 12  # one row per 30-degree band
    gt_l, gt_d = halves(h, w), np.full((h, w), 2.0, np.float32)
    pred_l, pred_d = gt_l.copy(), gt_d.copy()
    pred_l[[0, -1]] = 0
    pred_d[[0, -1]] = 4.0  # AbsRel 1 on the polar rows, 0 elsewhere
    ds = hand_dataset(tmp_path, gt_l, gt_d)
    rep = evaluate(Fixed({ds.load("p")["rgb"].tobytes(): (pred_l, pred_d)}), ds, progress=False)
    sa = erp_solid_angle(h, w)[:, 0]
    whole = rep.overall
    assert whole.absrel == pytest.approx(2 / 6)
    assert whole.absrel_area == pytest.approx((sa[0] + sa[-1]) / sa.sum())
    assert whole.miou_area > whole.miou and whole.absrel_area < whole.absrel / 2
    bands = rep.by_latitude_band
    assert bands["60N-90N"].absrel == pytest.approx(1.0) and bands["60S-90S"].miou < 100
    assert bands["0-30N"].absrel == 0.0 and bands["0-30N"].miou == 100.0
    assert rep.seam.absrel == pytest.approx(2 / 6)  # columns 0 and 11: the same rows are wrong


def test_relative_depth_is_aligned_by_scale_and_shift(tmp_path):
    gt_d = np.linspace(1, 5, 6 * 12, dtype=np.float32).reshape(6, 12)
    ds = hand_dataset(tmp_path, halves(6, 12), gt_d)
    pred = Fixed({ds.load("p")["rgb"].tobytes(): (halves(6, 12), 0.5 * gt_d + 3.0)}, depth_kind="relative")
    rep = evaluate(pred, ds, progress=False)
    assert rep.depth_alignment == "scale_shift" and rep.overall.absrel < 1e-5 and rep.overall.delta1 == 1.0


def test_teacher_specs_run_on_erp_and_on_tangent_patches(models, tmp_path):
    ds = models[0]
    spec = make_teacher(tmp_path / "teacher", ds.classes)
    for mode in ("erp", "tangent"):
        pred = load_predictor(spec, mode=mode, layout={"n_patches": 20})
        rep = evaluate(pred, ds, max_images=1, progress=False)
        assert rep.mode == mode and rep.n_images == 1 and rep.depth_kind == "metric"
        assert 0 <= rep.overall.miou_area <= 100 and rep.overall.absrel_area > 0


def test_eval_and_predict_cli_on_a_student_checkpoint(models, tmp_path):
    ds, student, _, _ = models
    res = runner.invoke(app, ["eval", str(student), "--data", str(ds.root), "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    assert "60N-90N" in res.output and "seam" in res.output
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["schema"] == SCHEMA and rep["command"].startswith("panoedge") and rep["n_images"] == 2
    assert set(rep["per_class_iou"]) == set(ds.classes)
    res = runner.invoke(app, ["predict", str(student), str(ds.root), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    for stem in ds.stems:
        labels = cv2.imread(str(tmp_path / "out" / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(tmp_path / "out" / "depth" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(tmp_path / "out" / "overlay" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (32, 64) and labels.dtype == np.uint8 and labels.max() < len(ds.classes)
        assert depth.shape == (32, 64) and depth.dtype == np.uint16 and depth.min() >= 100  # >= min_depth_m
        assert overlay.shape == (32, 64, 3)


def test_eval_and_predict_cli_on_an_onnx_export(models, tmp_path):
    ds, student, onnx_path, _ = models
    res = runner.invoke(app, ["eval", str(onnx_path), "--data", str(ds.root), "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["class_match"]["by"] == "index"  # the export carries no class names
    torch_rep = evaluate(load_predictor(str(student)), ds, progress=False)
    assert rep["miou"] == pytest.approx(torch_rep.overall.miou, abs=1.0)
    assert rep["absrel"] == pytest.approx(torch_rep.overall.absrel, rel=1e-3)
    image = ds.files["rgb"][ds.stems[0]]
    res = runner.invoke(app, ["predict", str(onnx_path), str(image), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "depth" / f"{image.stem}.png").is_file()


def run_main(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ex:
        main(list(args))
    return ex.value.code, capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(models, tmp_path, capsys):
    ds, student, _, _ = models
    (tmp_path / "empty").mkdir()
    code, err = run_main(capsys, "eval", str(student), "--data", str(tmp_path / "empty"))
    assert code == 3 and "no images" in err
    write_rgb(tmp_path / "imgs" / "square.png", np.zeros((40, 60, 3), np.uint8))
    code, err = run_main(capsys, "predict", str(student), str(tmp_path / "imgs"), "--out", str(tmp_path / "o"))
    assert code == 2 and "square.png: 60x40 is not an equirectangular" in err
    other = tmp_path / "other"
    hand_dataset(other, halves(32, 64), classes=("foo", "bar"))
    code, err = run_main(capsys, "eval", str(student), "--data", str(other))
    assert code == 2 and "no class of" in err and "foo" in err
    code, err = run_main(capsys, "eval", str(student), "--data", str(ds.root), "--mode", "tangent")
    assert code == 2 and "teacher spec" in err
    code, err = run_main(capsys, "eval", str(tmp_path / "nothing.pt"), "--data", str(ds.root))
    assert code == 3 and "no such file" in err
    with pytest.raises(UsageError, match="mode"):
        load_predictor(str(student), mode="cubemap")
