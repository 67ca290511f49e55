"""``panoedge distill --ablate``: every refinement component on the same budget, one table.

Variants (:data:`VARIANTS`) share the config (data, teacher, student, steps, generations, seed)
and differ only in the component switches: ``baseline`` (plain pseudo-label cross entropy plus
the depth loss, all components off), ``baseline`` plus one component each, ``all`` (every
component on), ``all-area`` (every component, losses *not* weighted by solid angle) and
``default`` (the switches as configured, i.e. :class:`DistillConfig`'s defaults); on request
(``variants=``, ``panoedge distill --ablate --variants``) also ``-X``: the default with component
``X`` switched off (leave-one-out, what a default has to earn). Each
trains into ``OUT/<variant>`` (resumable); students are scored on the same held-out scenes
with ``panoedge.eval.evaluate``, the teacher once on the whole ERP image and once through
tangent patches for reference. Report schema ``panoedge.ablation/1`` (:class:`AblationReport`).

Training and scoring the variants (:func:`panoedge.eval.distill_check.run_ablation`) sits above
``distill`` with the rest of the evaluation; this module defines the variants and the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

from panoedge.distill.config import COMPONENTS, DistillConfig
from panoedge.results import Record, Result, fmt_or_na, json_field

SCHEMA = "panoedge.ablation/1"
OFF = {c: False for c in COMPONENTS}
VARIANTS: dict[str, dict] = {
    "baseline": OFF,
    **{f"+{c}": {**OFF, c: True} for c in COMPONENTS},
    "all": {c: True for c in COMPONENTS},
    "all-area": {**{c: True for c in COMPONENTS}, "area_weighted": False},
    "default": {},
    **{f"-{c}": {c: False} for c in COMPONENTS},
}
DEFAULT_VARIANTS = tuple(k for k in VARIANTS if not k.startswith("-"))
"""What ``--ablate`` trains when no variants are named (the leave-one-out ``-X`` rows on request)."""


def variant_config(cfg: DistillConfig, name: str) -> DistillConfig:
    """``cfg`` with the switches of variant ``name`` (a key of :data:`VARIANTS`)."""
    from panoedge.errors import unknown_name

    if name not in VARIANTS:
        raise unknown_name("ablation variant", name, VARIANTS)
    if name == "default":
        return cfg
    if name.startswith("-"):
        return replace(cfg, **VARIANTS[name])
    return replace(cfg, **{"area_weighted": True, **VARIANTS[name]})



@dataclass(frozen=True)
class VariantRow(Record):
    """One variant's held-out scores (percent, AbsRel), training seconds, per-generation stats and
    ``delta_miou_area`` over ``baseline`` (``None`` without a baseline row)."""

    miou_area: float | None
    miou: float | None
    absrel_area: float | None
    absrel: float | None
    train_s: float
    generations: list = dataclasses.field(default_factory=list)
    delta_miou_area: float | None = None

    def with_delta(self, base: float | None) -> "VariantRow":
        d = None if base is None or self.miou_area is None else self.miou_area - base
        return replace(self, delta_miou_area=d)


@dataclass(frozen=True)
class TeacherRow(Record):
    """The teacher's held-out scores in one mode (whole ERP image or tangent patches), for reference."""

    miou_area: float | None
    miou: float | None
    absrel_area: float | None
    absrel: float | None

    @classmethod
    def of(cls, scores) -> "TeacherRow":
        """The row of an evaluation's scores (any object with these attributes)."""
        return cls(miou_area=scores.miou_area, miou=scores.miou, absrel_area=scores.absrel_area, absrel=scores.absrel)


@dataclass(frozen=True)
class AblationReport(Result):
    """``panoedge distill --ablate``: one :class:`VariantRow` per variant on ``eval_data``, the teacher's
    :class:`TeacherRow` per mode, the shared ``config`` and ``machine``."""

    SCHEMA = SCHEMA

    machine: dict
    config: DistillConfig
    eval_data: str
    variants: dict
    teacher: dict = json_field(default_factory=dict)

    def format(self) -> str:
        """The ablation as a plain-text table (one row per variant, teacher references below)."""
        c = self.config
        lines = [f"ablation on {self.eval_data} ({c.steps} steps each, student {c.student})",
                 f"{'variant':<13} {'mIoU area':>9} {'d vs base':>9} {'mIoU':>6} {'AbsRel area':>11} {'train s':>8}"]
        for name, r in self.variants.items():
            d = r.delta_miou_area
            lines.append(f"{name:<13} {fmt_or_na(r.miou_area):>9} {('n/a' if d is None else f'{d:+.1f}'):>9} "
                         f"{fmt_or_na(r.miou):>6} "
                         f"{fmt_or_na(r.absrel_area, '.3f'):>11} {fmt_or_na(r.train_s, '.0f'):>8}")
        for m, r in self.teacher.items():
            lines.append(f"{'teacher ' + m:<13} {fmt_or_na(r.miou_area):>9} {'':>9} {fmt_or_na(r.miou):>6} "
                         f"{fmt_or_na(r.absrel_area, '.3f'):>11}")
        return "\n".join(lines)
