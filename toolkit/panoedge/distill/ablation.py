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
tangent patches for reference. Report schema ``panoedge.ablation/1``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from panoedge.distill.config import COMPONENTS, DistillConfig

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


def run_ablation(cfg: DistillConfig, out: str | Path, variants=None, progress: bool = True) -> dict:
    """Train and evaluate ``variants`` (default: :data:`DEFAULT_VARIANTS`) of ``cfg`` under ``out``; returns the report."""
    from panoedge.distill.default import eval_data_spec, evaluate_run, resolve_teacher, run
    from panoedge.env import machine_info
    from panoedge.home import write_json

    out = Path(out)
    cfg = resolve_teacher(cfg.validate(), progress)
    held = eval_data_spec(cfg)
    if held is None:
        from panoedge.errors import UsageError

        raise UsageError("the ablation needs held-out data: set eval_data (synthetic data gets held-out scenes automatically)")
    names = list(variants or DEFAULT_VARIANTS)
    for name in names:
        variant_config(cfg, name)  # an unknown name fails before any training
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        rep = run(variant_config(cfg, name), out / name, progress, evaluate=False)
        train_s = time.perf_counter() - t0
        ev = evaluate_run(out / name, None, held, modes=("student",))["student"]
        rows[name] = {"miou_area": ev.get("miou_area"), "miou": ev.get("miou"), "absrel_area": ev.get("absrel_area"),
                      "absrel": ev.get("absrel"), "train_s": train_s,
                      "generations": rep.get("train", {}).get("generations", [])}
    ref = evaluate_run(out / names[0], cfg.teacher, held, modes=("erp", "tangent"))
    base = rows.get("baseline", {}).get("miou_area")
    for r in rows.values():
        r["delta_miou_area"] = None if base is None or r["miou_area"] is None else r["miou_area"] - base
    report = {"schema": SCHEMA, "machine": machine_info(backends_used=["torch"]), "config": cfg.to_dict(),
              "eval_data": held, "variants": rows,
              "teacher": {m: {k: ref[f"teacher_{m}"].get(k) for k in ("miou_area", "miou", "absrel_area", "absrel")}
                          for m in ("erp", "tangent") if f"teacher_{m}" in ref}}
    write_json(out / "ablation.json", report)
    return report


def _f(v, spec=".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def format_table(report: dict) -> str:
    """The ablation as a plain-text table (one row per variant, teacher references below)."""
    lines = [f"ablation on {report['eval_data']} ({report['config']['steps']} steps each, student {report['config']['student']})",
             f"{'variant':<13} {'mIoU area':>9} {'d vs base':>9} {'mIoU':>6} {'AbsRel area':>11} {'train s':>8}"]
    for name, r in report["variants"].items():
        d = r.get("delta_miou_area")
        lines.append(f"{name:<13} {_f(r['miou_area']):>9} {('n/a' if d is None else f'{d:+.1f}'):>9} {_f(r['miou']):>6} "
                     f"{_f(r['absrel_area'], '.3f'):>11} {_f(r['train_s'], '.0f'):>8}")
    for m, r in report.get("teacher", {}).items():
        lines.append(f"{'teacher ' + m:<13} {_f(r['miou_area']):>9} {'':>9} {_f(r['miou']):>6} {_f(r['absrel_area'], '.3f'):>11}")
    return "\n".join(lines)
