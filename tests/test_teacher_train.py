"""panoedge teacher train: tiny runs, exact resume, metrics on hand-computed inputs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from panoedge.errors import DataError, UsageError
from panoedge import metrics

torch.use_deterministic_algorithms(True)


def _cfg(**kw):
    from panoedge.distill.teacher_train import TeacherTrainConfig

    base = dict(family="indoor", data="synth:indoor", n_views=6, view_hw=(64, 96), width_mult=0.125,
                steps=6, batch=2, lr=2e-3, ckpt_every=2, n_eval=2, erp_hw=(32, 64), warmup=2)
    return TeacherTrainConfig(**{**base, **kw})


def test_tiny_run_writes_a_loadable_teacher(tmp_path):
    from panoedge.distill.teacher_train import REPORT_SCHEMA, train_teacher
    from panoedge.models.teachers import load_teacher

    rep = train_teacher(_cfg(), tmp_path / "t", progress=False)
    assert rep.to_dict()["schema"] == REPORT_SCHEMA and (tmp_path / "t" / "report.json").is_file()
    assert (tmp_path / "t" / "ckpt.pt").is_file()
    for key in ("miou", "absrel", "rmse", "delta1", "per_class_iou"):
        assert key in rep.perspective.to_dict()
    for key in ("miou_area", "miou", "absrel_area", "absrel", "note"):
        assert key in rep.erp.to_dict()
    assert "miou_points" in rep.gap.to_dict()
    import json

    from panoedge.distill.teacher_train import read_teacher_report

    back = read_teacher_report(tmp_path / "t")  # report.json read back as a typed result, same JSON
    assert back.to_dict() == json.loads((tmp_path / "t" / "report.json").read_text()) and back.format() == rep.format()
    teacher = load_teacher("builtin:" + str(tmp_path / "t"))
    out = teacher.predict(torch.rand(1, 3, 64, 96))
    assert out.probs.shape == (1, 11, 64, 96) and out.depth.shape == (1, 1, 64, 96)
    assert teacher.classes[0] == "wall" and teacher.depth_kind == "metric"


def test_views_rendered_by_worker_processes_equal_one_process(tmp_path, monkeypatch):
    from panoedge.distill import teacher_train
    from panoedge.synth import dataset

    monkeypatch.setattr(teacher_train, "SHARD", 2)  # three shards of the six views
    one = teacher_train.load_views(_cfg(), "train")
    monkeypatch.setenv("PANOEDGE_HOME", str(tmp_path / "other"))
    monkeypatch.setattr(dataset, "render_workers", lambda n, size: 2)
    monkeypatch.setattr("panoedge.parallel._ALLOWED", True)  # pytest's main module is guarded
    two = teacher_train.load_views(_cfg(), "train")
    assert len(list((tmp_path / "other" / "persp").rglob("*.npz"))) == 3
    for k in ("rgb", "depth", "labels"):
        assert one[k].shape[0] == 6 and np.array_equal(one[k], two[k]), k


def test_resume_is_exact(tmp_path):
    from panoedge.distill.teacher_train import train_teacher

    cfg = _cfg(ckpt_every=100)
    torch.set_num_threads(1)
    part = train_teacher(cfg, tmp_path / "a", progress=False, stop_at=3)
    assert part.stopped_at == 3 and not (tmp_path / "a" / "teacher.pt").exists()
    train_teacher(cfg, tmp_path / "a", progress=False)
    train_teacher(cfg, tmp_path / "b", progress=False)
    wa = torch.load(tmp_path / "a" / "teacher.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "teacher.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ca = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)
    assert ca["step"] == 6 and len(ca["curve"]) == 6
    with pytest.raises(UsageError, match="another configuration"):
        train_teacher(_cfg(lr=1e-3, ckpt_every=100), tmp_path / "a", progress=False)


def test_metrics_exact():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]], np.uint8)
    cm = metrics.confusion_matrix(pred, gt, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    iou = metrics.per_class_iou(cm)
    np.testing.assert_allclose(iou, [1 / 3, 3 / 4, 1 / 2])
    assert metrics.miou(pred, gt, 3) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    # a class absent from both is skipped, not counted as 0
    assert np.isnan(metrics.per_class_iou(metrics.confusion_matrix(pred, gt, 4))[3])
    # weights: the top row counts twice
    w = np.array([[2.0] * 4, [1.0] * 4])
    wcm = metrics.confusion_matrix(pred, gt, 3, weights=w)
    assert wcm.tolist() == [[2, 2, 0], [0, 5, 0], [1, 0, 1]]
    np.testing.assert_allclose(metrics.per_class_iou(wcm), [2 / 5, 5 / 7, 1 / 2])
    d_gt = np.array([1.0, 2.0, 4.0, 0.0])
    d_pr = np.array([1.5, 2.0, 3.0, 9.0])
    assert metrics.absrel(d_pr, d_gt) == pytest.approx((0.5 + 0 + 0.25) / 3)
    assert metrics.absrel(d_pr, d_gt, weights=[1, 1, 2, 5]) == pytest.approx((0.5 + 0.5) / 4)
    assert metrics.rmse(d_pr, d_gt) == pytest.approx(np.sqrt((0.25 + 0 + 1) / 3))
    assert metrics.delta1(d_pr, d_gt) == pytest.approx(1 / 3)  # 1.5 and 4/3 exceed 1.25
    with pytest.raises(UsageError):
        metrics.confusion_matrix(np.array([5]), np.array([0]), 3)


def test_bad_input(tmp_path):
    from panoedge.distill.teacher_train import train_teacher

    with pytest.raises(UsageError, match="unknown family"):
        train_teacher(_cfg(family="space", data="synth:space"), tmp_path / "x", progress=False)
    with pytest.raises(UsageError, match="synth:indoor"):
        train_teacher(_cfg(data="synth:outdoor"), tmp_path / "x", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no panoramas"):
        train_teacher(_cfg(data=str(empty)), tmp_path / "x", progress=False)
    with pytest.raises(DataError, match="no such dataset folder"):
        train_teacher(_cfg(data=str(tmp_path / "nope")), tmp_path / "x", progress=False)
    with pytest.raises(UsageError, match="multiples of 32"):
        train_teacher(_cfg(view_hw=(60, 80)), tmp_path / "x", progress=False)


def test_folder_data_and_cli(tmp_path):
    from typer.testing import CliRunner

    import panoedge.cli.teacher  # noqa: F401  (registers the group)
    from panoedge.cli.app import app
    from panoedge.data.synth_folder import generate_dataset
    from panoedge.synth.dataset import SynthSpec

    ds = generate_dataset(tmp_path / "ds", SynthSpec(n=2, seed=3, size=(32, 64), family="indoor"), progress=False).path
    res = CliRunner().invoke(app, ["teacher", "train", "--data", str(ds), "--family", "indoor", "--out",
                                   str(tmp_path / "t"), "--steps", "2", "--n-views", "2", "--size", "64x64",
                                   "--width-mult", "0.125", "--batch", "1", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "distortion gap" in res.output and (tmp_path / "r.json").is_file()
