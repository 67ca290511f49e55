"""panoedge distill end to end at 32x64: run folder, exact resume, DDP on gloo, bad input, CLI, ablation."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from panoedge.errors import DataError, UsageError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _teacher(folder: Path, classes=None) -> str:
    """A randomly initialised, tiny builtin teacher (what matters here is the plumbing)."""
    from panoedge.models.teacher_net import create_teacher_net
    from panoedge.models.teachers import save_teacher_folder
    from panoedge.synth.world import class_names

    classes = list(classes or class_names("indoor"))
    torch.manual_seed(0)
    net = create_teacher_net("teacher-large", len(classes), width_mult=0.125).eval()
    save_teacher_folder(folder, net, classes, (64, 64), MEAN, STD, arch_options={"width_mult": 0.125})
    return f"builtin:{folder}"


def _cfg(teacher: str, **kw):
    from panoedge.distill.config import DistillConfig

    base = dict(teacher=teacher, data="synth:indoor", student="pano-nano", synth_n=4, synth_hw=(32, 64), erp_hw=(32, 64),
                n_patches=12, fov_deg=120.0, steps=6, generations=2, batch=2, ckpt_every=100, log_every=1,
                eval_data="", eval_n=2, bismap=True, consistency=True, bismap_components=2, depthg_points=16, warmup=2)
    return DistillConfig(**{**base, **kw})


@pytest.fixture
def teacher(tmp_path) -> str:
    return _teacher(tmp_path / "teacher")


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_tiny_run_writes_config_and_a_loadable_student(tmp_path, teacher):
    import json

    from panoedge.distill.trainer import distill
    from panoedge.models import load_student

    torch.set_num_threads(1)
    res = distill(_cfg(teacher), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["teacher"] == teacher and cfg["schema"] == "panoedge.distill_config/1" and cfg["steps"] == 6
    model, info = load_student(run)
    assert info["name"] == "pano-nano" and info["classes"][0] == "wall" and info["meta"]["teacher"] == teacher
    out = model(torch.zeros(1, 3, 32, 64))
    assert out["seg"].shape == (1, 11, 32, 64) and out["depth"].shape == (1, 1, 32, 64)
    for name in ("ckpt.pt", "log.csv", "report.json", "labels/gen001.pt"):
        assert (run / name).is_file(), name
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,generation,lr,loss") and len(rows) == 7
    gens = res.report.train.generations
    assert len(gens) == 1 and gens[0]["generation"] == 1 and "bismap" in gens[0]
    labels = res.report.teacher_labels  # the plane check and class balancing ran on generation 0
    assert labels["planes"]["images"] == 4 and len(labels["balance_prior"]) == 11
    assert sum(labels["balance_prior"]) == pytest.approx(1.0, abs=1e-3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, res.student.state_dict()[k]), k  # student.pt holds the EMA weights


def test_generations_without_relabelling_train_on_the_teachers_labels(tmp_path, teacher):
    from panoedge.distill.trainer import distill

    torch.set_num_threads(1)
    res = distill(_cfg(teacher, bismap=False, rlcc=False), tmp_path / "run", progress=False)
    gens = res.report.train.generations
    assert [g["generation"] for g in gens] == [1] and "teacher" in gens[0]["labels"]
    assert not (tmp_path / "run" / "labels" / "gen001.pt").exists()  # nothing new to store


def test_resume_is_exact(tmp_path, teacher):
    from panoedge.distill.trainer import distill

    torch.set_num_threads(1)
    cfg = _cfg(teacher, generations=3)  # generations start at steps 0, 2, 4
    part = distill(cfg, tmp_path / "a", progress=False, stop_at=4)  # resume right at a generation boundary
    assert part.student is None and part.report.stopped_at == 4 and not (tmp_path / "a" / "student.pt").exists()
    distill(cfg, tmp_path / "a", progress=False)
    distill(cfg, tmp_path / "b", progress=False)
    wa, wb = _weights(tmp_path / "a" / "student.pt"), _weights(tmp_path / "b" / "student.pt")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ca = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)
    cb = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
    for k in cb["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert ca["step"] == 6 and ca["generation"] == 2
    for g in (1, 2):
        la = torch.load(tmp_path / "a" / "labels" / f"gen00{g}.pt", weights_only=False)
        lb = torch.load(tmp_path / "b" / "labels" / f"gen00{g}.pt", weights_only=False)
        assert torch.equal(la["probs"], lb["probs"]) and torch.equal(la["weight"], lb["weight"])
    assert (tmp_path / "a" / "log.csv").read_text().count("\n") == 7
    with pytest.raises(UsageError, match="another configuration"):
        distill(replace(cfg, lr=1e-3), tmp_path / "a", progress=False)


def _folder(root: Path, size=(32, 64), classes=("wall", "floor")) -> Path:
    from panoedge.data import write_meta
    from panoedge.io import write_rgb

    (root / "rgb").mkdir(parents=True)
    write_meta(root, list(classes), [[i * 40, 0, 0] for i in range(len(classes))], source="test")
    if size is not None:
        write_rgb(root / "rgb" / "a.png", np.full((*size, 3), 100, np.uint8))
    return root


def test_bad_inputs_fail_before_training(tmp_path, teacher):
    from panoedge.distill.trainer import distill

    cases = [
        (str(_folder(tmp_path / "empty", size=None)), DataError, "no images"),
        (str(tmp_path / "nowhere"), UsageError, "no such folder; DATA is a folder of panoramas"),
        (str(_folder(tmp_path / "square", size=(32, 32))), UsageError, "not an equirectangular"),
        (str(_folder(tmp_path / "classes")), UsageError, "not the student's"),
    ]
    broken = _folder(tmp_path / "broken", size=None)
    (broken / "rgb" / "a.png").write_bytes(b"not a png")
    cases.append((str(broken), DataError, "not a readable image"))
    for i, (data, err, msg) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(err, match=msg):
            distill(_cfg(teacher, data=data), out, progress=False)
        assert not (out / "ckpt.pt").exists() and not (out / "student.pt").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("someone else's")
    with pytest.raises(UsageError, match="choose an empty or new folder"):
        distill(_cfg(teacher), tmp_path / "busy", progress=False)


DDP_SCRIPT = """
import sys, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_distill_run import _cfg
from panoedge.distill.trainer import distill, dist_info
torch.set_num_threads(1)
res = distill(_cfg({teacher!r}, batch=4, steps=4), Path({out!r}), progress=False)
rank = dist_info()[0]
torch.save({{"ema": res.student.state_dict()}}, Path({out!r}).parent / f"rank{{rank}}.pt")
"""


def test_ddp_two_gloo_ranks_end_identical(tmp_path, teacher):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), teacher=teacher, out=str(tmp_path / "run")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)["ema"]
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)["ema"]
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    saved = _weights(tmp_path / "run" / "student.pt")
    assert all(torch.equal(saved[k], w0[k]) for k in w0)


def test_label_free_mode_clusters_teacher_features(tmp_path, teacher):
    from panoedge.distill.default import run

    torch.set_num_threads(1)
    from panoedge.eval.distill_check import evaluate_distill_run

    rep = run(_cfg(teacher, n_clusters=4, rlcc=True, bismap=False, eval_data="auto"), tmp_path / "run", progress=False)
    rep = evaluate_distill_run(rep)
    assert rep.report.classes == ["cluster00", "cluster01", "cluster02", "cluster03"]
    assert 0 <= rep.eval.student.cluster_miou_area <= 100
    from panoedge.eval.distill_check import read_distill_run

    assert read_distill_run(tmp_path / "run").to_dict() == rep.to_dict()


def test_cli_distill_and_ablation(tmp_path, teacher):
    import json

    from typer.testing import CliRunner

    from panoedge.cli.app import app
    import panoedge.cli.distill  # noqa: F401  (registers the command)

    cfg_file = tmp_path / "distill.yaml"
    cfg_file.write_text("synth_n: 4\nsynth_hw: 32x64\nerp_hw: 32x64\nn_patches: 12\nfov_deg: 120\ngenerations: 2\n"
                        "batch: 2\nbismap_components: 2\ndepthg_points: 16\neval_n: 2\nwarmup: 1\n")
    torch.set_num_threads(1)
    args = ["distill", "--teacher", teacher, "--student", "pano-nano", "--config", str(cfg_file), "--steps", "2"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "student pano-nano" in r.output and "teacher (patches)" in r.output
    assert "data, labels and training" in r.output and "GFLOP/s on a reference convolution" in r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["machine_conv_gflops"] > 0 and rep["timing_s"]["total"] >= rep["timing_s"]["distill"]
    assert rep["eval"]["student"]["miou_area"] is not None and "miou_gain_over_teacher_erp" in rep["eval"]["targets"]
    assert (tmp_path / "run" / "student.pt").is_file()
    from panoedge.eval.distill_check import read_distill_run, run_ablation

    back = read_distill_run(tmp_path / "run")  # the run folder's report read back as a typed result, same JSON
    assert back.to_dict() == json.loads((tmp_path / "run" / "report.json").read_text())
    assert back.eval.student.miou_area == rep["eval"]["student"]["miou_area"] and "student pano-nano" in back.format()

    ab = run_ablation(_cfg(teacher, steps=2, eval_data="auto"), tmp_path / "ab", variants=["baseline", "+pixl"], progress=False)
    assert set(ab.variants) == {"baseline", "+pixl"} and ab.variants["+pixl"].delta_miou_area is not None
    r = CliRunner().invoke(app, ["distill", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, UsageError)
