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
        from panoedge.eval.distill_check import run_ablation

        names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
        rep = run_ablation(cfg, out, variants=names, progress=True)
    else:
        from panoedge.distill.default import run

        rep = run(cfg, out, progress=True)
        if not no_eval:
            from panoedge.eval.distill_check import evaluate_distill_run

            rep = evaluate_distill_run(rep, progress=True)
    typer.echo(rep.format())
    emit_json(json_path, rep)
