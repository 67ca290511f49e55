"""The embedded default chain behind ``panoedge distill`` with no options, and held-out evaluation.

:func:`run` fills in what the config leaves open, then distils and evaluates:

* data: ``synth:FAMILY`` is rendered once and cached (``cfg.synth_n`` panoramas at ``cfg.synth_hw``);
* teacher: with no ``cfg.teacher`` (synthetic data only), panoedge's own ``teacher-large`` at full
  width, trained on the :data:`DEFAULT_TEACHER` budget (small views, few steps: sized so the
  whole chain fits 15 minutes on 2 CPU cores) and cached under ``$PANOEDGE_HOME/teachers/<key>``
  (key = the training config), resuming if a previous attempt was interrupted;
* student: ``cfg.student`` (``pano-small``), trained by :func:`panoedge.distill.trainer.distill`;
* evaluation (:func:`evaluate_run`): the student, the teacher on the whole ERP image and the
  teacher through tangent patches, on held-out synthetic scenes (``eval_seed``: never used in
  training) at the training size, with ``panoedge.eval.evaluate`` (area-weighted mIoU, AbsRel).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from panoedge.distill.config import DistillConfig
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.errors import UsageError

DEFAULT_TEACHER = TeacherTrainConfig(n_views=512, view_hw=(96, 128), width_mult=1.0, steps=800, batch=12, lr=2e-3,
                                     warmup=60, ckpt_every=100, n_eval=16, erp_hw=(128, 256))
"""The embedded teacher's training budget (family and data are filled in per run)."""
EVAL_SEED_OFFSET = 1_000_003
"""Held-out synthetic scenes use dataset seed ``cfg.seed + EVAL_SEED_OFFSET`` (training uses ``cfg.seed``)."""
SCHEMA = "panoedge.distill_run/1"


def synth_family(data: str) -> str | None:
    """``indoor`` for ``synth:indoor?...``; ``None`` for a dataset folder."""
    if not str(data).startswith("synth:"):
        return None
    return str(data)[len("synth:"):].partition("?")[0] or "indoor"


def default_teacher_folder(family: str, base: TeacherTrainConfig = DEFAULT_TEACHER) -> Path:
    """Where the embedded teacher for ``family`` and budget ``base`` is cached (trained or not)."""
    from panoedge.home import cache_dir, content_key

    cfg = replace(base, family=family, data=f"synth:{family}").validate()
    return cache_dir("teachers", content_key("teacher", asdict(cfg), _net_signature(cfg)))


def default_teacher(family: str, progress: bool = True, base: TeacherTrainConfig = DEFAULT_TEACHER) -> str:
    """The spec of the cached embedded teacher for ``family``, training it first if absent."""
    from panoedge.distill.teacher_train import train_teacher

    cfg = replace(base, family=family, data=f"synth:{family}").validate()
    folder = default_teacher_folder(family, base)
    if not (folder / "teacher.pt").is_file():
        train_teacher(cfg, folder, progress=progress)
    return "builtin:" + str(folder)


def _net_signature(cfg: TeacherTrainConfig) -> list:
    """Parameter names and shapes of the network ``cfg`` trains: part of the cache key, so a
    teacher cached by a version of panoedge whose network differs is trained again, not loaded."""
    import torch

    from panoedge.distill.teacher_train import ARCH
    from panoedge.models.teacher_net import create_teacher_net
    from panoedge.synth.world import class_names

    with torch.device("meta"):
        net = create_teacher_net(ARCH, len(class_names(cfg.family)), width_mult=cfg.width_mult,
                                 max_depth_m=cfg.max_depth_m)
    return [[k, list(v.shape)] for k, v in net.state_dict().items()]


def resolve_teacher(cfg: DistillConfig, progress: bool = True) -> DistillConfig:
    """``cfg`` with ``teacher`` filled in (the embedded default for ``synth:`` data)."""
    if cfg.teacher:
        return cfg
    family = synth_family(cfg.data)
    if family is None:
        raise UsageError(f"{cfg.data}: a dataset folder needs a teacher (--teacher SPEC); "
                         "the built-in teacher is trained on the synthetic world only")
    from panoedge.distill.trainer import barrier, dist_info

    rank, world, _ = dist_info()
    spec = default_teacher(family, progress) if rank == 0 else None
    if world > 1:  # one rank trains the teacher, the others wait and find it cached
        from panoedge.distill.trainer import init_distributed, resolve_device

        init_distributed(resolve_device(cfg.device))
        barrier(world)
        spec = spec or default_teacher(family, False)
    return replace(cfg, teacher=spec)


def eval_data_spec(cfg: DistillConfig) -> str | None:
    """The held-out data of ``cfg.eval_data`` (``auto``: held-out synthetic seeds for ``synth:`` data)."""
    if not cfg.eval_data:
        return None
    if cfg.eval_data != "auto":
        return cfg.eval_data
    family = synth_family(cfg.data)
    if family is None:
        return None
    h, w = cfg.synth_hw  # the data's own size: the student runs at its training size, the teacher's patches see it sharp
    return f"synth:{family}?n={cfg.eval_n}&size={h}x{w}&seed={cfg.seed + EVAL_SEED_OFFSET}"


def evaluate_run(run: str | Path, teacher: str | None, eval_data: str, progress: bool = False,
                 modes=("student", "erp", "tangent"), device: str = "cpu") -> dict:
    """Evaluate ``run``'s student and ``teacher`` (whole ERP and tangent patches) on ``eval_data``.

    Returns ``{"data", "student", "teacher_erp", "teacher_tangent", "targets"}``: evaluation reports
    (``panoedge.eval/1``) and the issue's target checks (mIoU gain over ERP, ratio to tangent,
    AbsRel ratio, parameter ratio).
    """
    from panoedge.data import resolve_data
    from panoedge.eval.evaluate import evaluate, load_predictor

    data = resolve_data(eval_data, progress)
    out: dict = {"data": eval_data}
    if "student" in modes:
        out["student"] = _slim(evaluate(load_predictor(str(run), device=device), data, progress=progress))
    for mode in ("erp", "tangent"):
        if teacher and mode in modes:
            out[f"teacher_{mode}"] = _slim(evaluate(load_predictor(teacher, mode, device), data, progress=progress))
    out["targets"] = targets(out, run, teacher)
    return out


def evaluate_clusters(run: str | Path, eval_data: str, progress: bool = False) -> dict:
    """Label-free students: area-weighted mIoU (percent) of their clusters on ``eval_data`` after a
    one-to-one Hungarian matching of clusters to the dataset's classes (:func:`cluster.cluster_miou`)."""
    import numpy as np

    from panoedge.data import resolve_data
    from panoedge.distill.cluster import cluster_miou
    from panoedge.eval.predictors import load_predictor
    from panoedge.geometry import erp_area_weights

    data = resolve_data(eval_data, progress)
    pred = load_predictor(str(run))
    labels, gts = [], []
    for stem in data.stems:
        sample = data.load(stem, ["rgb", "semantic"])
        labels.append(pred.predict(sample["rgb"])[0])
        gts.append(sample["semantic"])
    labels, gts = np.stack(labels), np.stack(gts)
    wts = np.broadcast_to(erp_area_weights(*gts.shape[1:]), gts.shape)
    return {"data": eval_data, "student": {"cluster_miou_area": 100.0 * cluster_miou(labels, gts, pred.num_classes,
                                                                                  len(data.classes), wts),
                                           "n_images": len(gts), "matching": "hungarian, one cluster per class"}}


def _slim(rep: dict) -> dict:
    keep = ("model", "mode", "miou_area", "miou", "per_class_iou", "absrel_area", "absrel", "rmse_area",
            "delta1_area", "n_images", "depth_alignment", "seam")
    return {k: rep[k] for k in keep if k in rep}


def targets(ev: dict, run, teacher: str | None) -> dict:
    """The issue's targets from an :func:`evaluate_run` result (``None`` where a number is missing)."""
    s, e, t = ev.get("student", {}), ev.get("teacher_erp", {}), ev.get("teacher_tangent", {})
    res: dict = {}
    if s.get("miou_area") is not None and e.get("miou_area") is not None:
        res["miou_gain_over_teacher_erp"] = s["miou_area"] - e["miou_area"]
        res["miou_gain_ok"] = res["miou_gain_over_teacher_erp"] >= 5.0
    if s.get("miou_area") is not None and t.get("miou_area"):
        res["miou_ratio_to_teacher_tangent"] = s["miou_area"] / t["miou_area"]
        res["miou_ratio_ok"] = res["miou_ratio_to_teacher_tangent"] >= 0.95
    if s.get("absrel_area") is not None and t.get("absrel_area"):
        res["absrel_ratio_to_teacher_tangent"] = s["absrel_area"] / t["absrel_area"]
        res["absrel_ok"] = res["absrel_ratio_to_teacher_tangent"] <= 1.1
    if teacher:
        res.update(param_ratio(run, teacher))
    return res


def param_ratio(run, teacher: str) -> dict:
    """``{"student_params", "teacher_params", "param_ratio", "param_ok"}`` (builtin teachers only)."""
    import torch

    from panoedge.models.checkpoint import load_student
    from panoedge.models.teachers import load_teacher

    student, _ = load_student(run)
    n_s = sum(p.numel() for p in student.parameters())
    t = load_teacher(teacher, "cpu")
    model = getattr(t, "model", None)
    if not isinstance(model, torch.nn.Module):
        return {"student_params": n_s}
    n_t = sum(p.numel() for p in model.parameters())
    return {"student_params": n_s, "teacher_params": n_t, "param_ratio": n_s / n_t, "param_ok": n_s * 10 <= n_t}


def run(cfg: DistillConfig, out: str | Path, progress: bool = True, stop_at: int | None = None,
        evaluate: bool = True) -> dict:
    """The whole chain (module docstring); returns the run report (with ``eval`` when evaluated).

    Under ``torchrun`` every rank calls this; only rank 0 evaluates.
    """
    import time

    from panoedge.distill.trainer import dist_info, distill
    from panoedge.env import conv_gflops
    from panoedge.home import write_json

    gflops = conv_gflops()  # wall times below depend on it: 0.5 s to make them comparable across machines
    t0 = time.perf_counter()
    cfg = resolve_teacher(cfg.validate(), progress)
    t_teacher = time.perf_counter() - t0
    res = distill(cfg, out, progress, stop_at)
    report = dict(res.report)
    report["timing_s"] = {"teacher": t_teacher, "distill": time.perf_counter() - t0 - t_teacher}
    report["machine_conv_gflops"] = gflops
    held = eval_data_spec(cfg)
    if evaluate and res.student is not None and held and dist_info()[0] == 0:
        t1 = time.perf_counter()
        report["eval"] = (evaluate_clusters(out, held, progress) if cfg.n_clusters
                          else evaluate_run(out, cfg.teacher, held, progress))
        report["timing_s"]["eval"] = time.perf_counter() - t1
    report["timing_s"]["total"] = time.perf_counter() - t0
    if res.student is not None and dist_info()[0] == 0:
        write_json(Path(out) / "report.json", report)
    return report
