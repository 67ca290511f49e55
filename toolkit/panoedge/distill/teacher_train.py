"""Train panoedge's own perspective teacher (``panoedge teacher train``) and measure its ERP gap.

The teacher is ``teacher-large`` (:mod:`panoedge.models.teacher_net`) trained on pinhole views,
the "source domain" real teachers come from. Data, by ``TeacherTrainConfig.data``:

* ``synth:FAMILY``: pinhole views rendered from synthetic worlds (random free camera, yaw,
  pitch, roll and horizontal FOV), cached as ``.npz`` shards under
  ``$PANOEDGE_HOME/persp/<content_key>/``. Training worlds have seeds ``seed * 100000 + i``;
  held-out worlds ``EVAL_SEED_BASE + seed * 1000 + j`` are never trained on.
* a dataset folder of ERP panoramas (CONVENTIONS.md, with ``rgb/``, ``depth/`` (range) and
  ``semantic/``): random pinhole crops cut with the remap of
  :func:`panoedge.geometry.erp_to_perspective` (labels and depth nearest-neighbour, depth
  turned from range into z-depth through the ray). The last tenth of the stems is held out.

Training: AdamW, linear warm-up then cosine decay (a pure function of the step), loss = cross
entropy on labels (ignore 255) + L1 on log depth over valid pixels. Batches and flips come from
``np.random.default_rng([seed, step])``, so a run resumed from ``out/ckpt.pt`` (model,
optimizer, step, torch RNG, written atomically every ``ckpt_every`` steps) ends with exactly
the weights of an uninterrupted run. At the end ``out/`` is a builtin teacher folder
(``load_teacher("builtin:" + out)``) plus ``ckpt.pt`` and ``report.json``.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from panoedge.progress import tqdm

from panoedge.distill.config import lr_at
from panoedge.distill.teacher_config import TeacherTrainConfig
from panoedge.distill.teacher_report import (  # noqa: F401  (REPORT_SCHEMA and read_teacher_report: re-exported)
    ERP_NOTE,
    REPORT_SCHEMA,
    TANGENT_NOTE,
    DistortionGap,
    ErpScores,
    PerspectiveScores,
    TangentScores,
    TeacherReport,
    TeacherScores,
    TeacherStopped,
    TeacherTrainStats,
    read_teacher_report,
)
from panoedge.errors import DataError, Interrupted, UsageError
from panoedge import metrics
from panoedge.home import atomic_write_bytes, cache_dir, content_key, write_json
from panoedge.signals import deferred_interrupt
from panoedge.synth.world import class_names

ARCH = "teacher-large"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EVAL_SEED_BASE = 900_000_000
VIEWS_PER_WORLD = 8
SHARD = 64
CKPT = "ckpt.pt"
LOSS_CURVE_POINTS = 50
"""About this many points of the loss curve go into the report (every ``len // 50``-th step, plus the last)."""


# --- data ----------------------------------------------------------------------------------

def _pose(rng: np.random.Generator, fov_range, pitch_deg: float) -> tuple[float, np.ndarray, tuple[float, float, float]]:
    from panoedge.geometry import rotation_from_ypr_deg

    fov = float(rng.uniform(*fov_range))
    ypr = (float(rng.uniform(-180, 180)), float(rng.uniform(-pitch_deg, pitch_deg)), float(rng.uniform(-5, 5)))
    return fov, rotation_from_ypr_deg(*ypr), ypr


def _synth_views(cfg: TeacherTrainConfig, seeds: list[int], n: int, tag: int) -> dict[str, np.ndarray]:
    from panoedge.synth.render import render_pinhole
    from panoedge.synth.world import make_world

    h, w = cfg.view_hw
    out = {"rgb": np.zeros((n, h, w, 3), np.uint8), "depth": np.zeros((n, h, w), np.float32),
           "labels": np.zeros((n, h, w), np.uint8)}
    for i in range(n):
        world = make_world(cfg.family, seeds[i % len(seeds)])
        rng = np.random.default_rng([cfg.seed, tag, i])
        pos = world.camera_positions(1, rng)[0]
        fov, R, _ = _pose(rng, cfg.fov_deg, cfg.pitch_deg)
        v = render_pinhole(world, h=h, w=w, fov_deg=fov, position=pos, R=R)
        out["rgb"][i], out["depth"][i], out["labels"][i] = v.rgb, v.depth, v.labels
    return out


def _folder(cfg: TeacherTrainConfig):
    from panoedge.data.folder import DatasetFolder

    path = Path(cfg.data)
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset folder (or use synth:{cfg.family})")
    ds = DatasetFolder(path)
    if not (ds.root / "rgb").is_dir() or not any((ds.root / "rgb").iterdir()):
        raise DataError(f"{path}: no panoramas in rgb/; a teacher needs rgb/, depth/ and semantic/")
    missing = [m for m in ("rgb", "depth", "semantic") if m not in ds.modalities]
    if missing:
        raise DataError(f"{path}: missing {', '.join(m + '/' for m in missing)}; a teacher needs rgb, depth and labels")
    if list(ds.classes) != list(class_names(cfg.family)):
        raise DataError(f"{path}/meta.json: classes {ds.classes} are not the {cfg.family} classes "
                        f"{list(class_names(cfg.family))}")
    if len(ds) < 2:
        raise DataError(f"{path}: {len(ds)} panorama(s); need at least 2 (one is held out)")
    n_eval = max(1, len(ds) // 10)
    return ds, ds.stems[:-n_eval], ds.stems[-n_eval:]


def _folder_views(cfg, ds, stems: list[str], n: int, tag: int) -> dict[str, np.ndarray]:
    from panoedge.geometry import PinholeCamera, erp_table_for_rays

    h, w = cfg.view_hw
    out = {"rgb": np.zeros((n, h, w, 3), np.uint8), "depth": np.zeros((n, h, w), np.float32),
           "labels": np.zeros((n, h, w), np.uint8)}
    for i in range(n):
        s = ds.load(stems[i % len(stems)], ["rgb", "depth", "semantic"])
        rng = np.random.default_rng([cfg.seed, tag, i])
        fov, R, _ = _pose(rng, cfg.fov_deg, cfg.pitch_deg)
        rays, _ = PinholeCamera.from_fov(h, w, fov).rays()
        table = erp_table_for_rays(s["rgb"].shape[:2], rays @ R.T)
        out["rgb"][i] = table.apply(s["rgb"])
        rng_m = table.apply(np.ascontiguousarray(s["depth"], np.float32), interpolation="nearest")
        out["depth"][i] = np.where(np.isfinite(rng_m) & (rng_m > 0), rng_m * rays[..., 2], 0.0)
        out["labels"][i] = table.apply(s["semantic"], interpolation="nearest", fill=255)
    return out


def _cached(key_parts, n: int, make, progress: bool, desc: str, workers: int = 1) -> dict[str, np.ndarray]:
    """Views ``make((start, count))`` cached in shards of ``SHARD`` under ``persp/<key>``.

    With ``workers > 1`` the missing shards are made in that many processes
    (:func:`panoedge.parallel.map_ordered`; ``make`` must then be picklable).
    """
    from panoedge.parallel import map_ordered

    folder = cache_dir("persp", content_key(*key_parts))
    starts = list(range(0, n, SHARD))
    path = {start: folder / f"{start // SHARD:05d}.npz" for start in starts}
    missing = [start for start in starts if not path[start].is_file()]
    bar = tqdm(total=len(starts), initial=len(starts) - len(missing), desc=desc, unit="shard", disable=not progress)
    for start, views in zip(missing, map_ordered(make, [(s, min(SHARD, n - s)) for s in missing], workers)):
        buf = io.BytesIO()
        np.savez(buf, **views)
        atomic_write_bytes(path[start], buf.getvalue())
        bar.update()
    bar.close()
    parts = []
    for start in starts:
        with np.load(path[start]) as z:
            parts.append({k: z[k] for k in ("rgb", "depth", "labels")})
    return {k: np.concatenate([p[k] for p in parts]) for k in ("rgb", "depth", "labels")}


def load_views(cfg: TeacherTrainConfig, split: str, progress: bool = False) -> dict[str, np.ndarray]:
    """Pinhole views ``{"rgb" (N, H, W, 3) uint8, "depth" (N, H, W) z-depth m, "labels" (N, H, W) uint8}``.

    ``split`` is ``"train"`` (``cfg.n_views`` views) or ``"eval"`` (``cfg.n_eval``, held-out worlds/stems).
    """
    cfg = cfg.validate()
    n, tag = (cfg.n_views, 0) if split == "train" else (cfg.n_eval, 1)
    keep = dict(family=cfg.family, data=cfg.data, view_hw=cfg.view_hw, fov_deg=cfg.fov_deg, seed=cfg.seed,
                pitch_deg=cfg.pitch_deg)
    if cfg.data.startswith("synth:"):
        if split == "train":
            seeds = [cfg.seed * 100_000 + i for i in range(max(1, math.ceil(n / VIEWS_PER_WORLD)))]
        else:
            seeds = [EVAL_SEED_BASE + cfg.seed * 1000 + j for j in range(n)]
        from functools import partial

        from panoedge.synth.dataset import render_workers

        return _cached(("synth/1", keep, split, n), n, partial(_synth_views_range, cfg, seeds, tag=tag),
                       progress, f"render {split} views", workers=render_workers(n, cfg.view_hw))
    ds, train, held = _folder(cfg)
    stems = train if split == "train" else held
    files = [(s, os.stat(ds.files["rgb"][s]).st_mtime_ns) for s in stems]
    return _cached(("folder/1", keep, str(ds.root.resolve()), files, split, n), n,
                   lambda shard: _slice_views(_folder_views, cfg, ds=ds, stems=stems, start=shard[0], count=shard[1],
                                              tag=tag),
                   progress, f"crop {split} views")


def _synth_views_range(cfg, seeds, shard: tuple[int, int], *, tag):
    start, count = shard
    full = [seeds[(start + i) // (VIEWS_PER_WORLD if tag == 0 else 1) % len(seeds)] for i in range(count)]
    views = {k: [] for k in ("rgb", "depth", "labels")}
    for i, s in enumerate(full):
        one = _synth_views(cfg, [s], 1, tag * 1_000_000 + start + i)
        for k in views:
            views[k].append(one[k][0])
    return {k: np.stack(v) for k, v in views.items()}


def _slice_views(fn, cfg, ds, stems, start, count, tag):
    order = [stems[(start + i) % len(stems)] for i in range(count)]
    views = {k: [] for k in ("rgb", "depth", "labels")}
    for i, stem in enumerate(order):
        one = fn(cfg, ds, [stem], 1, tag * 1_000_000 + start + i)
        for k in views:
            views[k].append(one[k][0])
    return {k: np.stack(v) for k, v in views.items()}


def _eval_panoramas(cfg: TeacherTrainConfig) -> list[dict[str, np.ndarray]]:
    """Held-out ERP panoramas ``{"rgb", "depth" (range), "labels"}`` at ``cfg.erp_hw``."""
    import cv2

    h, w = cfg.erp_hw
    out = []
    if cfg.data.startswith("synth:"):
        from panoedge.synth.render import render_erp
        from panoedge.synth.world import make_world

        for j in range(cfg.n_eval):
            world = make_world(cfg.family, EVAL_SEED_BASE + cfg.seed * 1000 + j)
            v = render_erp(world, h, w)
            out.append({"rgb": v.rgb, "depth": v.depth, "labels": v.labels})
        return out
    ds, _, held = _folder(cfg)
    for stem in held:
        s = ds.load(stem, ["rgb", "depth", "semantic"])
        out.append({"rgb": cv2.resize(s["rgb"], (w, h), interpolation=cv2.INTER_AREA),
                    "depth": cv2.resize(s["depth"].astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST),
                    "labels": cv2.resize(s["semantic"], (w, h), interpolation=cv2.INTER_NEAREST)})
    return out


# --- training ------------------------------------------------------------------------------

def _batch(cfg, views, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([cfg.seed, 7, step])
    idx = rng.integers(0, len(views["rgb"]), cfg.batch)
    flip = rng.random(cfg.batch) < 0.5
    rgb, depth, labels = views["rgb"][idx], views["depth"][idx], views["labels"][idx]
    rgb = np.where(flip[:, None, None, None], rgb[:, :, ::-1], rgb)
    depth = np.where(flip[:, None, None], depth[:, :, ::-1], depth)
    labels = np.where(flip[:, None, None], labels[:, :, ::-1], labels)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float() / 255.0
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(np.ascontiguousarray(depth)), torch.from_numpy(labels.astype(np.int64))


def _loss(cfg, model, x, depth, labels) -> tuple[torch.Tensor, float, float]:
    out = model(x)
    ce = F.cross_entropy(out["seg"], labels, ignore_index=255)
    valid = torch.isfinite(depth) & (depth > 0)
    lo, hi = model.config.min_depth_m, model.config.max_depth_m
    if valid.any():
        target = depth[valid].clamp(lo, hi).log()
        dl = (out["depth"][:, 0][valid].log() - target).abs().mean()
    else:
        dl = out["depth"].sum() * 0.0
    return ce + cfg.depth_weight * dl, float(ce.detach()), float(dl.detach())


def _save_ckpt(path: Path, cfg, model, opt, step: int, curve: list) -> None:
    buf = io.BytesIO()
    torch.save({"config": asdict(cfg), "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "curve": curve}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _norm_cfg(d: dict) -> dict:
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in d.items()}


def _resume_state(ckpt_path: Path, cfg: TeacherTrainConfig) -> dict:
    """The checkpoint to resume from: plain data only (``weights_only``; anything else is refused
    unexecuted) and written by this configuration."""
    from panoedge.models.checkpoint import load_plain

    state = load_plain(ckpt_path, "teacher-training checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise DataError(f"{ckpt_path}: not a teacher-training checkpoint (no config)")
    if _norm_cfg(state["config"]) != _norm_cfg(asdict(cfg)):
        raise UsageError(f"{ckpt_path} was written by another configuration; use another --out or no resume")
    return state


def _start(cfg: TeacherTrainConfig, state: dict | None, n_classes: int):
    """``(model, optimiser, step, curve)``: a fresh network, or the checkpoint ``state``'s."""
    from panoedge.models.teacher_net import create_teacher_net

    torch.manual_seed(cfg.seed)
    model = create_teacher_net(ARCH, n_classes, width_mult=cfg.width_mult, max_depth_m=cfg.max_depth_m)
    model = model.to(memory_format=torch.channels_last)  # oneDNN's convolutions run faster so on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is None:
        return model, opt, 0, []
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return model, opt, int(state["step"]), list(state["curve"])


def _loop(cfg: TeacherTrainConfig, model, opt, views, *, ckpt_path: Path, start: int, end: int, curve: list,
          progress: bool) -> float | None:
    """Steps ``start..end-1`` (appending to ``curve``), checkpoints every ``ckpt_every``; a signal saves
    and raises :class:`Interrupted`. Returns seconds per step (``None`` when no step ran)."""
    model.train()
    t0, t_steps = time.perf_counter(), 0
    bar = tqdm(range(start, end), desc="teacher train", unit="step", initial=start, total=end, disable=not progress)
    with deferred_interrupt() as stop:
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            x, depth, labels = _batch(cfg, views, step)
            loss, ce, dl = _loss(cfg, model, x=x, depth=depth, labels=labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t_steps += 1
            curve.append([step + 1, round(float(loss.detach()), 5), round(ce, 5), round(dl, 5)])
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", ce=f"{ce:.3f}", depth=f"{dl:.3f}")
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
                _save_ckpt(ckpt_path, cfg, model=model, opt=opt, step=step + 1, curve=curve)
            if stop.requested and step + 1 < end:
                _save_ckpt(ckpt_path, cfg, model=model, opt=opt, step=step + 1, curve=curve)
                raise Interrupted(f"{stop.name} at step {step + 1} of {cfg.steps}: checkpoint saved to {ckpt_path}; "
                                  f"run the same command again (same --out and options) to resume from there")
    return (time.perf_counter() - t0) / t_steps if t_steps else None


def train_teacher(cfg: TeacherTrainConfig, out_dir: str | Path, progress: bool = True, resume: bool = True,
                  stop_at: int | None = None) -> TeacherReport | TeacherStopped:
    """Train the teacher of ``cfg`` into ``out_dir`` and evaluate it; returns the :class:`TeacherReport`.

    ``resume`` continues from ``out_dir/ckpt.pt`` when its config matches ``cfg`` (a different
    config is a ``UsageError``; ``resume=False`` starts over). ``stop_at`` ends the call after
    that many steps in all, with a checkpoint and no teacher folder (returns a :class:`TeacherStopped`).
    """
    from panoedge.env import machine_info

    cfg = cfg.validate()
    out = Path(out_dir)
    ckpt_path = out / CKPT
    if out.exists() and any(out.iterdir()) and not ckpt_path.is_file():
        raise UsageError(f"{out} exists and holds no {CKPT}; choose an empty or new folder")
    classes = class_names(cfg.family)
    state = _resume_state(ckpt_path, cfg) if resume and ckpt_path.is_file() else None  # refused before any work
    train_views = load_views(cfg, "train", progress)
    model, opt, step, curve = _start(cfg, state, len(classes))
    end = cfg.steps if stop_at is None else min(cfg.steps, int(stop_at))
    s_per_step = _loop(cfg, model, opt, train_views, ckpt_path=ckpt_path, start=step, end=end, curve=curve,
                       progress=progress)
    if end < cfg.steps:
        return TeacherStopped(stopped_at=end, s_per_step=s_per_step, curve=curve)
    if not ckpt_path.is_file():
        _save_ckpt(ckpt_path, cfg, model=model, opt=opt, step=end, curve=curve)
    _write_teacher(out, model, classes, cfg)
    train = TeacherTrainStats(steps=cfg.steps, s_per_step_this_run=s_per_step, threads=torch.get_num_threads(),
                              loss_curve=curve[:: max(1, len(curve) // LOSS_CURVE_POINTS)] + curve[-1:])
    scores = evaluate_teacher(cfg, "builtin:" + str(out), progress)
    report = TeacherReport(machine=machine_info(backends_used=["torch"]), config=cfg, arch=ARCH,
                           params=sum(p.numel() for p in model.parameters()), train=train,
                           perspective=scores.perspective, erp=scores.erp, tangent=scores.tangent, gap=scores.gap,
                           out=out)
    write_json(out / "report.json", report.to_dict())
    return report


def _write_teacher(out: Path, model, classes, cfg) -> None:
    """Write teacher.pt/teacher.json into ``out`` beside ckpt.pt (each file moved into place)."""
    from panoedge.models.teachers import save_teacher_folder

    stage = out.with_name(f".{out.name}.teacher")
    shutil.rmtree(stage, ignore_errors=True)
    model.eval()
    save_teacher_folder(stage, model, classes=classes, input_hw=cfg.view_hw, mean=MEAN, std=STD,
                        arch_options={"width_mult": cfg.width_mult, "max_depth_m": cfg.max_depth_m})
    for f in sorted(stage.iterdir()):
        os.replace(f, out / f.name)
    shutil.rmtree(stage, ignore_errors=True)


# --- evaluation ----------------------------------------------------------------------------

def _predict(teacher, rgb: np.ndarray, batch: int = 4, tangent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and depth of ``teacher`` on ``rgb`` ``(N, H, W, 3)``: directly, or with ``tangent``
    through its default tangent layout, fused to ERP."""
    from panoedge.distill.tangent import tangent_predict

    labels, depth = [], []
    for i in range(0, len(rgb), batch):
        x = torch.from_numpy(np.ascontiguousarray(rgb[i:i + batch])).permute(0, 3, 1, 2).float() / 255.0
        o = tangent_predict(teacher, x) if tangent else teacher.predict(x)
        labels.append(o.probs.argmax(1).numpy().astype(np.uint8))
        depth.append(o.depth[:, 0].numpy())
    return np.concatenate(labels), np.concatenate(depth)


def _scores(pred_l, gt_l, pred_d, gt_d, k: int, classes, weights=None) -> dict:
    cm = metrics.confusion_matrix(pred_l, gt_l, k, weights)
    iou = metrics.per_class_iou(cm)
    d = metrics.depth_metrics(pred_d, gt_d, weights)
    return {"miou": 100.0 * metrics.mean_iou(cm),
            "per_class_iou": {c: (None if np.isnan(v) else 100.0 * float(v)) for c, v in zip(classes, iou)}, **d}


def evaluate_teacher(cfg: TeacherTrainConfig, spec: str, progress: bool = False) -> TeacherScores:
    """:class:`TeacherScores` of teacher ``spec`` on ``cfg``'s held-out views and panoramas.

    Perspective: mIoU (percent), per-class IoU, AbsRel/RMSE/delta1 on z-depth. ERP: the same
    teacher on whole held-out panoramas; ``miou_area``/``absrel_area`` weighted by
    :func:`panoedge.geometry.erp_area_weights` beside plain ``miou``/``absrel`` (see ``ERP_NOTE``).
    """
    from panoedge.geometry import erp_area_weights
    from panoedge.models.teachers import load_teacher

    cfg = cfg.validate()
    teacher = load_teacher(spec)
    classes = class_names(cfg.family)
    k = len(classes)
    views = load_views(cfg, "eval", progress)
    pl, pd = _predict(teacher, views["rgb"])
    persp = PerspectiveScores(**_scores(pl, views["labels"], pred_d=pd, gt_d=views["depth"], k=k, classes=classes),
                              n_images=len(pl), size=list(cfg.view_hw))
    panos = _eval_panoramas(cfg)
    rgb = np.stack([p["rgb"] for p in panos])
    gl, gd = np.stack([p["labels"] for p in panos]), np.stack([p["depth"] for p in panos])
    el, ed = _predict(teacher, rgb)
    h, w = rgb.shape[1:3]
    wts = np.broadcast_to(erp_area_weights(h, w), gl.shape)
    area = _scores(el, gl, pred_d=ed, gt_d=gd, k=k, classes=classes, weights=wts)
    plain = _scores(el, gl, pred_d=ed, gt_d=gd, k=k, classes=classes)
    erp = ErpScores(miou_area=area["miou"], miou=plain["miou"], per_class_iou=area["per_class_iou"],
                    per_class_iou_plain=plain["per_class_iou"], absrel_area=area["absrel"], absrel=plain["absrel"],
                    rmse_area=area["rmse"], rmse=plain["rmse"], delta1_area=area["delta1"], delta1=plain["delta1"],
                    n_images=len(panos), size=[h, w])
    tl, td = _predict(teacher, rgb, batch=2, tangent=True)
    tarea = _scores(tl, gl, pred_d=td, gt_d=gd, k=k, classes=classes, weights=wts)
    tangent = TangentScores(miou_area=tarea["miou"], miou=_scores(tl, gl, pred_d=td, gt_d=gd, k=k, classes=classes)["miou"],
                            per_class_iou=tarea["per_class_iou"], absrel_area=tarea["absrel"],
                            rmse_area=tarea["rmse"], delta1_area=tarea["delta1"], n_images=len(panos), size=[h, w])
    gap = DistortionGap(miou_points=persp.miou - erp.miou_area,
                        absrel_ratio=erp.absrel_area / persp.absrel if persp.absrel else None,
                        tangent_over_erp_miou_points=tangent.miou_area - erp.miou_area)
    return TeacherScores(perspective=persp, erp=erp, tangent=tangent, gap=gap)

