"""``panoedge teacher``: train panoedge's own perspective teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, legacy, preflight
from panoedge.distill.teacher_config import TeacherTrainConfig

teacher_app = typer.Typer(rich_markup_mode=None, help="panoedge's own perspective teacher: train it, measure its ERP gap.",
                          no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


_D = TeacherTrainConfig()  # the one place defaults live


@teacher_app.command("train")
def train(
    data: str = typer.Option(..., "--data", help="synth:FAMILY (rendered pinhole views) or an ERP dataset folder."),
    family: Optional[str] = typer.Option(None, "--family", help="Class set: indoor or outdoor "
                                         "(default: FAMILY of --data synth:FAMILY; needed for a dataset folder)."),
    out: Path = typer.Option(..., "--out", help="Teacher folder to write (builtin:OUT); resumes from OUT/ckpt.pt."),
    steps: Optional[int] = typer.Option(None, "--steps", help=f"Training steps (default {_D.steps})."),
    n_views: Optional[int] = typer.Option(None, "--n-views", help=f"Training views (default {_D.n_views})."),
    size: Optional[str] = typer.Option(None, "--size", help="View size HxW, multiples of 32 "
                                       f"(default {_D.view_hw[0]}x{_D.view_hw[1]})."),
    width_mult: Optional[float] = typer.Option(None, "--width-mult", help="Channel multiplier of teacher-large "
                                               f"(default {_D.width_mult} = full size)."),
    batch: Optional[int] = typer.Option(None, "--batch", help=f"Batch size (default {_D.batch})."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of worlds, views and weights."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Peak learning rate (default {_D.lr:g})."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help=f"Linear warm-up steps (default {_D.warmup})."),
    warmup_old: Optional[int] = typer.Option(None, "--warmup", hidden=True),  # the old spelling of --warmup-steps
    pitch_deg: Optional[float] = typer.Option(None, "--pitch-deg", help="Largest view tilt, degrees "
                                              f"(default {_D.pitch_deg:g}: tangent patches look at the poles too)."),
    erp_size: Optional[str] = typer.Option(None, "--erp-size", help="Held-out ERP size HxW for the gap "
                                           f"(default {_D.erp_hw[0]}x{_D.erp_hw[1]})."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if OUT/ckpt.pt exists."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Train teacher-large on pinhole views; report perspective and whole-ERP mIoU/AbsRel (the distortion gap)."""
    preflight("panoedge teacher train", "train", ("torch",))
    from panoedge.distill.teacher_config import teacher_config_from_flags
    from panoedge.distill.teacher_train import train_teacher
    from panoedge.geometry import parse_hw

    cfg = teacher_config_from_flags(
        data=data, family=family, steps=steps, n_views=n_views, width_mult=width_mult, batch=batch, seed=seed,
        view_hw=parse_hw(size, "--size") if size else None, lr=lr,
        warmup=legacy(warmup_steps, warmup_old, "--warmup", "--warmup-steps"), pitch_deg=pitch_deg,
        erp_hw=parse_hw(erp_size, "--erp-size") if erp_size else None)
    rep = train_teacher(cfg, out, progress=True, resume=not no_resume)
    typer.echo(rep.format())
    emit_json(json_path, rep)
