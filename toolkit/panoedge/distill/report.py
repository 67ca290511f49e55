"""The distillation's typed report (what :func:`panoedge.distill.trainer.distill` returns and
writes as ``report.json``), schema ``panoedge.distill_report/1``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from panoedge.distill.config import FIELDS, DistillConfig
from panoedge.results import Record, Result, json_field

REPORT_SCHEMA = "panoedge.distill_report/1"


@dataclass(frozen=True)
class TrainStats(Record):
    """How the training ran: ``steps`` in all, DDP ``world_size``, ``device``, seconds per step of this
    call (``None`` when it resumed at the end), torch ``threads``, one stats dict per later generation."""

    steps: int
    world_size: int
    device: str
    s_per_step_this_run: float | None
    threads: int
    generations: list = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class StoppedRun(Record):
    """A distillation stopped early (``stop_at``): the step it stopped at; no student was written."""

    stopped_at: int
    s_per_step: float | None

    def format(self) -> str:
        return f"stopped at step {self.stopped_at} (checkpoint saved; rerun to resume)"


@dataclass(frozen=True)
class DistillReport(Result):
    """A finished distillation: the resolved ``config``, the student's ``classes`` and ``depth_kind``,
    ``n_train_images``, the last step's loss parts, the generation-0 label statistics
    (``teacher_labels``: plane check, class prior, diagnostic label mIoU), :class:`TrainStats` and,
    on the rank that wrote the run folder, ``machine`` (:func:`panoedge.env.machine_info`)."""

    SCHEMA = REPORT_SCHEMA

    config: DistillConfig
    classes: list
    depth_kind: str | None
    n_train_images: int
    final_losses: dict
    teacher_labels: dict
    train: TrainStats
    machine: dict | None = json_field(omit_none=True, default=None)

    def with_machine(self, machine: dict) -> "DistillReport":
        return dataclasses.replace(self, machine=machine)

    def format(self) -> str:
        c = self.config
        return (f"student {c.student} <- {c.teacher}: {c.steps} steps, {c.generations} generations, "
                f"{len(self.classes)} classes, {self.n_train_images} panoramas")

    @classmethod
    def from_dict(cls, d: dict) -> "DistillReport":
        """A report read back from ``report.json`` (keys past this schema's are ignored)."""
        cfg = DistillConfig(**{k: v for k, v in d["config"].items() if k in FIELDS}).validate()
        train = TrainStats(**{f.name: d["train"][f.name] for f in dataclasses.fields(TrainStats) if f.name in d["train"]})
        return cls(config=cfg, classes=list(d["classes"]), depth_kind=d["depth_kind"],
                   n_train_images=int(d["n_train_images"]), final_losses=dict(d["final_losses"]),
                   teacher_labels=dict(d["teacher_labels"]), train=train, machine=d.get("machine"))
