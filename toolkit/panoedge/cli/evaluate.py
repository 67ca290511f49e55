"""``panoedge eval`` and ``panoedge predict``: a student, ONNX export or teacher spec on ERP images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from panoedge.cli.app import app
from panoedge.cli.common import JsonOpt, emit_json, positive, preflight_model
from panoedge.cli.data_opts import DATA_HELP, ClassMapOpt, EveryOpt, RigOpt
from panoedge.distill.tangent_layout import PatchLayout
from panoedge.errors import UsageError

_MODEL_HELP = "student.pt, a run folder, a student .onnx, a bundle folder, or a teacher spec (builtin:PATH, onnx:FILE, hf:ID)."
_DEVICE_HELP = "auto (a CUDA GPU when there is one), cpu or cuda[:N]."
_MODE_HELP = "Teachers only: erp (the whole ERP image) or tangent (tangent patches fused to ERP)."
# PatchLayout is the one place patch defaults live
_N_PATCHES_HELP = f"Tangent patches (default {PatchLayout.n_patches})."
_FOV_HELP = f"Tangent patch horizontal FOV (default {PatchLayout.fov_deg:g})."


def _layout(mode: str, n_patches: Optional[int], fov_deg: Optional[float]) -> dict | None:
    """The tangent layout options ``--n-patches``/``--fov-deg`` ask for (``None``: the default layout)."""
    if n_patches is None and fov_deg is None:
        return None
    if mode != "tangent":
        raise UsageError("--n-patches and --fov-deg shape the tangent patches: use them with --mode tangent")
    return {"n_patches": n_patches if n_patches is not None else PatchLayout.n_patches,
            "fov_deg": fov_deg if fov_deg is not None else PatchLayout.fov_deg}


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help=_MODEL_HELP),
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    mode: str = typer.Option("erp", "--mode", help=_MODE_HELP),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="Evaluate only the first N panoramas."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    n_patches: Optional[int] = typer.Option(None, "--n-patches", help=_N_PATCHES_HELP),
    fov_deg: Optional[float] = typer.Option(None, "--fov-deg", help=_FOV_HELP),
    class_map: Optional[str] = ClassMapOpt,
    rig: Optional[str] = RigOpt,
    every: int = EveryOpt,
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """mIoU (area-weighted and plain), per-class IoU, AbsRel, RMSE and delta1, by latitude band and at the seam."""
    preflight_model("panoedge eval", model)
    if max_images is not None:
        positive(max_images, "--max-images")
    from panoedge.eval.evaluate import evaluate_model

    rep = evaluate_model(model, data, mode=mode, device=device, layout=_layout(mode, n_patches, fov_deg),
                         class_map=class_map, rig=rig, every=every, max_images=max_images)
    typer.echo(rep.format())
    emit_json(json_path, rep)


@app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help=_MODEL_HELP),
    inputs: Path = typer.Argument(..., help="An ERP image, or " + DATA_HELP[0].lower() + DATA_HELP[1:]),
    out: Path = typer.Option(..., "--out", help="Output folder: labels/, overlay/, depth/ (16-bit mm) and "
                             "depth_color/ (coloured, with its scale) PNGs per input stem."),
    mode: str = typer.Option("erp", "--mode", help=_MODE_HELP),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    n_patches: Optional[int] = typer.Option(None, "--n-patches", help=_N_PATCHES_HELP),
    fov_deg: Optional[float] = typer.Option(None, "--fov-deg", help=_FOV_HELP),
    class_map: Optional[str] = ClassMapOpt,
    rig: Optional[str] = RigOpt,
    every: int = EveryOpt,
) -> None:
    """Class ids (uint8 PNG), a colour overlay, depth (16-bit mm PNG) and a coloured depth view for each panorama."""
    preflight_model("panoedge predict", model)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    from panoedge.eval.evaluate import predict_model

    res = predict_model(model, inputs, out, mode=mode, device=device, layout=_layout(mode, n_patches, fov_deg),
                        class_map=class_map, rig=rig, every=every)
    typer.echo(res.format())
