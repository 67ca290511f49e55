"""How well the camera height makes relative depth metric, measured on the synthetic world.

The synthetic indoor world knows everything: each scene's camera height (``cameras/STEM.json``,
``-position_m[1]``: y points down, the floor is y = 0), its range and its labels. Two measurements:

Means over images (and medians, beside them in the JSON).

1. **geometry** (no teacher): the true range times an unknown per-image factor, its scale recovered
   from the true floor labels and the camera height (:func:`panoedge.distill.camera_height.floor_scale`).
2. **teacher**: a small built-in teacher trained here (``--teacher-steps``), run on tangent patches
   (:func:`panoedge.distill.tangent.tangent_predict`) once as what it is (metric) and once declared
   ``relative`` (its depth fused as relative range: scale lost, median 1), then made metric with
   its own floor labels and the camera height. AbsRel (area-weighted) against the truth for: the
   metric teacher's labels, the relative labels made metric by the camera height, and the
   relative labels after the oracle per-image least-squares scale and shift (what evaluation
   reports for relative students).

3. **students** (``--student-steps N``): scenes whose camera sits within ``--height-tol`` of
   ``--camera-height`` (a robot's camera has one height; the synthetic world draws 1.0-1.8 m)
   train three students on the same budget: from the metric teacher, from the same teacher
   declared relative with ``camera_height_m``, and from it declared relative without (trained
   scale-and-shift-invariant, scored after per-image alignment). All are scored on held-out
   scenes of the same height band.

Usage::

    python examples/measure_camera_height.py [--n 16] [--teacher-steps 300] [--student-steps 200] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def absrel(pred: np.ndarray, gt: np.ndarray, area: np.ndarray) -> float:
    ok = (gt > 0) & np.isfinite(gt) & (pred > 0)
    return float((area[ok] * np.abs(pred[ok] - gt[ok]) / gt[ok]).sum() / area[ok].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", default="128x256")
    ap.add_argument("--teacher-steps", type=int, default=300)
    ap.add_argument("--student-steps", type=int, default=0)
    ap.add_argument("--camera-height", type=float, default=1.4)
    ap.add_argument("--height-tol", type=float, default=0.1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from panoedge.data import resolve_data
    from panoedge.distill.camera_height import floor_scale
    from panoedge.eval.evaluate import _align_scale_shift
    from panoedge.geometry import erp_area_weights

    h, w = (int(v) for v in args.size.split("x"))
    ds = resolve_data(f"synth:indoor?n={args.n}&size={h}x{w}&seed=4242")
    floor_id = ds.classes.index("floor")
    area = erp_area_weights(h, w, np.float64)
    rng = np.random.default_rng(0)
    heights, gts, floors = [], [], []
    geo = {"scale_rel_err": [], "absrel": []}
    for stem in ds.stems:
        cam = json.loads((ds.root / "cameras" / f"{stem}.json").read_text())
        height = -float(cam["position_m"][1])
        s = ds.load(stem, ["depth", "semantic"])
        factor = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
        (scale, shift), _ = floor_scale(s["depth"] / factor, s["semantic"] == floor_id, height)
        geo["scale_rel_err"].append(abs(scale / factor - 1.0))
        geo["absrel"].append(absrel(s["depth"] / factor * scale + shift, s["depth"], area))
        heights.append(height)
        gts.append(s["depth"])
        floors.append(s["semantic"] == floor_id)
    report = {"schema": "panoedge.camera_height/1", "n_images": len(ds.stems), "size": [h, w],
              "camera_heights_m": [min(heights), max(heights)],
              "geometry": {"median_scale_error": float(np.median(geo["scale_rel_err"])),
                           "absrel_area": float(np.mean(geo["absrel"]))}}
    print(f"geometry (true floor, true range x unknown factor): median scale error "
          f"{100 * report['geometry']['median_scale_error']:.3f} %, AbsRel {report['geometry']['absrel_area']:.4f}")

    spec = None
    if args.teacher_steps > 0:
        from dataclasses import replace

        from panoedge.distill.default import DEFAULT_TEACHER, default_teacher
        from panoedge.distill.tangent import tangent_predict
        from panoedge.models.teachers import load_teacher

        spec = default_teacher("indoor", progress=True, base=replace(DEFAULT_TEACHER, steps=args.teacher_steps))
        teacher = load_teacher(spec)
        rows = {"metric_teacher": [], "relative_camera_height": [], "relative_camera_height_scale_only": [],
                "relative_camera_height_true_floor": [], "relative_oracle_aligned": []}
        scales_ok = 0
        for i, stem in enumerate(ds.stems):
            rgb = ds.load(stem, ["rgb"])["rgb"]
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            out = tangent_predict(teacher, x)
            metric = out.depth[0, 0].numpy()
            teacher.depth_kind = "relative"  # the same network, declared relative: scale unknown
            rel = tangent_predict(teacher, x).depth[0, 0].numpy()
            teacher.depth_kind = "metric"
            probs = out.probs[0]
            floor = ((probs.argmax(0) == floor_id) & (probs[floor_id] >= 0.5)).numpy()
            fit, _ = floor_scale(rel, floor, heights[i])
            scales_ok += fit is not None
            rows["metric_teacher"].append(absrel(metric, gts[i], area))
            if fit is not None:
                rows["relative_camera_height"].append(absrel(np.where(rel > 0, np.maximum(fit[0] * rel + fit[1], 1e-3), 0),
                                                             gts[i], area))
                rows["relative_camera_height_scale_only"].append(
                    absrel(rel * floor_scale(rel, floor, heights[i], shift=False)[0][0], gts[i], area))
            fit_t, _ = floor_scale(rel, floors[i], heights[i])
            if fit_t is not None:
                rows["relative_camera_height_true_floor"].append(
                    absrel(np.where(rel > 0, np.maximum(fit_t[0] * rel + fit_t[1], 1e-3), 0), gts[i], area))
            rows["relative_oracle_aligned"].append(absrel(_align_scale_shift(rel, gts[i], area), gts[i], area))
        report["teacher"] = {"spec": spec, "teacher_steps": args.teacher_steps, "images_with_floor_fit": scales_ok,
                             **{k: float(np.mean(v)) if v else None for k, v in rows.items()},
                             "median_per_image": {k: float(np.median(v)) if v else None for k, v in rows.items()}}
        t = report["teacher"]
        print(f"teacher labels AbsRel (area): metric teacher {t['metric_teacher']:.4f}; relative + camera height "
              f"{t['relative_camera_height']:.4f} (scale only {t['relative_camera_height_scale_only']:.4f}; {scales_ok}/{len(ds.stems)} images with a floor fit); "
              f"relative, oracle scale+shift {t['relative_oracle_aligned']:.4f}; with the true floor labels "
              f"{t['relative_camera_height_true_floor']:.4f}")
        print("  median per image:", {k: round(v, 4) for k, v in t["median_per_image"].items() if v is not None})
    if args.student_steps > 0:
        if spec is None:
            raise SystemExit("--student-steps needs a teacher (--teacher-steps > 0)")
        report["students"] = students(args, spec)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def _band_folder(src, out: Path, height: float, tol: float) -> Path:
    """A dataset folder (symlinks) of the scenes of ``src`` whose camera is within ``tol`` of ``height``."""
    from panoedge.data import write_meta

    for stem in src.stems:
        cam = json.loads((src.root / "cameras" / f"{stem}.json").read_text())
        if abs(-float(cam["position_m"][1]) - height) > tol:
            continue
        for m in ("rgb", "depth", "semantic"):
            f = src.files[m][stem]
            (out / m).mkdir(parents=True, exist_ok=True)
            (out / m / f.name).symlink_to(f)
    write_meta(out, src.classes, src.colors, f"{src.root} cameras at {height} +- {tol} m")
    return out


def students(args, teacher_spec: str) -> dict:
    """Three students on the same budget (see the module docstring); AbsRel on held-out scenes."""
    import shutil
    import tempfile

    from panoedge.data import DatasetFolder, resolve_data
    from panoedge.distill.config import resolve_config
    from panoedge.distill.trainer import distill
    from panoedge.eval.evaluate import evaluate, load_predictor

    tmp = Path(tempfile.mkdtemp(prefix="camh-"))
    train = _band_folder(resolve_data("synth:indoor?n=96&size=128x256&seed=4243"), tmp / "train",
                         args.camera_height, args.height_tol)
    held = _band_folder(resolve_data("synth:indoor?n=48&size=128x256&seed=9001"), tmp / "held",
                        args.camera_height, args.height_tol)
    folder = Path(teacher_spec.split(":", 1)[1])
    rel = tmp / "teacher_relative"
    shutil.copytree(folder, rel)
    meta = json.loads((rel / "teacher.json").read_text())
    (rel / "teacher.json").write_text(json.dumps({**meta, "depth_kind": "relative"}))
    base = dict(data=str(train), steps=args.student_steps, erp_hw=(64, 128), batch=4, generations=1, eval_data="")
    runs = {"metric_teacher": dict(teacher=teacher_spec),
            "relative_teacher_camera_height": dict(teacher=f"builtin:{rel}", camera_height_m=args.camera_height),
            "relative_teacher_ssi": dict(teacher=f"builtin:{rel}")}
    out = {"n_train": len(DatasetFolder(train)), "n_held_out": len(DatasetFolder(held)),
           "camera_height_m": args.camera_height, "height_tol_m": args.height_tol, "steps": args.student_steps}
    for name, kw in runs.items():
        res = distill(resolve_config(None, **base, **kw), tmp / name, progress=False)
        ev = evaluate(load_predictor(str(tmp / name)), DatasetFolder(held), progress=False).to_dict()
        out[name] = {"absrel_area": ev["absrel_area"], "depth_kind": ev["depth_kind"],
                     "depth_alignment": ev["depth_alignment"], "miou_area": ev["miou_area"],
                     "camera_height_stats": res.report.teacher_labels.get("camera_height")}
        print(f"student from {name}: AbsRel {ev['absrel_area']:.4f} ({ev['depth_kind']}, alignment "
              f"{ev['depth_alignment']}), mIoU {ev['miou_area']:.1f}", flush=True)
    return out


if __name__ == "__main__":
    main()
