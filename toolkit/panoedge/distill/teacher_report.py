"""The teacher's typed report (``panoedge teacher train``, ``report.json`` in a teacher folder),
schema ``panoedge.teacher_report/1``: what :func:`panoedge.distill.teacher_train.train_teacher` returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.results import Record, Result, json_field

REPORT_SCHEMA = "panoedge.teacher_report/1"
TANGENT_NOTE = ("the teacher runs on the default tangent layout (patches of its input size) fused to "
                "ERP (panoedge.distill.tangent): how distillation sees it")
ERP_NOTE = ("the teacher runs on the whole ERP image through its adapter (resized to input_hw and "
            "back); its z-depth output is read as ERP range as-is: the naive use the gap measures")


@dataclass(frozen=True)
class TeacherTrainStats(Record):
    """How the teacher trained: ``steps``, seconds per step of this call, torch ``threads`` and a
    thinned ``loss_curve`` (``[step, loss, cross entropy, depth loss]`` rows)."""

    steps: int
    s_per_step_this_run: float | None
    threads: int
    loss_curve: list


@dataclass(frozen=True)
class DistortionGap(Record):
    """The teacher's ERP gap: mIoU points lost from perspective views to the whole ERP image,
    the AbsRel ratio (``None`` without perspective AbsRel), and the points tangent patches win back."""

    miou_points: float
    absrel_ratio: float | None
    tangent_over_erp_miou_points: float


@dataclass(frozen=True)
class PerspectiveScores(Record):
    """The teacher on held-out pinhole views: mIoU (percent), per-class IoU, z-depth AbsRel/RMSE/delta1."""

    miou: float
    per_class_iou: dict
    absrel: float | None
    rmse: float | None
    delta1: float | None
    n_images: int
    size: list


@dataclass(frozen=True)
class ErpScores(Record):
    """The teacher on whole held-out panoramas: area-weighted (``*_area``) beside plain scores (see ``ERP_NOTE``)."""

    miou_area: float
    miou: float
    per_class_iou: dict
    per_class_iou_plain: dict
    absrel_area: float | None
    absrel: float | None
    rmse_area: float | None
    rmse: float | None
    delta1_area: float | None
    delta1: float | None
    n_images: int
    size: list
    note: str = ERP_NOTE


@dataclass(frozen=True)
class TangentScores(Record):
    """The teacher through its default tangent layout fused to ERP (see ``TANGENT_NOTE``)."""

    miou_area: float
    miou: float
    per_class_iou: dict
    absrel_area: float | None
    rmse_area: float | None
    delta1_area: float | None
    n_images: int
    size: list
    note: str = TANGENT_NOTE


@dataclass(frozen=True)
class TeacherScores(Record):
    """:func:`evaluate_teacher`'s result: :class:`PerspectiveScores`, :class:`ErpScores`,
    :class:`TangentScores` and the :class:`DistortionGap`."""

    perspective: PerspectiveScores
    erp: ErpScores
    tangent: TangentScores
    gap: DistortionGap


@dataclass(frozen=True)
class TeacherStopped(Record):
    """Teacher training stopped early (``stop_at``): the step, seconds per step and the loss curve so far."""

    stopped_at: int
    s_per_step: float | None
    curve: list

    def format(self) -> str:
        return f"stopped at step {self.stopped_at} (checkpoint saved; rerun to resume)"


@dataclass(frozen=True)
class TeacherReport(Result):
    """``panoedge teacher train``'s report (``report.json`` in the teacher folder): ``machine``, the
    resolved ``config``, ``arch``, ``params``, :class:`TeacherTrainStats` and the scores of
    :class:`TeacherScores` (``perspective``, ``erp``, ``tangent``, ``gap``) flattened in."""

    SCHEMA: ClassVar[str] = REPORT_SCHEMA

    machine: dict
    config: TeacherTrainConfig
    arch: str
    params: int
    train: TeacherTrainStats
    perspective: PerspectiveScores
    erp: ErpScores
    tangent: TangentScores
    gap: DistortionGap
    out: Path | None = json_field(json=False, default=None)

    def format(self) -> str:
        """Perspective, whole-ERP and tangent-patch scores and the distortion gap."""
        p, e, t, g, c = self.perspective, self.erp, self.tangent, self.gap, self.config
        ratio = f"{g.absrel_ratio:.2f}" if g.absrel_ratio is not None else "n/a"
        return "\n".join([
            f"teacher {self.arch} x{c.width_mult} ({self.params / 1e6:.1f}M params), {c.steps} steps"
            + (f" -> {self.out}" if self.out is not None else ""),
            f"perspective {p.size[0]}x{p.size[1]} ({p.n_images} views): mIoU {p.miou:.1f}%  "
            f"AbsRel {p.absrel:.3f}  delta1 {p.delta1:.3f}",
            f"ERP {e.size[0]}x{e.size[1]} ({e.n_images} panoramas): mIoU area {e.miou_area:.1f}% "
            f"(plain {e.miou:.1f}%)  AbsRel area {e.absrel_area:.3f} (plain {e.absrel:.3f})",
            f"ERP through tangent patches: mIoU area {t.miou_area:.1f}% (plain {t.miou:.1f}%)  "
            f"AbsRel area {t.absrel_area:.3f}",
            f"distortion gap: {g.miou_points:.1f} mIoU points perspective -> whole ERP, AbsRel x{ratio}; "
            f"tangent patches recover {g.tangent_over_erp_miou_points:+.1f} points over whole ERP"])

    @classmethod
    def from_dict(cls, d: dict) -> "TeacherReport":
        """A report read back from a teacher folder's ``report.json``."""
        cfg = TeacherTrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["config"].items()})
        return cls(machine=d["machine"], config=cfg, arch=d["arch"], params=int(d["params"]),
                   train=TeacherTrainStats(**d["train"]), perspective=PerspectiveScores(**d["perspective"]),
                   erp=ErpScores(**d["erp"]), tangent=TangentScores(**d["tangent"]), gap=DistortionGap(**d["gap"]),
                   out=None)


def read_teacher_report(folder: str | Path) -> TeacherReport | None:
    """The :class:`TeacherReport` in ``folder/report.json`` (``None`` when there is none)."""
    from panoedge.safe_load import load_report

    path = Path(folder) / "report.json"
    if not path.is_file():
        return None
    return dataclasses.replace(load_report(path, TeacherReport.from_dict, schema=REPORT_SCHEMA), out=Path(folder))
