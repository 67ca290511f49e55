"""The held-out check of a distillation run, and the component ablation: evaluation on top of ``distill``.

:func:`evaluate_distill_run` takes the :class:`~panoedge.distill.default.DistillRun` that
:func:`panoedge.distill.default.run` returned and scores, on the held-out scenes of
:func:`~panoedge.distill.default.eval_data_spec` (never used in training), the student, the
teacher on the whole ERP image and the teacher through tangent patches, with
:func:`panoedge.eval.evaluate.evaluate` (area-weighted mIoU, AbsRel); then the issue's targets
(:class:`Targets`). Label-free students get the cluster mIoU after a Hungarian matching instead
(:class:`ClusterEval`). The teacher is the run's resolved teacher: loaded once, on the CPU, for
every score. :func:`run_ablation` trains each variant of :mod:`panoedge.distill.ablation` and scores it here.

This module sits above ``distill`` (it imports it; ``distill`` never imports ``eval``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from panoedge.eval.evaluate import HEADLINE_KEYS, EvalReport
from panoedge.results import Record, fmt_or_na, json_field

__all__ = ["ClusterEval", "DistillEval", "EvalScores", "Targets", "evaluate_clusters", "evaluate_distill_run", "evaluate_run",
           "param_ratio", "read_distill_run", "run_ablation", "targets"]

MIN_MIOU_GAIN_OVER_ERP = 5.0
"""Target: the student beats the teacher run on the whole ERP image by this many mIoU points (area-weighted)."""
MIN_MIOU_RATIO_TO_TANGENT = 0.95
"""Target: the student keeps this share of the teacher's mIoU through tangent patches (its best ERP use)."""
MAX_ABSREL_RATIO_TO_TANGENT = 1.1
"""Target: the student's AbsRel is at most this multiple of the teacher's through tangent patches."""
MAX_PARAM_SHARE = 10
"""Target: the teacher has at least this many times the student's parameters (the point of distilling)."""
SLIM_KEYS = HEADLINE_KEYS
"""The parts of an evaluation report (``panoedge.eval/1``) a distillation run keeps."""



@dataclass(frozen=True)
class EvalScores(Record):
    """One model's slim evaluation report: the :data:`SLIM_KEYS` that :func:`panoedge.eval.evaluate.evaluate`
    gave, kept as given (a key it leaves out, e.g. ``absrel_area`` for a model without depth, stays out
    of the JSON and reads ``None`` here: ``scores.miou_area``, ``scores.absrel_area`` ...)."""

    values: dict

    def to_dict(self) -> dict:
        return dict(self.values)


for _key in SLIM_KEYS:
    setattr(EvalScores, _key, property(lambda self, k=_key: self.values.get(k),
                                       doc=f"``{_key}`` of the evaluation report (``None`` when absent)."))


@dataclass(frozen=True)
class Targets(Record):
    """The issue's targets for a distilled student (each ``None``, and left out of the JSON, where a number is missing)."""

    miou_gain_over_teacher_erp: float | None = json_field(omit_none=True, default=None)
    miou_gain_ok: bool | None = json_field(omit_none=True, default=None)
    miou_ratio_to_teacher_tangent: float | None = json_field(omit_none=True, default=None)
    miou_ratio_ok: bool | None = json_field(omit_none=True, default=None)
    absrel_ratio_to_teacher_tangent: float | None = json_field(omit_none=True, default=None)
    absrel_ok: bool | None = json_field(omit_none=True, default=None)
    student_params: int | None = json_field(omit_none=True, default=None)
    teacher_params: int | None = json_field(omit_none=True, default=None)
    param_ratio: float | None = json_field(omit_none=True, default=None)
    param_ok: bool | None = json_field(omit_none=True, default=None)

    def format(self) -> str:
        return (f"  targets: +{fmt_or_na(self.miou_gain_over_teacher_erp)} mIoU over teacher ERP "
                f"(>= {MIN_MIOU_GAIN_OVER_ERP:g}), "
                f"{fmt_or_na(self.miou_ratio_to_teacher_tangent, '.3f')} of teacher patches "
                f"(>= {MIN_MIOU_RATIO_TO_TANGENT:g}), "
                f"AbsRel x{fmt_or_na(self.absrel_ratio_to_teacher_tangent, '.2f')} "
                f"(<= {MAX_ABSREL_RATIO_TO_TANGENT:g}), "
                f"params x{fmt_or_na(self.param_ratio, '.3f')} (<= {1 / MAX_PARAM_SHARE:g})")


@dataclass(frozen=True)
class DistillEval(Record):
    """Held-out scores of a run: ``data`` (the held-out data spec), the slim evaluation reports of the
    ``student``, ``teacher_erp`` and ``teacher_tangent`` (keys :data:`SLIM_KEYS`; each ``None`` when not
    evaluated) and the :class:`Targets`."""

    data: str
    student: EvalScores | None = json_field(omit_none=True, default=None)
    teacher_erp: EvalScores | None = json_field(omit_none=True, default=None)
    teacher_tangent: EvalScores | None = json_field(omit_none=True, default=None)
    targets: Targets = dataclasses.field(default_factory=Targets)

    def format(self) -> str:
        lines = [f"held-out {self.data}:", f"  {'model':<18} {'mIoU area':>9} {'mIoU':>6} {'AbsRel area':>11}"]
        for key, name in (("student", "student"), ("teacher_erp", "teacher (ERP)"), ("teacher_tangent", "teacher (patches)")):
            r = getattr(self, key)
            if r is not None:
                lines.append(f"  {name:<18} {fmt_or_na(r.miou_area):>9} {fmt_or_na(r.miou):>6} "
                             f"{fmt_or_na(r.absrel_area, '.3f'):>11}")
        if self.targets.to_dict():
            lines.append(self.targets.format())
        return "\n".join(lines)


@dataclass(frozen=True)
class ClusterScore(Record):
    """A label-free student's area-weighted cluster mIoU (percent) after a one-to-one matching."""

    cluster_miou_area: float
    n_images: int
    matching: str = "hungarian, one cluster per class"


@dataclass(frozen=True)
class ClusterEval(Record):
    """Held-out score of a label-free run: ``data`` and the student's :class:`ClusterScore`."""

    data: str
    student: ClusterScore

    def format(self) -> str:
        return (f"held-out {self.data}:\n  student cluster mIoU area {fmt_or_na(self.student.cluster_miou_area)} "
                f"({self.student.n_images} panoramas, {self.student.matching})")


def _slim(rep: EvalReport) -> EvalScores:
    return EvalScores(rep.headline())


def evaluate_run(run: str | Path, teacher, eval_data: str, progress: bool = False,
                 modes=("student", "erp", "tangent"), device: str = "cpu") -> DistillEval:
    """Evaluate ``run``'s student and ``teacher`` (a spec or a resolved teacher; whole ERP and tangent
    patches) on ``eval_data``: a :class:`DistillEval` with the targets."""
    from panoedge.data import resolve_data
    from panoedge.eval.evaluate import evaluate, load_predictor
    from panoedge.models.teachers import resolve_teacher_spec

    teacher = resolve_teacher_spec(teacher) if teacher else None
    data = resolve_data(eval_data, progress)
    got: dict = {}
    if "student" in modes:
        got["student"] = _slim(evaluate(load_predictor(str(run), device=device), data, progress=progress))
    for mode in ("erp", "tangent"):
        if teacher and mode in modes:
            got[f"teacher_{mode}"] = _slim(evaluate(load_predictor(teacher, mode, device), data, progress=progress))
    ev = DistillEval(data=eval_data, **got)
    return dataclasses.replace(ev, targets=targets(ev, run, teacher))


def evaluate_clusters(run: str | Path, eval_data: str, progress: bool = False) -> ClusterEval:
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
    miou = cluster_miou(labels, gts, k=pred.num_classes, num_classes=len(data.classes), weights=wts)
    return ClusterEval(data=eval_data, student=ClusterScore(cluster_miou_area=100.0 * miou, n_images=len(gts)))


def targets(ev: DistillEval, run, teacher) -> Targets:
    """The issue's targets from an evaluation (``None`` where a number is missing)."""
    none = EvalScores({})
    s, e, t = ev.student or none, ev.teacher_erp or none, ev.teacher_tangent or none
    res: dict = {}
    if s.miou_area is not None and e.miou_area is not None:
        res["miou_gain_over_teacher_erp"] = s.miou_area - e.miou_area
        res["miou_gain_ok"] = res["miou_gain_over_teacher_erp"] >= MIN_MIOU_GAIN_OVER_ERP
    if s.miou_area is not None and t.miou_area:
        res["miou_ratio_to_teacher_tangent"] = s.miou_area / t.miou_area
        res["miou_ratio_ok"] = res["miou_ratio_to_teacher_tangent"] >= MIN_MIOU_RATIO_TO_TANGENT
    if s.absrel_area is not None and t.absrel_area:
        res["absrel_ratio_to_teacher_tangent"] = s.absrel_area / t.absrel_area
        res["absrel_ok"] = res["absrel_ratio_to_teacher_tangent"] <= MAX_ABSREL_RATIO_TO_TANGENT
    if teacher:
        res.update(param_ratio(run, teacher))
    return Targets(**res)


def param_ratio(run, teacher) -> dict:
    """``{"student_params", "teacher_params", "param_ratio", "param_ok"}`` (builtin teachers only)."""
    import torch

    from panoedge.models.checkpoint import load_student
    from panoedge.models.teachers import resolve_teacher_spec

    student, _ = load_student(run)
    n_s = sum(p.numel() for p in student.parameters())
    model = getattr(resolve_teacher_spec(teacher).load("cpu"), "model", None)
    if not isinstance(model, torch.nn.Module):
        return {"student_params": n_s}
    n_t = sum(p.numel() for p in model.parameters())
    return {"student_params": n_s, "teacher_params": n_t, "param_ratio": n_s / n_t,
            "param_ok": n_s * MAX_PARAM_SHARE <= n_t}


def evaluate_distill_run(run, progress: bool = False):
    """``run`` (a :class:`~panoedge.distill.default.DistillRun`) with its held-out ``eval`` and timing,
    ``report.json`` rewritten. Unchanged when there is nothing to evaluate: stopped early, no
    held-out data (``eval_data`` empty, or a dataset folder with ``auto``), or not rank 0."""
    from panoedge.distill.default import eval_data_spec
    from panoedge.distill.distributed import dist_info

    if not run.finished or dist_info()[0] != 0:
        return run
    cfg = run.report.config
    held = eval_data_spec(cfg)
    if not held:
        return run
    t1 = time.perf_counter()
    ev = evaluate_clusters(run.out, held, progress) if cfg.n_clusters else evaluate_run(run.out, run.teacher or cfg.teacher,
                                                                                        held, progress)
    t_eval = time.perf_counter() - t1
    timing = dataclasses.replace(run.timing_s, eval=t_eval, total=run.timing_s.total + t_eval)
    run = dataclasses.replace(run, eval=ev, timing_s=timing)
    run.write()
    return run


def _eval_from_dict(d: dict | None):
    if d is None:
        return None
    student = d.get("student") or {}
    if "cluster_miou_area" in student:
        return ClusterEval(data=d["data"], student=ClusterScore(**student))
    rows = {k: EvalScores(d[k]) for k in ("student", "teacher_erp", "teacher_tangent") if d.get(k) is not None}
    return DistillEval(data=d["data"], targets=Targets(**d.get("targets", {})), **rows)


def read_distill_run(folder: str | Path):
    """The finished run in ``folder`` as a :class:`~panoedge.distill.default.DistillRun` (with its
    ``eval`` when evaluated), read back from ``report.json``; ``None`` when the folder holds no
    finished run (no ``student.pt`` or no report). Its ``teacher`` is not resolved (``None``)."""
    from panoedge.distill.default import REPORT_FILE, DistillRun, Timing
    from panoedge.distill.report import DistillReport
    from panoedge.safe_load import load_report

    folder = Path(folder)
    if not (folder / "student.pt").is_file() or not (folder / REPORT_FILE).is_file():
        return None

    def from_dict(d: dict):
        return DistillRun(report=DistillReport.from_dict(d), timing_s=Timing(**d["timing_s"]),
                          machine_conv_gflops=d.get("machine_conv_gflops"), eval=_eval_from_dict(d.get("eval")),
                          out=folder, teacher=None)

    return load_report(folder / REPORT_FILE, from_dict, schema=DistillReport.SCHEMA)


def run_ablation(cfg, out: str | Path, variants=None, progress: bool = True):
    """Train and evaluate ``variants`` (default: :data:`~panoedge.distill.ablation.DEFAULT_VARIANTS`) of
    ``cfg`` under ``out``; returns the :class:`~panoedge.distill.ablation.AblationReport` (also written
    to ``out/ablation.json``)."""
    from panoedge.distill.ablation import DEFAULT_VARIANTS, AblationReport, TeacherRow, VariantRow, variant_config
    from panoedge.distill.default import eval_data_spec, resolve_teacher, run
    from panoedge.env import machine_info
    from panoedge.errors import UsageError
    from panoedge.home import write_json

    out = Path(out)
    cfg, teacher = resolve_teacher(cfg.validate(), progress)
    held = eval_data_spec(cfg)
    if held is None:
        raise UsageError("the ablation needs held-out data: set eval_data (synthetic data gets held-out scenes automatically)")
    names = list(variants or DEFAULT_VARIANTS)
    for name in names:
        variant_config(cfg, name)  # an unknown name fails before any training
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        rep = run(variant_config(cfg, name), out / name, progress)
        train_s = time.perf_counter() - t0
        ev = evaluate_run(out / name, None, held, modes=("student",)).student
        rows[name] = VariantRow(miou_area=ev.miou_area, miou=ev.miou, absrel_area=ev.absrel_area,
                                absrel=ev.absrel, train_s=train_s,
                                generations=rep.report.train.generations if rep.finished else [])
    ref = evaluate_run(out / names[0], teacher, held, modes=("erp", "tangent"))
    base = rows["baseline"].miou_area if "baseline" in rows else None
    rows = {k: r.with_delta(base) for k, r in rows.items()}
    teacher_rows = {m: TeacherRow.of(scores) for m, scores in (("erp", ref.teacher_erp), ("tangent", ref.teacher_tangent))
                    if scores is not None}
    report = AblationReport(machine=machine_info(backends_used=["torch"]), config=cfg, eval_data=held, variants=rows,
                            teacher=teacher_rows)
    write_json(out / "ablation.json", report.to_dict())
    return report
