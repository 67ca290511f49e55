"""``panoedge distill``: distil a teacher into an ERP student (or, with ``--ablate``, compare components)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, preflight, preflight_model
from panoedge.cli.data_opts import DATA_HELP, ClassMapOpt, RigOpt
from panoedge.distill.config import COMPONENTS, DistillConfig

_D = DistillConfig()  # the one place defaults live


@app.command("distill")
def distill(
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher spec (builtin:DIR, onnx:FILE, hf:ID, A+B). "
                                          "Default: the built-in teacher, trained and cached on first use."),
    data: Optional[str] = typer.Option(None, "--data", help=f"{DATA_HELP} (default {_D.data}; "
                                       f"synthetic data: {_D.synth_n} panoramas at {_D.synth_hw[0]}x{_D.synth_hw[1]})."),
    rig: Optional[str] = RigOpt,
    every: Optional[int] = typer.Option(None, "--every", min=1, help=f"With --rig: stitch every Nth frame (default {_D.every})."),
    class_map: Optional[str] = ClassMapOpt,
    clusters: Optional[int] = typer.Option(None, "--clusters", min=1, help="Label-free: the student's classes are "
                                           "N clusters of the teacher's features (or class probabilities)."),
    camera_height: Optional[float] = typer.Option(None, "--camera-height", help="Camera height above the floor in "
                                                  "metres: makes a relative depth teacher's labels metric "
                                                  "(scale from the floor plane)."),
    student: Optional[str] = typer.Option(None, "--student", help=f"Student name (default {_D.student}; see panoedge models)."),
    out: Path = typer.Option(Path("runs/distill"), "--out", help="Run folder: config.json, student.pt, ckpt.pt, "
                             "log.csv, tb/, report.json. A rerun resumes from its checkpoint."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON file of DistillConfig keys "
                                          "(defaults < file < flags)."),
    steps: Optional[int] = typer.Option(None, "--steps", help=f"Training steps in all (default {_D.steps})."),
    ablate: bool = typer.Option(False, "--ablate", help="Train every component variant on the same budget "
                                "into OUT/<variant> and print one table."),
    variants: Optional[str] = typer.Option(None, "--variants", help="With --ablate: comma-separated variants "
                                           "(baseline, +X, -X, all, all-area, default; X one of "
                                           f"{', '.join(COMPONENTS)}). "
                                           "Default: baseline, each +X, all, all-area, default."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the held-out evaluation at the end."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Distil TEACHER into a panoramic student on DATA; with no options, the embedded default end to end."""
    preflight("panoedge distill", "train", ("torch",))
    if teacher:
        preflight_model("panoedge distill", teacher)
    from panoedge.distill.config import resolve_config

    cfg = resolve_config(config, teacher=teacher, data=data, student=student, steps=steps, rig=rig, every=every,
                         class_map=class_map, n_clusters=clusters, camera_height_m=camera_height)
    if ablate:
        from panoedge.distill.ablation import format_table, run_ablation

        names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
        rep = run_ablation(cfg, out, variants=names, progress=True)
        typer.echo(format_table(rep))
        emit_json(json_path, rep)
        return
    from panoedge.distill.default import run

    rep = run(cfg, out, progress=True, evaluate=not no_eval)
    _print(rep, out)
    emit_json(json_path, rep)


def _fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def _print(rep: dict, out: Path) -> None:
    cfg, t = rep["config"], rep.get("timing_s", {})
    typer.echo(f"student {cfg['student']} <- {cfg['teacher']}: {cfg['steps']} steps, {cfg['generations']} generations "
               f"-> {out / 'student.pt'}")
    parts = ", ".join(f"{name} {_fmt(t.get(key), '.0f')} s" for key, name in
                      (("teacher", "teacher"), ("distill", "data, labels and training"), ("eval", "evaluation")) if key in t)
    typer.echo(f"  time {_fmt(t.get('total'), '.0f')} s ({parts}); this CPU: "
               f"{_fmt(rep.get('machine_conv_gflops'), '.0f')} GFLOP/s on a reference convolution")
    ev = rep.get("eval")
    if not ev:
        return
    typer.echo(f"held-out {ev['data']}:")
    typer.echo(f"  {'model':<18} {'mIoU area':>9} {'mIoU':>6} {'AbsRel area':>11}")
    for key, name in (("student", "student"), ("teacher_erp", "teacher (ERP)"), ("teacher_tangent", "teacher (patches)")):
        if key in ev:
            r = ev[key]
            typer.echo(f"  {name:<18} {_fmt(r.get('miou_area')):>9} {_fmt(r.get('miou')):>6} {_fmt(r.get('absrel_area'), '.3f'):>11}")
    tg = ev.get("targets", {})
    if tg:
        typer.echo(f"  targets: +{_fmt(tg.get('miou_gain_over_teacher_erp'))} mIoU over teacher ERP (>= 5), "
                   f"{_fmt(tg.get('miou_ratio_to_teacher_tangent'), '.3f')} of teacher patches (>= 0.95), "
                   f"AbsRel x{_fmt(tg.get('absrel_ratio_to_teacher_tangent'), '.2f')} (<= 1.1), "
                   f"params x{_fmt(tg.get('param_ratio'), '.3f')} (<= 0.1)")
