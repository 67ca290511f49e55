"""The distillation loop: generations of self-training of an ERP student on teacher pseudo labels.

``distill(cfg, out)`` runs as one process or as one rank of ``torchrun``:

1. Checks before any training: the data (readable ERP images with ``W == 2H``), the teacher's
   classes against the student's (inside :func:`panoedge.distill.pseudo.build_pseudo_labels`) and
   the run folder. Rank 0 writes ``config.json`` (the resolved config; ``teacher`` = the spec used).
2. The training set (:mod:`panoedge.distill.train_data`): pseudo labels on tangent patches, built
   sharded across ranks, refined into generation-0 labels.
3. ``cfg.generations`` generations of ``steps / generations`` steps
   (:mod:`panoedge.distill.generations`).
4. Each step: a batch (:func:`~panoedge.distill.train_data.make_batch`), the enabled losses
   (:func:`~panoedge.distill.step.step_loss`), AdamW with warm-up and cosine decay, an EMA copy.
   ``torch.autocast`` on CUDA (bf16, or fp16 with a GradScaler); bf16 on the CPU only when
   ``amp="bf16"``.
5. Checkpoints and logs (:mod:`panoedge.distill.checkpoints`). Rank 0 finally writes
   ``student.pt`` (EMA weights, :func:`panoedge.models.save_student`) and ``report.json``
   (:class:`DistillReport`).

The teacher arrives resolved (:class:`~panoedge.models.teachers.ResolvedTeacher`, from
:func:`panoedge.distill.default.run`); a spec string in ``cfg.teacher`` is resolved here once.

Under DDP (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from ``torchrun``) the process group is ``nccl``
on CUDA and ``gloo`` on CPU; DDP averages gradients, and batch-norm buffers are broadcast from
rank 0 before saving, so every rank ends with identical weights.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from panoedge.distill.checkpoints import (
    CKPT,
    CONFIG,
    LABELS,
    LOG,
    LOG_KEYS,
    NON_SEMANTIC,
    REPORT,
    STUDENT,
    RunLog,
    check_out,
    load_ckpt,
    save_ckpt,
)
from panoedge.distill.config import DistillConfig, lr_at, write_config
from panoedge.distill.distributed import barrier, broadcast_buffers, dist_info, init_distributed, resolve_device
from panoedge.distill.generations import advance, label_miou, next_labels, relabels
from panoedge.distill.report import REPORT_SCHEMA, DistillReport, StoppedRun, TrainStats
from panoedge.distill.step import init_heads, step_loss
from panoedge.distill.train_data import TrainingSet, load_training_set, make_batch, refine_teacher_labels, student_classes
from panoedge.errors import Interrupted, UsageError
from panoedge.home import write_json
from panoedge.models.teachers import ResolvedTeacher, resolve_teacher_spec
from panoedge.signals import deferred_interrupt

__all__ = ["CKPT", "CONFIG", "LABELS", "LOG", "LOG_KEYS", "NON_SEMANTIC", "REPORT", "REPORT_SCHEMA", "STUDENT",
           "DistillReport", "DistillResult", "StoppedRun", "TrainingSet", "advance", "barrier", "dist_info", "distill",
           "init_distributed", "load_ckpt", "load_training_set", "next_labels", "refine_teacher_labels", "relabels",
           "resolve_device", "step_loss", "student_classes"]

EMA_WARMUP_STEPS = 10.0
"""The EMA decay is ``min(ema_decay, (1 + step) / (EMA_WARMUP_STEPS + step))``: over the first steps the
EMA follows the model closely instead of averaging in its random initial weights."""


@dataclass
class DistillResult:
    """What :func:`distill` returns: the EMA ``student`` (eval mode; ``None`` when stopped early),
    the ``report`` (:class:`DistillReport`, or :class:`StoppedRun` when stopped early) and the run folder ``out``."""

    student: torch.nn.Module | None
    report: DistillReport | StoppedRun
    out: Path


@dataclass
class _Trainables:
    """The student, its EMA copy, optimiser, gradient scaler, the (DDP-wrapped) ``net`` and the autocast dtype."""

    model: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    net: torch.nn.Module
    amp_dtype: torch.dtype | None

    def save(self, path: Path, cfg: DistillConfig, step: int, generation: int) -> None:
        save_ckpt(path, cfg, model=self.model, ema=self.ema, opt=self.opt, scaler=self.scaler, step=step,
                  generation=generation)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """``ema = d ema + (1 - d) model`` with ``d = min(decay, (1 + step) / (EMA_WARMUP_STEPS + step))``
    (the early EMA follows the model closely); buffers copied."""
    d = min(decay, (1.0 + step) / (EMA_WARMUP_STEPS + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _amp(cfg: DistillConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a GradScaler)``: bf16/fp16 on CUDA for ``auto``, bf16 anywhere for ``bf16``."""
    if cfg.amp == "off":
        return None, False
    if cfg.amp == "bf16":
        return torch.bfloat16, False
    if device.type != "cuda":
        return None, False
    return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)


def _trainables(cfg: DistillConfig, ts: TrainingSet, device: torch.device, world: int) -> _Trainables:
    """A fresh student for ``ts`` (output biases at the data), its EMA copy, AdamW and the scaler."""
    from panoedge.models import create_student

    torch.manual_seed(cfg.seed)
    model = create_student(cfg.student, len(ts.classes), **({} if ts.depth is not None else {"heads": ("seg",)}))
    init_heads(model, ts)
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype, use_scaler = _amp(cfg, device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Trainables(model=model, ema=ema, opt=opt, scaler=torch.amp.GradScaler(device.type, enabled=use_scaler),
                       net=net, amp_dtype=amp_dtype)


@dataclass
class _Loop:
    """Where the loop runs: config, run folder, rank, world size, device."""

    cfg: DistillConfig
    out: Path
    rank: int
    world: int
    device: torch.device


def _one_step(tr: _Trainables, ts: TrainingSet, loop: _Loop, step: int) -> dict:
    """One optimiser step at ``step`` (learning rate, batch, loss, backward, EMA); the loss parts."""
    cfg, device = loop.cfg, loop.device
    for group in tr.opt.param_groups:
        group["lr"] = lr_at(cfg, step)
    batch = make_batch(ts, cfg, step, rank=loop.rank, world=loop.world, model_cfg=tr.model.config, device=device)
    with torch.autocast(device.type, dtype=tr.amp_dtype or torch.bfloat16, enabled=tr.amp_dtype is not None):
        loss, parts = step_loss(tr.net, tr.model, batch, cfg=cfg, depth_kind=ts.depth_kind)
    tr.opt.zero_grad(set_to_none=True)
    tr.scaler.scale(loss).backward()
    tr.scaler.step(tr.opt)
    tr.scaler.update()
    ema_update(tr.ema, tr.model, decay=cfg.ema_decay, step=step)
    return parts


def _train(tr: _Trainables, ts: TrainingSet, loop: _Loop, start: int, end: int, progress: bool):
    """Steps ``start..end-1`` with generation switches, logs and checkpoints; a signal saves a
    checkpoint and raises :class:`Interrupted`. Returns ``(generation stats, last loss parts, s/step)``."""
    from panoedge.progress import tqdm

    cfg, out, rank = loop.cfg, loop.out, loop.rank
    log = RunLog(out, rank == 0, resume_step=start)
    gen_stats: list[dict] = []
    tr.model.train()
    t0, n_steps, parts = time.perf_counter(), 0, {}
    bar = tqdm(range(start, end), desc="distill", unit="step", initial=start, total=cfg.steps,
               disable=not (progress and rank == 0))
    with deferred_interrupt() as stop:
        for step in bar:
            g = step // cfg.steps_per_generation
            if g != ts.generation:
                gen_stats.append(advance(ts, g, tr.ema, cfg=cfg, folder=out / LABELS, rank=rank, world=loop.world,
                                         device=loop.device))
            parts = _one_step(tr, ts, loop, step)
            n_steps += 1
            last = step + 1 == end
            if (step + 1) % cfg.log_every == 0 or last:
                log.write(step + 1, g, lr_at(cfg, step), parts)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", gen=g)
            if (step + 1) % cfg.ckpt_every == 0 or last:
                if rank == 0:
                    tr.save(out / CKPT, cfg, step + 1, g)
                barrier(loop.world)
            if stop.requested and not last:
                if rank == 0:
                    tr.save(out / CKPT, cfg, step + 1, g)
                log.close()
                raise Interrupted(f"{stop.name} at step {step + 1} of {cfg.steps}: checkpoint saved to {out / CKPT}; "
                                  f"run the same command again (same --out and config) to resume from there")
    log.close()
    return gen_stats, parts, (time.perf_counter() - t0) / n_steps if n_steps else None


def _resolved(cfg: DistillConfig, teacher: ResolvedTeacher | None) -> tuple[DistillConfig, ResolvedTeacher]:
    """``cfg`` validated and its teacher resolved (``teacher`` must be ``cfg.teacher``'s)."""
    from panoedge.models import get_student_entry

    cfg = cfg.validate()
    if not cfg.teacher:
        raise UsageError("no teacher spec: pass --teacher, or run the embedded default (panoedge distill without --teacher)")
    if teacher is not None and teacher.spec != cfg.teacher.strip():
        raise UsageError(f"teacher {teacher.spec!r} differs from the config's {cfg.teacher!r}")
    get_student_entry(cfg.student)
    return cfg, resolve_teacher_spec(teacher or cfg.teacher)


def distill(cfg: DistillConfig, out: str | Path, progress: bool = True, stop_at: int | None = None,
            teacher: ResolvedTeacher | None = None) -> DistillResult:
    """Distil ``cfg.teacher`` into ``cfg.student`` on ``cfg.data``, writing the run folder ``out``.

    ``cfg.teacher`` must be a spec (:func:`panoedge.distill.default.run` resolves the embedded
    default teacher first and passes it resolved as ``teacher``). ``stop_at`` ends the call after
    that many steps in all, with a checkpoint and no ``student.pt`` (the report is a
    :class:`StoppedRun`); a rerun with the same config resumes from ``out/ckpt.pt``.
    """
    cfg, teacher = _resolved(cfg, teacher)
    out, device = Path(out), resolve_device(cfg.device)
    rank, world = init_distributed(device)
    if cfg.batch % world:
        raise UsageError(f"batch {cfg.batch} does not split over {world} ranks")
    check_out(out, cfg)
    ts = load_training_set(cfg, rank=rank, world=world, progress=progress and rank == 0, device=device, teacher=teacher)
    teacher.release()  # the labels are built: the teacher need not sit in memory through training
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out / CONFIG, cfg, classes=ts.classes, depth_kind=ts.depth_kind)
    tr = _trainables(cfg, ts, device, world)
    barrier(world)
    start = 0
    if (out / CKPT).is_file():
        start, _ = load_ckpt(out / CKPT, cfg, model=tr.model, ema=tr.ema, opt=tr.opt, scaler=tr.scaler)
    end = cfg.steps if stop_at is None else min(cfg.steps, int(stop_at))
    loop = _Loop(cfg=cfg, out=out, rank=rank, world=world, device=device)
    gen_stats, parts, s_per_step = _train(tr, ts, loop, start=start, end=end, progress=progress)
    if end < cfg.steps:
        return DistillResult(None, StoppedRun(stopped_at=end, s_per_step=s_per_step), out)
    if world > 1:
        broadcast_buffers(tr.model, tr.ema)
    train = TrainStats(steps=cfg.steps, world_size=world, device=str(device), s_per_step_this_run=s_per_step,
                       threads=torch.get_num_threads(), generations=gen_stats)
    report = _finish(tr.ema, ts, loop, final_losses=parts, train=train)
    barrier(world)
    return DistillResult(tr.ema, report, out)


def _finish(ema, ts: TrainingSet, loop: _Loop, final_losses: dict, train: TrainStats) -> DistillReport:
    """The report; on rank 0 also ``student.pt`` (EMA weights) and ``report.json``."""
    cfg, out = loop.cfg, loop.out
    labels = {**ts.label_stats, "diag_label_miou_area": label_miou(ts.base.float(), ts)}
    report = DistillReport(config=cfg, classes=ts.classes, depth_kind=ts.depth_kind, n_train_images=len(ts.stems),
                           final_losses=final_losses, teacher_labels=labels, train=train)
    if loop.rank != 0:
        return report
    from panoedge.env import machine_info
    from panoedge.models import save_student

    save_student(out / STUDENT, ema, ts.classes, colors=ts.colors, family=ts.family,
                 meta={"teacher": cfg.teacher, "data": cfg.data, "steps": cfg.steps, "depth_kind": ts.depth_kind,
                       "erp_hw": list(cfg.erp_hw)})
    report = report.with_machine(machine_info(backends_used=["torch"]))
    write_json(out / REPORT, report.to_dict())
    return report
