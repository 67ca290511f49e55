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
    r = _rig_for(rig, inputs)
    res = stitch_files(inputs, r, out, out_hw=out_hw, blend=blend, exposure=not no_exposure,
                       level=_parse_level(level), band_deg=band_deg, device=device)
    skipped = f", skipped {res.skipped} bad frame(s)" if res.skipped else ""
    fps = f" ({res.frames / res.seconds:.1f} frames/s)" if res.seconds > 0 and res.frames > 1 else ""
    typer.echo(f"stitched {res.frames} frame(s) with rig {r.name} -> {res.out}{skipped}{fps}")
    for why in res.reasons[:5]:
        typer.echo(f"  skipped: {why}")
    for g in res.levels[:5]:
        lines = f" ({g['inliers']} of {g['segments']} segments vertical)" if "inliers" in g else ""
        typer.echo(f"  level: {g['source']} confidence {g['confidence']:.2f}, pitch {g['pitch_deg']:.2f}° roll "
                   f"{g['roll_deg']:.2f}°{lines}")
    emit_json(json_path, {"schema": "panoedge.stitch/1", "rig": r.name, **res.to_dict()})


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
    emit_json(json_path, res.to_dict())


def _calibration_frames(paths: List[Path], rig, video_frames: int):
    from panoedge.errors import UsageError
    from panoedge.stitch.frames import partner_path, read_frame
    from panoedge.stitch.run import VIDEO_EXTS, _folder_items, sample_video_frames

    items, labels, seen = [], [], set()
    for p in paths:
        if p.suffix.lower() in VIDEO_EXTS:
            if rig.layout == "separate":
                raise UsageError(f"{p}: a separate-file rig ({rig.name}) takes front/back image pairs, not a video")
            for label, frame in sample_video_frames(p, video_frames):
                items.append(frame)
                labels.append(label)
            continue
        for group in (_folder_items(p, rig) if p.is_dir() else [[p]]):
            key = tuple(sorted(partner_path(group[0]) or group)) if rig.layout == "separate" else tuple(group)
            if key not in seen:
                seen.add(key)
                items.append(read_frame(rig, group))
                labels.append(Path(group[0]).name)
    return items, labels


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
    import numpy as np

    from panoedge.errors import UsageError
    from panoedge.geometry import ypr_from_rotation
    from panoedge.stitch.calibrate import calibrate
    from panoedge.stitch.rig import save_rig

    modes = {"auto": "auto", "yes": True, "no": False}
    if circles not in modes:
        raise UsageError(f"--circles {circles!r}: expected one of {', '.join(modes)}")
    start = _rig_for(init, frames[:1])
    imgs, labels = _calibration_frames(frames, start, video_frames)
    res = calibrate(imgs, start, refine=tuple(x.strip() for x in refine.split(",") if x.strip()),
                    circles=modes[circles], depth_m=depth_m, labels=labels)
    rig = res.annotated_rig(out.stem)
    save_rig(rig, out)
    d = res.to_dict()
    ypr0 = np.rad2deg(ypr_from_rotation(start.relative_rotation()))
    typer.echo(f"calibrated {start.name} from {res.n_frames} frame(s) -> {out}")
    for i, c in enumerate(d["circles"]):
        lens = rig.lenses[i]
        src = "found" if c else "kept"
        typer.echo(f"  lens {i} ({lens.name}): circle {src} centre ({lens.center_x_px:.1f}, {lens.center_y_px:.1f}) px, "
                   f"radius {lens.radius_px:.1f} px, fov {lens.fov_deg:.2f} deg")
    y, p, r = d["relative_ypr_deg"]
    typer.echo(f"  lens 1 relative to lens 0: yaw {y:.3f}  pitch {p:.3f}  roll {r:.3f} deg "
               f"(start {ypr0[0]:.3f} {ypr0[1]:.3f} {ypr0[2]:.3f})")
    b, a = d["residual_before"], d["residual_after"]
    typer.echo(f"  residual (median angle between matched rays): {b['median_deg']:.3f} deg ({b['n']} matches) -> "
               f"{a['median_deg']:.3f} deg ({a['n']} matches)")
    if len(d["per_frame"]) > 1:
        for pf in d["per_frame"]:
            b, a = pf["before"], pf["after"]
            typer.echo(f"    {pf['label'][:48]:<48} {b['median_deg']:.3f} deg ({b['n']}) -> {a['median_deg']:.3f} deg ({a['n']})")
    para = ", ".join(f"{k} {v:.2f} deg" for k, v in d["parallax_deg"].items())
    typer.echo(f"  parallax floor of the baseline: {para}" if any(d["parallax_deg"].values()) else
               "  parallax floor: baseline unknown (no translation_m in the rig)")
    emit_json(json_path, {"schema": "panoedge.calibration/1", "rig": str(out), **d})


@rig_app.command("show")
def rig_show(rig: str = typer.Argument(..., help="Rig file or preset name.")) -> None:
    """Print a rig: layout, lenses, orientation, provenance."""
    from panoedge.stitch.presets import resolve_rig

    r = resolve_rig(rig)
    typer.echo(f"{r.name}: {r.layout}, {r.image_width_px}x{r.image_height_px} px"
               f"{' per lens file' if r.layout == 'separate' else ''}")
    for i, lens in enumerate(r.lenses):
        typer.echo(f"  lens {i} {lens.name:<6} {lens.model:<15} fov {lens.fov_deg:.2f} deg  centre "
                   f"({lens.center_x_px:.1f}, {lens.center_y_px:.1f})  radius {lens.radius_px:.1f} px  "
                   f"ypr ({lens.yaw_deg:.2f}, {lens.pitch_deg:.2f}, {lens.roll_deg:.2f}) deg")
    typer.echo(f"  output ypr ({r.output_yaw_deg:.1f}, {r.output_pitch_deg:.1f}, {r.output_roll_deg:.1f}) deg")
    for k, v in r.extra.get("provenance", {}).items():
        typer.echo(f"  {k}: {', '.join(map(str, v))}")


@rig_app.command("list")
def rig_list() -> None:
    """List the rig presets (shipped, and yours in ./calibration/rigs or $PANOEDGE_RIGS) and generic."""
    from panoedge.stitch.presets import preset_names, preset_path
    from panoedge.stitch.rig import load_rig

    names = preset_names()
    width = max(len(n) for n in names)
    for name in names:
        path = preset_path(name)
        if path is None:
            about = "two nominal 195-degree lenses from the frame size (calibrate before serious use)"
        else:
            rig = load_rig(path)
            about = f"{rig.image_width_px}x{rig.image_height_px} {rig.layout}, " + (rig.notes or "").split(". ")[0].strip()
            about = about if len(about) <= 100 else about[:99] + "…"
        typer.echo(f"{name:<{width}}  {about}")


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
    import numpy as np

    from panoedge.eval.stitch_quality import recovery_cases, recovery_table

    rows = recovery_table(recovery_cases(cases), n=frames, frame_h=frame_h, baseline_m=baseline_m,
                          rot_deg=perturb_deg, fov_deg=perturb_deg, progress=True)
    typer.echo(f"{'family':<8} {'attitude':<9} {'seed':>4} {'start rot':>9} {'rot err':>8} {'fov err':>8} {'matches':>7}")
    for r in rows:
        typer.echo(f"{r['family']:<8} {r['attitude']:<9} {r['seed']:>4} {r['start_rot_err_deg']:>8.2f}° "
                   f"{r['rot_err_deg']:>7.3f}° {max(abs(v) for v in r['fov_err_deg']):>7.2f}° {r['matches']:>7}")
    rot = [r["rot_err_deg"] for r in rows]
    fov = [max(abs(v) for v in r["fov_err_deg"]) for r in rows]
    typer.echo(f"rotation error: median {np.median(rot):.3f}°, max {max(rot):.3f}° (target 0.2°); "
               f"field of view: max {max(fov):.2f}° (target 1°); baseline {baseline_m * 100:g} cm, {frames} frames, "
               f"{frame_h} px frames")
    emit_json(json_path, {"schema": "panoedge.rig_recovery/1", "rows": rows})


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
    from panoedge.eval.stitch_bench import format_report
    from panoedge.geometry import check_erp_size, parse_hw

    h, w = check_erp_size(*parse_hw(size, "--size"), what="--size")
    rep = run_bench((h, w), repeat=repeat, warmup=warmup, band_deg=band_deg, device=device)
    typer.echo(format_report(rep))
    emit_json(json_path, rep)
