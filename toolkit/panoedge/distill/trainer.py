"""The distillation loop: generations of self-training of an ERP student on teacher pseudo labels.

``distill(cfg, out)`` runs as one process or as one rank of ``torchrun``:

1. Checks before any training: the data (readable ERP images with ``W == 2H``), the teacher's
   classes against the student's (inside :func:`panoedge.distill.pseudo.build_pseudo_labels`) and
   the run folder. Rank 0 writes ``config.json`` (the resolved config; ``teacher`` = the spec used).
2. Pseudo labels on tangent patches, built sharded across ranks into the shared cache, then a
   barrier (:func:`load_training_set`); the teacher's labels are then checked against the floor
   and ceiling planes of its own depth and class-balanced (:func:`refine_teacher_labels`). Label-free mode (``n_clusters > 0``): clusters of teacher
   features instead of classes (:mod:`panoedge.distill.cluster`).
3. ``cfg.generations`` generations of ``steps / generations`` steps. Generation 0 trains on the
   teacher's labels; each later one starts from labels refined with the EMA student
   (:func:`next_labels`: RLCC ensembling, BiSMAP vetting, re-clustering), saved to
   ``labels/genNNN.pt`` so a resumed run trains on exactly the same labels. With none of those
   on (the default), every generation keeps generation 0's labels and no pass is run
   (:func:`relabels`); the schedule is global, so the split into generations changes nothing.
4. Each step (:func:`make_batch`, :func:`step_loss`): a global batch drawn by
   ``np.random.default_rng([seed, 11, step])`` (rank ``r`` takes rows ``r::world``), a random yaw
   (a circular roll, exact on ERP) and mirror, the enabled losses, AdamW with warm-up and cosine
   decay, an EMA copy. ``torch.autocast`` on CUDA (bf16, or fp16 with a GradScaler); bf16 on
   the CPU only when ``amp="bf16"``.
5. ``ckpt.pt`` every ``ckpt_every`` steps (model, EMA, optimiser, scaler, step, generation, RNG
   states; atomic): a rerun resumes from it and ends with bit-identical weights. ``log.csv``
   and, when ``tensorboard`` is importable, ``tb/`` (:class:`RunLog`). Rank 0 finally writes
   ``student.pt`` (EMA weights, :func:`panoedge.models.save_student`) and ``report.json``.

Under DDP (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from ``torchrun``) the process group is ``nccl``
on CUDA and ``gloo`` on CPU; DDP averages gradients, and batch-norm buffers are broadcast from
rank 0 before saving, so every rank ends with identical weights.
"""

from __future__ import annotations

import copy
import io
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from panoedge.distill import balance, bismap, cluster, planes, rlcc
from panoedge.distill.config import DistillConfig, load_run_config, lr_at, write_config
from panoedge.distill.consistency import consistency_loss, random_transforms
from panoedge.distill.depthg import depthg_loss
from panoedge.distill.losses import depth_loss, pixel_weights, soft_ce
from panoedge.distill.pixl import downsample_labels, pixl_loss
from panoedge.errors import DataError, Interrupted, UsageError
from panoedge.home import atomic_write_bytes, write_json
from panoedge.models.checkpoint import load_plain
from panoedge.signals import deferred_interrupt

CKPT, LABELS, CONFIG, STUDENT, REPORT, LOG = "ckpt.pt", "labels", "config.json", "student.pt", "report.json", "log.csv"
REPORT_SCHEMA = "panoedge.distill_report/1"
NON_SEMANTIC = ("ckpt_every", "log_every", "eval_data", "eval_n", "device")
LOG_KEYS = ("loss", "seg", "depth", "pixl", "depthg", "cons")


@dataclass
class DistillResult:
    """What :func:`distill` returns: the EMA ``student`` (eval mode; ``None`` when stopped early),
    the ``report`` dict and the run folder ``out``."""

    student: torch.nn.Module | None
    report: dict
    out: Path


# --- distributed ---------------------------------------------------------------------------

def dist_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the ``torchrun`` environment (``(0, 1, 0)`` without)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by ``torchrun``; returns ``(rank, world_size)``."""
    import torch.distributed as dist

    rank, world, _ = dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


def barrier(world: int) -> None:
    """All ranks wait here (no-op for one process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{dist_info()[2]}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r}: CUDA is not available on this machine")
    return dev


# --- training set and batches --------------------------------------------------------------

@dataclass
class TrainingSet:
    """Panoramas and their labels in memory, at ``cfg.erp_hw``.

    ``rgb`` ``(N, 3, H, W)`` uint8; ``base``/``base_w`` the teacher's soft labels ``(N, K, H, W)``
    (renormalised, float16) and pixel weights ``(N, H, W)`` (the mass the class map kept);
    ``probs``/``weight`` the current generation's labels; ``depth`` ``(N, H, W)`` pseudo range
    (``None`` without a depth teacher); ``gt`` ground-truth ids for diagnostics only (never trained on).
    """

    stems: list[str]
    rgb: torch.Tensor
    base: torch.Tensor
    base_w: torch.Tensor
    depth: torch.Tensor | None
    depth_kind: str | None
    classes: list[str]
    colors: list | None
    family: str | None
    gt: torch.Tensor | None = None
    label_free: bool = False
    label_stats: dict = field(default_factory=dict)
    generation: int = 0
    probs: torch.Tensor = field(init=False)
    weight: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.probs, self.weight = self.base, self.base_w


def _read_erp(data, stem: str, hw) -> np.ndarray:
    import cv2

    rgb = data.load(stem, ["rgb"]).get("rgb")
    if rgb is None:
        raise DataError(f"{data.root}: no rgb image for {stem!r}")
    h, w = rgb.shape[:2]
    if w != 2 * h:
        raise UsageError(f"{data.files['rgb'][stem]}: {w}x{h} is not an equirectangular panorama (width must be 2 x height)")
    return cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if hw[0] < h else cv2.INTER_LINEAR)


def load_training_set(cfg: DistillConfig, rank: int = 0, world: int = 1, progress: bool = True,
                      device: torch.device | str = "cpu") -> TrainingSet:
    """Read every panorama (checking each), build/reuse the pseudo labels (sharded), load them."""
    import cv2

    from panoedge.data import resolve_data
    from panoedge.distill.pseudo import PseudoLabelSpec, build_pseudo_labels

    def resolve():
        return resolve_data(cfg.data, progress, rig=cfg.rig, every=cfg.every, n=cfg.synth_n, size=tuple(cfg.synth_hw))

    data = resolve() if rank == 0 else None  # rank 0 renders synthetic data once; the others find it cached
    barrier(world)
    data = data or resolve()
    stems = data.stems
    if len(stems) < 1:
        raise DataError(f"{data.root}: no panoramas")
    if cfg.n_clusters and cfg.class_map:
        raise UsageError("--clusters and --class-map exclude each other: the label-free mode makes its own classes")
    rgb = np.stack([_read_erp(data, s, cfg.erp_hw) for s in stems])
    extra = {k: v for k, v in (("n_patches", cfg.n_patches), ("fov_deg", cfg.fov_deg), ("patch_hw", cfg.patch_hw)) if v}
    spec = PseudoLabelSpec(teacher=cfg.teacher, erp_hw=tuple(cfg.erp_hw), class_map=cfg.class_map,
                           source_hw=None if cfg.pseudo_hw is None else tuple(cfg.pseudo_hw),
                           fusion=cfg.pseudo_fusion, **extra)
    teacher = None
    if cfg.n_clusters or (data.classes is None and cfg.class_map is None):
        from panoedge.models.teachers import load_teacher

        teacher = load_teacher(cfg.teacher, str(device))
    cluster_on = None
    if cfg.n_clusters:
        cluster_on = cluster.feature_source(teacher, spec.layout(teacher.input_hw))  # before the pseudo-label pass
        classes = [f"cluster{i:02d}" for i in range(cfg.n_clusters)]
        pls_classes = list(teacher.classes) if teacher.classes else classes
    else:
        classes = student_classes(data, cfg.class_map, teacher)
        pls_classes = classes
    pls = build_pseudo_labels(data, cfg.teacher, spec, pls_classes, rank, world, progress, device=str(device))
    barrier(world)
    if not pls.complete:
        pls = build_pseudo_labels(data, cfg.teacher, spec, pls_classes, 0, 1, False, device=str(device))
    loaded = [pls.load(s) for s in stems]
    h, w = cfg.erp_hw
    depth = torch.from_numpy(np.stack([x["depth"] for x in loaded])) if loaded[0]["depth"] is not None else None
    depth_kind = pls.depth_kind
    if cfg.n_clusters:
        base = _cluster_labels(cfg, teacher, spec, rgb, device, cluster_on)
        mass = torch.ones(len(stems), h, w)
        label_stats = {"clusters_of": cluster_on}
    else:
        if loaded[0]["probs"] is None:
            raise UsageError(f"teacher {cfg.teacher} gives no classes; use the label-free mode (--clusters N)")
        probs = torch.from_numpy(np.stack([x["probs"] for x in loaded]))
        mass = probs.sum(1)
        base, label_stats = refine_teacher_labels(probs / mass.clamp_min(1e-6)[:, None], mass, depth, classes, cfg)
    if cfg.camera_height_m > 0:
        from panoedge.distill.camera_height import metric_from_camera_height

        if depth is None:
            raise UsageError("--camera-height scales a relative depth teacher's depth: this teacher gives no depth")
        if depth_kind == "relative":
            depth, label_stats["camera_height"] = metric_from_camera_height(depth, base, classes, cfg.camera_height_m)
            depth_kind = "metric"
        else:
            label_stats["camera_height"] = "not used: the teacher's depth is already metric"
    gt = None
    if all(s in data.files["semantic"] for s in stems):
        gt = torch.from_numpy(np.stack([cv2.resize(data.load(s, ["semantic"])["semantic"], (w, h),
                                                   interpolation=cv2.INTER_NEAREST) for s in stems]))
    colors, family = _colors_family(data, classes, cfg)
    return TrainingSet(list(stems), torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), base.half(),
                       mass.clamp(0, 1).half(), depth, depth_kind, classes, colors, family, gt,
                       label_free=bool(cfg.n_clusters), label_stats=label_stats)


def student_classes(data, class_map: str | None, teacher) -> list[str]:
    """The student's classes: the dataset's (``meta.json``), else the class map's targets, else
    the teacher's own; a teacher without classes and nothing else is a ``UsageError``."""
    if data.classes is not None:
        return list(data.classes)
    if class_map is not None:
        from panoedge.data.classmap import map_target_classes

        return list(map_target_classes(class_map))
    if teacher is None or teacher.classes is None:
        raise UsageError(f"{data.root} names no classes and teacher {getattr(teacher, 'name', '?')} has none: "
                         "give --class-map NAME|FILE or --clusters N")
    return list(teacher.classes)


def _colors_family(data, classes, cfg) -> tuple[list | None, str | None]:
    """Display colours and class family of the student: the dataset's, else the synthetic world's
    family whose class list the classes are (as from a shipped ``*_to_indoor`` map), else none."""
    if cfg.n_clusters:
        return None, data.meta.get("family")
    if data.classes is not None:
        return data.colors.tolist(), data.meta.get("family")
    from panoedge.synth.world import FAMILIES, class_colors, class_names

    fam = next((f for f in FAMILIES if list(class_names(f)) == list(classes)), None)
    return (class_colors(fam).tolist() if fam else None), fam


def refine_teacher_labels(base: torch.Tensor, mass: torch.Tensor, depth: torch.Tensor | None, classes,
                          cfg: DistillConfig):
    """Generation-0 labels from the teacher's: the plane check (``cfg.planes``, with the pseudo
    labels' depth ``(N, H, W)``, if any), class balancing (``cfg.balance``), then sharpening when
    ``cfg.label_temperature != 1``; returns ``(labels, stats)``."""
    from panoedge.geometry.torch_ops import erp_area_weights

    stats: dict = {}
    if cfg.planes and depth is not None:
        base, stats["planes"] = planes.refine_planes(base, depth, classes, cfg.planes_conf, cfg.planes_tol,
                                                     cfg.planes_sigma)
    if cfg.balance and cfg.balance_tau > 0:
        h, w = base.shape[-2:]
        prior = balance.class_prior(base, mass.clamp(0, 1), erp_area_weights(h, w).expand(h, w))
        base = balance.balance_labels(base, prior, cfg.balance_tau)
        stats["balance_prior"] = [float(v) for v in prior]
    if cfg.label_temperature != 1.0:
        base = balance.sharpen(base, cfg.label_temperature)
    return base, stats


def _cluster_labels(cfg, teacher, spec, rgb: np.ndarray, device, source: str = "features") -> torch.Tensor:
    """Generation-0 label-free labels: k-means of the teacher's ERP features (or, for a teacher
    without features, its class probabilities) ``(N, k, H, W)``."""
    from panoedge.geometry.torch_ops import erp_area_weights

    layout = spec.layout(teacher.input_hw)
    feats = [cluster.teacher_erp_features(teacher, torch.from_numpy(r).permute(2, 0, 1)[None].float().to(device) / 255,
                                          layout, source)[0].cpu() for r in rgb]
    h, w = rgb.shape[1:3]
    area = erp_area_weights(h, w).expand(h, w)
    centres = cluster.fit_clusters(feats, cfg.n_clusters, area, seed=cfg.seed)
    return torch.stack([cluster.soft_assign(f, centres) for f in feats])


@torch.no_grad()
def init_heads(model, ts: TrainingSet) -> None:
    """Start the output biases at the data: the segmentation bias at the log of the pseudo labels'
    (area-weighted) class frequencies, the depth bias at the median pseudo range (metric teachers),
    so a short budget is not spent walking the outputs from their arbitrary initial values."""
    from panoedge.geometry.torch_ops import erp_area_weights

    heads = getattr(model, "heads", {})
    h, w = ts.base.shape[-2:]
    area = erp_area_weights(h, w).expand(h, w)
    if "seg" in heads:
        freq = (ts.base.float() * (ts.base_w.float() * area)[:, None]).sum((0, 2, 3))
        heads["seg"].out.bias.copy_(torch.log(freq / freq.sum() + 1e-4))
    if "depth" in heads and ts.depth is not None and ts.depth_kind == "metric":
        valid = ts.depth[torch.isfinite(ts.depth) & (ts.depth > 0)]
        if valid.numel():
            lo, hi = model.config.min_depth_m, model.config.max_depth_m
            p = float(((valid.median() - lo) / (hi - lo)).clamp(1e-3, 1 - 1e-3))
            heads["depth"].out.bias.fill_(math.log(p / (1 - p)))


def _normalise(x: torch.Tensor, cfg_model) -> torch.Tensor:
    mean = torch.tensor(cfg_model.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg_model.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def make_batch(ts: TrainingSet, cfg: DistillConfig, step: int, rank: int, world: int, model_cfg, device) -> dict:
    """This rank's share of step ``step``'s batch: ``x`` (normalised), ``probs``, ``weight``, ``depth``."""
    rng = np.random.default_rng([cfg.seed, 11, step])
    n, w = len(ts.stems), ts.rgb.shape[-1]
    idx, shift, flip = rng.integers(0, n, cfg.batch), rng.integers(0, w, cfg.batch), rng.random(cfg.batch) < 0.5
    idx, shift, flip = idx[rank::world], shift[rank::world], flip[rank::world]
    cols = []
    for s, f in zip(shift, flip):
        c = (torch.arange(w) - int(s)) % w if cfg.augment else torch.arange(w)
        cols.append(c.flip(0) if (f and cfg.augment) else c)

    def take(t):
        return None if t is None else torch.stack([t[i][..., c] for i, c in zip(idx, cols)]).to(device)

    x = take(ts.rgb).float() / 255.0
    return {"x": _normalise(x, model_cfg), "probs": take(ts.probs).float(), "weight": take(ts.weight).float(),
            "depth": take(ts.depth), "step": step, "rank": rank}


def _masked_pool(depth: torch.Tensor, size) -> torch.Tensor:
    ok = (torch.isfinite(depth) & (depth > 0)).float()[:, None]
    num = F.adaptive_avg_pool2d(torch.nan_to_num(depth)[:, None] * ok, size)
    den = F.adaptive_avg_pool2d(ok, size)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))[:, 0]


def step_loss(net, model, batch: dict, cfg: DistillConfig, depth_kind: str | None) -> tuple[torch.Tensor, dict]:
    """Forward ``net`` on the batch (plus sphere-transformed copies for consistency); the total loss and its parts."""
    x, area = batch["x"], cfg.area_weighted
    b = len(x)
    n_c = max(1, math.ceil(cfg.cons_frac * b)) if cfg.consistency and cfg.cons_weight > 0 and cfg.cons_frac > 0 else 0
    T = None
    if n_c:
        gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + batch["step"] * 97 + batch["rank"])
        T = random_transforms(n_c, cfg.cons_tilt_deg, cfg.cons_zoom, gen, x.device)
        x = torch.cat([x, T(x[:n_c])])
    need_feats = (cfg.pixl and cfg.pixl_weight > 0) or (cfg.depthg and cfg.depthg_weight > 0 and batch["depth"] is not None)
    store = {}
    hook = model.decoder.register_forward_hook(lambda m, i, o: store.__setitem__("f", o)) if need_feats else None
    try:
        out = net(x)
    finally:
        if hook is not None:
            hook.remove()
    main = {k: v[:b] for k, v in out.items()}
    parts = {"seg": soft_ce(main["seg"], batch["probs"], batch["weight"], area)}
    if batch["depth"] is not None and cfg.depth_weight > 0:
        parts["depth"] = cfg.depth_weight * depth_loss(cfg.depth_loss, main["depth"], batch["depth"], None, area, depth_kind or "metric")
    if need_feats:
        f = store["f"][:b]
        size = tuple(f.shape[-2:])
        if cfg.pixl and cfg.pixl_weight > 0:
            sp = F.adaptive_avg_pool2d(torch.softmax(main["seg"].detach().float(), 1), size)
            _, lab, w4 = downsample_labels(batch["probs"], batch["weight"], size)
            parts["pixl"] = cfg.pixl_weight * pixl_loss(f, sp, lab, cfg.pixl_drift, cfg.pixl_tau, area, w4)
        if cfg.depthg and cfg.depthg_weight > 0 and batch["depth"] is not None:
            d4 = _masked_pool(batch["depth"].float(), size)
            parts["depthg"] = cfg.depthg_weight * depthg_loss(f, d4, cfg.depthg_points, area, relative=depth_kind != "metric")
    if T is not None:
        parts["cons"] = cfg.cons_weight * consistency_loss({k: v[b:] for k, v in out.items()},
                                                           {k: v[:n_c] for k, v in main.items()}, T, area)
    total = sum(parts.values())
    return total, {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}


# --- generations ---------------------------------------------------------------------------

@torch.no_grad()
def _predict_set(ema, ts: TrainingSet, device, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """EMA student on every training panorama: probabilities ``(N, K, H, W)`` f16, features ``(N, C, h, w)``."""
    store, probs, feats = {}, [], []
    hook = ema.decoder.register_forward_hook(lambda m, i, o: store.__setitem__("f", o))
    try:
        for s in range(0, len(ts.stems), batch):
            x = _normalise(ts.rgb[s:s + batch].to(device).float() / 255.0, ema.config)
            # the per-conv path calls the decoder module (so the hook sees its features); in eval mode
            # it equals the DLA-friendly one-wrap-per-stage forward to float rounding
            probs.append(torch.softmax(ema.forward_per_conv(x)["seg"].float(), 1).half().cpu())
            feats.append(store["f"].float().cpu())
    finally:
        hook.remove()
    return torch.cat(probs), torch.cat(feats)


def _label_miou(probs: torch.Tensor, ts: TrainingSet) -> float | None:
    """Area-weighted mIoU (percent) of labels against ground truth: a diagnostic, never trained on."""
    if ts.gt is None or ts.label_free:
        return None
    from panoedge import metrics
    from panoedge.geometry import erp_area_weights

    h, w = ts.gt.shape[-2:]
    wts = np.broadcast_to(erp_area_weights(h, w), ts.gt.shape)
    return 100.0 * metrics.miou(probs.argmax(1).numpy(), ts.gt.numpy(), len(ts.classes), wts)


def next_labels(ts: TrainingSet, g: int, ema, cfg: DistillConfig, device) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Generation ``g``'s labels ``(probs, weight, stats)`` from the EMA student and the current labels.

    Fresh labels: the EMA student's predictions (RLCC on) or the teacher's labels (off); in the
    label-free mode a re-clustering of the student's features, matched to the previous ids.
    RLCC ensembles them with the current labels; BiSMAP then accepts, relabels or rejects pixels.
    """
    from panoedge.geometry.torch_ops import erp_area_weights

    ema.eval()
    sp, feats = _predict_set(ema, ts, device)
    h, w = ts.probs.shape[-2:]
    area = erp_area_weights(h, w).expand(h, w)
    weight = ts.base_w.clone()
    stats: dict = {"generation": g}
    if cfg.n_clusters:
        up = [F.interpolate(f[None], size=(h, w), mode="bilinear", align_corners=False)[0] for f in feats]
        centres = cluster.fit_clusters(up, cfg.n_clusters, area, seed=cfg.seed + g)
        fresh = [cluster.soft_assign(f, centres) for f in up]
        new = torch.stack(cluster.stable_relabel(fresh, list(ts.probs.float()), cfg.n_clusters, area,
                                                 cfg.rlcc_momentum if cfg.rlcc else 1.0))
    elif cfg.rlcc:
        new = torch.stack([rlcc.ensemble(s.float(), p.float(), cfg.rlcc_momentum) for s, p in zip(sp, ts.probs)])
    else:
        new = ts.base.float()
    if cfg.bismap:
        new, weight, stats["bismap"] = _bismap(new, weight, sp, feats, area, cfg, g)
    stats["changed_vs_teacher"] = float((new.argmax(1) != ts.base.argmax(1)).float().mean())
    stats["diag_label_miou_area"] = _label_miou(new, ts)
    stats["diag_teacher_label_miou_area"] = _label_miou(ts.base.float(), ts)
    return new.half(), weight.half(), stats


def _bismap(new, weight, sp, feats, area, cfg, g) -> tuple[torch.Tensor, torch.Tensor, dict]:
    h, w = new.shape[-2:]
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + g)
    xs, ys, ws = [], [], []
    for i in range(len(new)):
        f = F.interpolate(feats[i][None], size=(h, w), mode="bilinear", align_corners=False)[0].reshape(feats.shape[1], -1)
        lab = new[i].argmax(0).reshape(-1)
        ok = ((new[i].max(0).values >= cfg.bismap_conf) & (sp[i].argmax(0) == new[i].argmax(0)) & (weight[i] > 0)).reshape(-1)
        sel = torch.nonzero(ok).flatten()
        if len(sel) > 2048:
            sel = sel[torch.multinomial(area.reshape(-1)[sel], 2048, replacement=False, generator=gen)]
        xs.append(f[:, sel].t())
        ys.append(lab[sel])
        ws.append(area.reshape(-1)[sel])
    model = bismap.fit_class_gmms(torch.cat(xs), torch.cat(ys), torch.cat(ws), new.shape[1], cfg.bismap_components,
                                  cfg.bismap_quantile, gen=gen)
    counts = torch.zeros(3, dtype=torch.float64)
    out_p, out_w = new.clone(), weight.clone().float()
    for i in range(len(new)):
        f = F.interpolate(feats[i][None], size=(h, w), mode="bilinear", align_corners=False)[0]
        out_p[i], out_w[i], act = bismap.refine(new[i], weight[i].float(), f, model)
        for a in range(3):
            counts[a] += float((area * (act == a)).sum())
    frac = (counts / counts.sum().clamp_min(1e-12)).tolist()
    return out_p, out_w, {"accept": frac[0], "relabel": frac[1], "reject": frac[2],
                          "classes_fitted": sum(m is not None for m in model.gmms)}


def relabels(cfg: DistillConfig) -> bool:
    """Whether later generations get new labels (RLCC, BiSMAP or the label-free re-clustering)."""
    return bool(cfg.n_clusters or cfg.rlcc or cfg.bismap)


def advance(ts: TrainingSet, g: int, ema, cfg: DistillConfig, folder: Path, rank: int, world: int, device) -> dict:
    """Switch ``ts`` to generation ``g`` (labels in ``folder/genNNN.pt``, one file per generation).

    An existing file is loaded; otherwise rank 0 computes it from the previous generation's
    labels (loaded from disk first when a resumed run starts at this boundary), saves it
    atomically, and every rank loads it after a barrier. Returns the generation's stats.
    """
    if not relabels(cfg):  # every generation trains on the teacher's labels: nothing to compute or store
        ts.probs, ts.weight, ts.generation = ts.base, ts.base_w, g
        return {"generation": g, "labels": "the teacher's (rlcc, bismap and the label-free mode are off)"}

    def path(i: int) -> Path:
        return folder / f"gen{i:03d}.pt"

    def load(i: int) -> dict:
        state = load_plain(path(i), "label shard")
        ts.probs, ts.weight, ts.generation = state["probs"], state["weight"], i
        return state["stats"]

    barrier(world)  # nobody is writing now: every rank sees the same files
    if not path(g).is_file():
        if ts.generation != g - 1 and g - 1 > 0:
            load(g - 1)
        if rank == 0:
            probs, weight, stats = next_labels(ts, g, ema, cfg, device)
            buf = io.BytesIO()
            torch.save({"generation": g, "probs": probs, "weight": weight, "stats": stats}, buf)
            atomic_write_bytes(path(g), buf.getvalue())
        barrier(world)
    return load(g)


# --- schedule, EMA, checkpoints, logs ------------------------------------------------------

@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """``ema = d ema + (1 - d) model`` with ``d = min(decay, (1 + step) / (10 + step))``; buffers copied."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _semantic(cfg: DistillConfig) -> dict:
    """The config fields that change the weights (not logging, checkpoint cadence, eval or device)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in NON_SEMANTIC}


def save_ckpt(path: Path, cfg, model, ema, opt, scaler, step: int, generation: int) -> None:
    """Atomically write everything a resume needs (weights, EMA, optimiser, scaler, step, RNG states)."""
    buf = io.BytesIO()
    torch.save({"config": _semantic(cfg), "step": step, "generation": generation, "model": model.state_dict(),
                "ema": ema.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _numpy_rng_state() -> dict:
    """NumPy's global RNG state as plain data (tensors and numbers), so checkpoints load with ``weights_only``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(s: dict) -> None:
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))


def load_ckpt(path: Path, cfg, model, ema, opt, scaler) -> tuple[int, int]:
    """Restore :func:`save_ckpt`'s state for the same config; returns ``(step, generation)``."""
    state = load_plain(path, "resume checkpoint")
    if state["config"] != _semantic(cfg):
        diff = sorted(k for k in state["config"] if state["config"].get(k) != _semantic(cfg).get(k))
        raise UsageError(f"{path} was written by another configuration (differs in {', '.join(diff)}); "
                         "use another --out or the same config")
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    _set_numpy_rng_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), int(state["generation"])


class RunLog:
    """``log.csv`` (one row per ``log_every`` steps) and TensorBoard scalars under ``tb/`` when
    ``tensorboard`` is importable; only the writing rank opens anything. On resume, rows past
    the resumed step are dropped so the log matches an uninterrupted run."""

    def __init__(self, out: Path, active: bool, resume_step: int = 0):
        self.active, self.path, self.tb = active, out / LOG, None
        if not active:
            return
        header = "step,generation,lr," + ",".join(LOG_KEYS) + ",wall_s\n"
        rows = self.path.read_text().splitlines()[1:] if self.path.is_file() else []
        keep = [r for r in rows if r and int(r.split(",")[0]) <= resume_step]
        self.path.write_text(header + "".join(r + "\n" for r in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:
            self.tb = None
        self.t0 = time.perf_counter()

    def write(self, step: int, generation: int, lr: float, parts: dict) -> None:
        if not self.active:
            return
        vals = [f"{parts.get(k, 0.0):.6g}" for k in LOG_KEYS]
        with open(self.path, "a") as f:
            f.write(f"{step},{generation},{lr:.6g}," + ",".join(vals) + f",{time.perf_counter() - self.t0:.2f}\n")
        if self.tb is not None:
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _check_out(out: Path, cfg: DistillConfig) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CKPT).is_file() and not (out / CONFIG).is_file():
        raise UsageError(f"{out} exists and holds no {CKPT}; choose an empty or new folder")
    if (out / CONFIG).is_file() and _semantic(load_run_config(out / CONFIG)) != _semantic(cfg):
        raise UsageError(f"{out / CONFIG} was written by another configuration; use another --out or the same config")
    if (out / CKPT).is_file():  # a checkpoint that is not plain data, or another config's, is refused before any work
        state = load_plain(out / CKPT, "resume checkpoint")
        if not isinstance(state, dict) or state.get("config") != _semantic(cfg):
            raise UsageError(f"{out / CKPT} was written by another configuration; use another --out or the same config")


def _amp(cfg: DistillConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a GradScaler)``: bf16/fp16 on CUDA for ``auto``, bf16 anywhere for ``bf16``."""
    if cfg.amp == "off":
        return None, False
    if cfg.amp == "bf16":
        return torch.bfloat16, False
    if device.type != "cuda":
        return None, False
    return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)


# --- the loop ------------------------------------------------------------------------------

def distill(cfg: DistillConfig, out: str | Path, progress: bool = True, stop_at: int | None = None) -> DistillResult:
    """Distil ``cfg.teacher`` into ``cfg.student`` on ``cfg.data``, writing the run folder ``out``.

    ``cfg.teacher`` must be a spec (:func:`panoedge.distill.default.run` resolves the embedded
    default teacher first). ``stop_at`` ends the call after that many steps in all, with a
    checkpoint and no ``student.pt`` (``report == {"stopped_at": step, ...}``); a rerun with the
    same config resumes from ``out/ckpt.pt``.
    """
    from panoedge.progress import tqdm

    from panoedge.models import create_student, get_student_entry, save_student

    cfg = cfg.validate()
    if not cfg.teacher:
        raise UsageError("no teacher spec: pass --teacher, or run the embedded default (panoedge distill without --teacher)")
    get_student_entry(cfg.student)
    out = Path(out)
    device = resolve_device(cfg.device)
    rank, world = init_distributed(device)
    if cfg.batch % world:
        raise UsageError(f"batch {cfg.batch} does not split over {world} ranks")
    _check_out(out, cfg)
    ts = load_training_set(cfg, rank, world, progress and rank == 0, device)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out / CONFIG, cfg, classes=ts.classes, depth_kind=ts.depth_kind)
    torch.manual_seed(cfg.seed)
    model = create_student(cfg.student, len(ts.classes), **({} if ts.depth is not None else {"heads": ("seg",)}))
    init_heads(model, ts)
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype, use_scaler = _amp(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    barrier(world)
    step = 0
    if (out / CKPT).is_file():
        step, _ = load_ckpt(out / CKPT, cfg, model, ema, opt, scaler)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    spg, end = cfg.steps_per_generation, cfg.steps if stop_at is None else min(cfg.steps, int(stop_at))
    log = RunLog(out, rank == 0, resume_step=step)
    gen_stats: list[dict] = []
    model.train()
    t0, n_steps, parts = time.perf_counter(), 0, {}
    bar = tqdm(range(step, end), desc="distill", unit="step", initial=step, total=cfg.steps,
               disable=not (progress and rank == 0))
    with deferred_interrupt() as stop:
        for step in bar:
            g = step // spg
            if g != ts.generation:
                gen_stats.append(advance(ts, g, ema, cfg, out / LABELS, rank, world, device))
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step)
            batch = make_batch(ts, cfg, step, rank, world, model.config, device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                loss, parts = step_loss(net, model, batch, cfg, ts.depth_kind)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            ema_update(ema, model, cfg.ema_decay, step)
            n_steps += 1
            if (step + 1) % cfg.log_every == 0 or step + 1 == end:
                log.write(step + 1, g, lr_at(cfg, step), parts)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", gen=g)
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
                if rank == 0:
                    save_ckpt(out / CKPT, cfg, model, ema, opt, scaler, step + 1, g)
                barrier(world)
            if stop.requested and step + 1 < end:
                if rank == 0:
                    save_ckpt(out / CKPT, cfg, model, ema, opt, scaler, step + 1, g)
                log.close()
                raise Interrupted(f"{stop.name} at step {step + 1} of {cfg.steps}: checkpoint saved to {out / CKPT}; "
                                  f"run the same command again (same --out and config) to resume from there")
    log.close()
    s_per_step = (time.perf_counter() - t0) / n_steps if n_steps else None
    if end < cfg.steps:
        return DistillResult(None, {"stopped_at": end, "s_per_step": s_per_step}, out)
    if world > 1:
        _broadcast_buffers(model, ema)
    report = {"schema": REPORT_SCHEMA, "config": cfg.to_dict(), "classes": ts.classes, "depth_kind": ts.depth_kind,
              "n_train_images": len(ts.stems), "final_losses": parts,
              "teacher_labels": {**ts.label_stats, "diag_label_miou_area": _label_miou(ts.base.float(), ts)},
              "train": {"steps": cfg.steps, "world_size": world, "device": str(device), "s_per_step_this_run": s_per_step,
                        "threads": torch.get_num_threads(), "generations": gen_stats}}
    if rank == 0:
        from panoedge.env import machine_info

        save_student(out / STUDENT, ema, ts.classes, ts.colors, ts.family,
                     meta={"teacher": cfg.teacher, "data": cfg.data, "steps": cfg.steps, "depth_kind": ts.depth_kind,
                           "erp_hw": list(cfg.erp_hw)})
        report["machine"] = machine_info(backends_used=["torch"])
        write_json(out / REPORT, report)
    barrier(world)
    return DistillResult(ema, report, out)


def _broadcast_buffers(*models: torch.nn.Module) -> None:
    """Rank 0's batch-norm buffers to every rank (DDP keeps parameters in step, not buffers)."""
    import torch.distributed as dist

    for m in models:
        for b in m.buffers():
            dist.broadcast(b.data, 0)
