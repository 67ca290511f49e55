"""``panoedge stitch``, ``panoedge rig calibrate|show|list`` and ``panoedge bench stitch``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from panoedge.cli.app import app, bench_app
from panoedge.cli.common import JsonOpt, emit_json

rig_app = typer.Typer(rich_markup_mode=None, help="Dual-fisheye rig files: presets, self-calibration.", no_args_is_help=True)
app.add_typer(rig_app, name="rig")


def _parse_level(text: Optional[str]):
    if text is None or text == "auto":
        return text
    from panoedge.errors import UsageError
    from panoedge.stitch import level_from_ypr_deg

    try:
        y, p, r = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--level {text!r}: expected auto, or YAW,PITCH,ROLL in degrees, e.g. 0,5,-2") from None
    return level_from_ypr_deg(y, p, r)


def _rig_for(spec: str, inputs: List[Path]):
    from panoedge.stitch.presets import resolve_rig
    from panoedge.stitch.run import first_frame_hw

    return resolve_rig(spec, first_frame_hw(inputs) if spec == "generic" else None)


@app.command()
def stitch(
    inputs: List[Path] = typer.Argument(..., help="An image, a front/back pair, a folder or a video."),
    rig: str = typer.Option(..., "--rig", help="Rig file, preset name (see `panoedge rig list`) or 'generic'."),
    out: Path = typer.Option(..., "--out", help="Output of the same kind: image file, folder or video file."),
    size: Optional[str] = typer.Option(None, "--size", help="ERP size HxW (W = 2H); default: frame height x 2."),
    blend: str = typer.Option("feather", "--blend", help="feather (fast) or multiband."),
    band_deg: float = typer.Option(5.0, "--band-deg", help="Width of the seam blending band, degrees."),
    no_exposure: bool = typer.Option(False, "--no-exposure", help="Skip exposure/colour compensation."),
    level: Optional[str] = typer.Option(None, "--level", help="auto (the frame's vertical from its lines) or the rig "
                                        "attitude YAW,PITCH,ROLL (degrees) to level out."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Stitch dual-fisheye frames into equirectangular panoramas."""
    from panoedge.geometry import check_erp_size, parse_hw
    from panoedge.stitch.run import stitch_files

    out_hw = check_erp_size(*parse_hw(size, "--size"), what="--size") if size else None
    if not 0 < band_deg < 90:
        from panoedge.errors import UsageError

        raise UsageError(f"--band-deg {band_deg:g}: expected a width in degrees between 0 and 90")
    result = stitch_files(inputs, _rig_for(rig, inputs), out, out_hw=out_hw, blend=blend, exposure=not no_exposure,
                          level=_parse_level(level), band_deg=band_deg, device=device)
    typer.echo(result.format())
    emit_json(json_path, result)


@app.command("level")
def level_cmd(
    inputs: List[Path] = typer.Argument(..., help="ERP images (W = 2H) to level."),
    out: Path = typer.Option(..., "--out", help="Folder for the levelled images (same names)."),
    source: str = typer.Option("auto", "--source", help="auto (camera metadata where present, else the image), "
                               "metadata (GPano XMP pose) or image (vertical lines)."),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                   help="Below this an image estimate leaves the file as it is "
                                                        "(default: panoedge.stitch.level.MIN_CONFIDENCE)."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Level equirectangular panoramas: gravity from the camera's pose metadata or the scene's vertical lines."""
    from panoedge.stitch.level import MIN_CONFIDENCE, level_files

    res = level_files(inputs, out, source=source,
                      min_confidence=MIN_CONFIDENCE if min_confidence is None else min_confidence)
    typer.echo(res.format())
    emit_json(json_path, res)


@rig_app.command("calibrate")
def rig_calibrate(
    frames: List[Path] = typer.Argument(..., help="Frames from one or several scenes (images, front/back files, "
                                        "folders of them, or videos)."),
    init: str = typer.Option(..., "--init", help="Start rig: file, preset name, or 'generic'."),
    out: Path = typer.Option(..., "--out", help="Where to write the calibrated rig YAML."),
    refine: str = typer.Option("rotation,fov", "--refine",
                               help="Comma list of rotation, fov (shared), fov_each, center, coeffs."),
    circles: str = typer.Option("auto", "--circles", help="Image circles: auto, yes (always re-fit) or no."),
    depth_m: Optional[float] = typer.Option(None, "--depth-m", help="Assumed scene distance for parallax (default: far)."),
    video_frames: int = typer.Option(5, "--video-frames", min=1, max=100,
                                     help="Frames sampled evenly from each video given."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Self-calibrate one rig from ordinary frames of one or several scenes: circles, rotation, field of view."""
    from panoedge.stitch.calibrate_files import calibrate_files

    result = calibrate_files(frames, _rig_for(init, frames[:1]), out,
                             refine=tuple(x.strip() for x in refine.split(",") if x.strip()), circles=circles,
                             depth_m=depth_m, video_frames=video_frames)
    typer.echo(result.format())
    emit_json(json_path, result)


@rig_app.command("show")
def rig_show(rig: str = typer.Argument(..., help="Rig file or preset name.")) -> None:
    """Print a rig: layout, lenses, orientation, provenance."""
    from panoedge.stitch.presets import resolve_rig, rig_summary

    typer.echo(rig_summary(resolve_rig(rig)))


@rig_app.command("list")
def rig_list() -> None:
    """List the rig presets (shipped, and yours in ./calibration/rigs or $PANOEDGE_RIGS) and generic."""
    from panoedge.stitch.presets import preset_table

    typer.echo(preset_table())


@rig_app.command("recovery")
def rig_recovery(
    cases: int = typer.Option(8, "--cases", min=1, help="How many synthetic rigs (both families, upright and handheld)."),
    frames: int = typer.Option(5, "--frames", min=1, help="Frames per calibration."),
    baseline_m: float = typer.Option(0.03, "--baseline-m", min=0.0, max=0.5,
                                     help="Distance between the lens centres, metres (parallax)."),
    perturb_deg: float = typer.Option(3.0, "--perturb-deg", min=0.0, max=10.0,
                                      help="Start rotation and field-of-view error, degrees."),
    frame_h: int = typer.Option(960, "--frame-h", min=128, max=4096,
                                help="Frame height, px (lens circle radius 0.49 x this). 960: circles as small as "
                                     "the smallest real preset's (Theta S live view, 462 px); the tilt accuracy "
                                     "scales with the pixel size, so smaller frames understate real cameras."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Self-calibrate perturbed synthetic rigs (true rig known) and print the recovered errors."""
    from panoedge.eval.stitch_quality import recovery_cases, recovery_table

    result = recovery_table(recovery_cases(cases), n=frames, frame_h=frame_h, baseline_m=baseline_m,
                            rot_deg=perturb_deg, fov_deg=perturb_deg, progress=True)
    typer.echo(result.format())
    emit_json(json_path, result)


@bench_app.command("stitch")
def bench_stitch(
    size: str = typer.Option("960x1920", "--size", help="ERP size HxW (the frame is H x 2H side by side)."),
    repeat: int = typer.Option(100, "--repeat", help="Timed repeats of each case."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed warm-up runs of each case."),
    band_deg: float = typer.Option(5.0, "--band-deg", help="Seam band width, degrees."),
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda (torch) where present."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Frames per second of the full stitch and of one bare cv2.remap (the floor), and their ratio."""
    from panoedge.eval.stitch_bench import bench_stitch as run_bench
    from panoedge.geometry import check_erp_size, parse_hw

    h, w = check_erp_size(*parse_hw(size, "--size"), what="--size")
    result = run_bench((h, w), repeat=repeat, warmup=warmup, band_deg=band_deg, device=device)
    typer.echo(result.format())
    emit_json(json_path, result)
