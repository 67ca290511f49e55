"""The embedded default chain behind ``panoedge distill`` with no options, and held-out evaluation.

:func:`run` fills in what the config leaves open, then distils and evaluates:

* data: ``synth:FAMILY`` is rendered once and cached (``cfg.synth_n`` panoramas at ``cfg.synth_hw``);
* teacher: with no ``cfg.teacher`` (synthetic data only), panoedge's own ``teacher-large`` at full
  width, trained on the :data:`DEFAULT_TEACHER` budget (small views, few steps: sized so the
  whole chain fits 15 minutes on 2 CPU cores) and cached under ``$PANOEDGE_HOME/teachers/<key>``
  (key = the training config), resuming if a previous attempt was interrupted;
* student: ``cfg.student`` (``pano-small``), trained by :func:`panoedge.distill.trainer.distill`.

:func:`run` returns a :class:`DistillRun`. The held-out evaluation (the student, the teacher on the
whole ERP image and through tangent patches, on the scenes of :func:`eval_data_spec`) sits above
the distillation, in :func:`panoedge.eval.distill_check.evaluate_distill_run`, which the CLI calls
next and which adds ``eval`` to the same result and ``report.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from panoedge.distill.config import DistillConfig, synth_family
from panoedge.distill.report import DistillReport, StoppedRun
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.errors import UsageError
from panoedge.results import Record, Result, fmt_or_na, json_field

DEFAULT_TEACHER = TeacherTrainConfig(n_views=512, view_hw=(96, 128), width_mult=1.0, steps=800, batch=12, lr=2e-3,
                                     warmup=60, ckpt_every=100, n_eval=16, erp_hw=(128, 256))
"""The embedded teacher's training budget (family and data are filled in per run)."""
EVAL_SEED_OFFSET = 1_000_003
"""Held-out synthetic scenes use dataset seed ``cfg.seed + EVAL_SEED_OFFSET`` (training uses ``cfg.seed``)."""
REPORT_FILE = "report.json"
"""The run folder's report: the trainer's, completed with timings (and the evaluation, once run)."""


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


def resolve_teacher(cfg: DistillConfig, progress: bool = True):
    """``(cfg, teacher)``: ``cfg`` with ``teacher`` filled in (the embedded default for ``synth:`` data)
    and that spec resolved once (:class:`~panoedge.models.teachers.ResolvedTeacher`), for every stage after."""
    from panoedge.models.teachers import resolve_teacher_spec

    if cfg.teacher:
        return cfg, resolve_teacher_spec(cfg.teacher)
    family = synth_family(cfg.data)
    if family is None:
        raise UsageError(f"{cfg.data}: a dataset folder needs a teacher (--teacher SPEC); "
                         "the built-in teacher is trained on the synthetic world only")
    from panoedge.distill.distributed import barrier, dist_info, init_distributed, resolve_device

    rank, world, _ = dist_info()
    spec = default_teacher(family, progress) if rank == 0 else None
    if world > 1:  # one rank trains the teacher, the others wait and find it cached
        init_distributed(resolve_device(cfg.device))
        barrier(world)
        spec = spec or default_teacher(family, False)
    return replace(cfg, teacher=spec), resolve_teacher_spec(spec)


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



@dataclass(frozen=True)
class Timing(Record):
    """Wall seconds of the run's stages: the teacher (trained or found cached), the distillation
    (data, labels and training), the evaluation (once run) and in all."""

    teacher: float
    distill: float
    eval: float | None = json_field(omit_none=True, default=None)
    total: float = 0.0

    def format(self) -> str:
        parts = [f"teacher {fmt_or_na(self.teacher, '.0f')} s",
                 f"data, labels and training {fmt_or_na(self.distill, '.0f')} s"]
        if self.eval is not None:
            parts.append(f"evaluation {fmt_or_na(self.eval, '.0f')} s")
        return f"time {fmt_or_na(self.total, '.0f')} s ({', '.join(parts)})"


@dataclass(frozen=True)
class DistillRun(Result):
    """What :func:`run` returns: the trainer's ``report`` (:class:`DistillReport`, or
    :class:`StoppedRun`), ``timing_s``, ``machine_conv_gflops`` (this machine's speed on a reference
    convolution: makes wall times comparable) and, once evaluated, ``eval`` (a record of
    :mod:`panoedge.eval.distill_check`). ``out`` is the run folder and ``teacher`` the resolved
    teacher (neither in the JSON).

    The JSON is the trainer's report with ``timing_s``, ``machine_conv_gflops`` and ``eval`` appended
    (so its ``schema`` is the trainer's ``panoedge.distill_report/1``): the form ``report.json`` has.
    """

    report: DistillReport | StoppedRun
    timing_s: Timing
    machine_conv_gflops: float | None
    eval: Any = json_field(omit_none=True, default=None)
    out: Path = json_field(json=False, default=Path("."))
    teacher: Any = json_field(json=False, default=None)

    @property
    def finished(self) -> bool:
        """Whether a student was written (not stopped early)."""
        return isinstance(self.report, DistillReport)

    def to_dict(self) -> dict:
        body = super().to_dict()
        del body["report"]
        return {**self.report.to_dict(), **body}

    def format(self) -> str:
        if not self.finished:
            return self.report.format()
        c = self.report.config
        lines = [f"student {c.student} <- {c.teacher}: {c.steps} steps, {c.generations} generations "
                 f"-> {self.out / 'student.pt'}",
                 f"  {self.timing_s.format()}; this CPU: {fmt_or_na(self.machine_conv_gflops, '.0f')} GFLOP/s "
                 "on a reference convolution"]
        if self.eval is not None:
            lines.append(self.eval.format())
        return "\n".join(lines)

    def write(self) -> None:
        """Write ``report.json`` into the run folder (a finished run, on rank 0 only)."""
        from panoedge.distill.distributed import dist_info
        from panoedge.home import write_json

        if self.finished and dist_info()[0] == 0:
            write_json(Path(self.out) / REPORT_FILE, self.to_dict())


def run(cfg: DistillConfig, out: str | Path, progress: bool = True, stop_at: int | None = None) -> DistillRun:
    """The whole chain but the evaluation (module docstring): resolve the teacher once, distil.

    Under ``torchrun`` every rank calls this. Next, :func:`panoedge.eval.distill_check.evaluate_distill_run`
    adds the held-out evaluation.
    """
    from panoedge.distill.trainer import distill
    from panoedge.env import conv_gflops

    gflops = conv_gflops()  # wall times below depend on it: 0.5 s to make them comparable across machines
    t0 = time.perf_counter()
    cfg, teacher = resolve_teacher(cfg.validate(), progress)
    t_teacher = time.perf_counter() - t0
    res = distill(cfg, out, progress=progress, stop_at=stop_at, teacher=teacher)
    t_all = time.perf_counter() - t0
    result = DistillRun(report=res.report, timing_s=Timing(teacher=t_teacher, distill=t_all - t_teacher, total=t_all),
                        machine_conv_gflops=gflops, out=Path(out), teacher=teacher)
    result.write()
    return result
