"""The distillation's training set: panoramas and their generation-0 labels in memory, and batches.

:func:`load_training_set` reads every panorama (checking each), builds or reuses the teacher's
pseudo labels (sharded across ranks into the shared cache, then a barrier), checks them against
the floor and ceiling planes of the teacher's own depth and class-balances them
(:func:`refine_teacher_labels`). Label-free mode (``n_clusters > 0``): clusters of teacher
features instead of classes (:mod:`panoedge.distill.cluster`). :func:`make_batch` draws a step's
batch: a pure function of ``(seed, step)``, so a resumed run sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from panoedge.distill import balance, cluster, planes
from panoedge.distill.config import DistillConfig
from panoedge.distill.distributed import barrier
from panoedge.errors import DataError, UsageError
from panoedge.models.teachers import ResolvedTeacher, resolve_teacher_spec

BATCH_RNG_STREAM = 11
"""Second word of a step's batch seed ``[seed, BATCH_RNG_STREAM, step]``: keeps the batch stream apart
from other per-step streams (teacher training uses 7)."""
MIRROR_P = 0.5
"""Probability that a training panorama is mirrored left-right (a mirrored panorama is as likely as the original)."""
MASS_EPS = 1e-6
"""Smallest label mass divided by when renormalising the teacher's labels (pixels whose classes all map to ignore)."""


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


def pseudo_spec(cfg: DistillConfig):
    """The :class:`~panoedge.distill.pseudo.PseudoLabelSpec` of ``cfg`` (0/None fields: the module's defaults)."""
    from panoedge.distill.pseudo import PseudoLabelSpec

    extra = {k: v for k, v in (("n_patches", cfg.n_patches), ("fov_deg", cfg.fov_deg), ("patch_hw", cfg.patch_hw)) if v}
    return PseudoLabelSpec(teacher=cfg.teacher, erp_hw=tuple(cfg.erp_hw), class_map=cfg.class_map,
                           source_hw=None if cfg.pseudo_hw is None else tuple(cfg.pseudo_hw),
                           fusion=cfg.pseudo_fusion, **extra)


def _shared_data(cfg: DistillConfig, rank: int, world: int, progress: bool):
    """The dataset of ``cfg.data``: rank 0 renders synthetic data once, the others find it cached."""
    from panoedge.data import resolve_data

    def resolve():
        return resolve_data(cfg.data, progress, rig=cfg.rig, every=cfg.every, n=cfg.synth_n, size=tuple(cfg.synth_hw))

    data = resolve() if rank == 0 else None
    barrier(world)
    data = data or resolve()
    if len(data.stems) < 1:
        raise DataError(f"{data.root}: no panoramas")
    return data


def load_training_set(cfg: DistillConfig, rank: int = 0, world: int = 1, progress: bool = True,
                      device: torch.device | str = "cpu", teacher: ResolvedTeacher | None = None) -> TrainingSet:
    """Read every panorama (checking each), build/reuse the pseudo labels (sharded), load them.

    ``teacher``: ``cfg.teacher`` resolved (``None``: resolved here).
    """
    teacher = resolve_teacher_spec(teacher or cfg.teacher)
    data = _shared_data(cfg, rank, world, progress)
    stems = data.stems
    if cfg.n_clusters and cfg.class_map:
        raise UsageError("--clusters and --class-map exclude each other: the label-free mode makes its own classes")
    rgb = np.stack([_read_erp(data, s, cfg.erp_hw) for s in stems])
    spec = pseudo_spec(cfg)
    classes, pls_classes, cluster_on = _classes(cfg, data=data, teacher=teacher, spec=spec, device=device)
    loaded = _pseudo_labels(data, teacher, spec, pls_classes, rank=rank, world=world, progress=progress, device=device)
    depth = torch.from_numpy(np.stack([x["depth"] for x in loaded])) if loaded[0]["depth"] is not None else None
    depth_kind = loaded[0]["depth_kind"]
    if cfg.n_clusters:
        base = _cluster_labels(cfg, teacher=teacher.load(device), spec=spec, rgb=rgb, device=device, source=cluster_on)
        mass = torch.ones(len(stems), *cfg.erp_hw)
        label_stats = {"clusters_of": cluster_on}
    else:
        if loaded[0]["probs"] is None:
            raise UsageError(f"teacher {cfg.teacher} gives no classes; use the label-free mode (--clusters N)")
        probs = torch.from_numpy(np.stack([x["probs"] for x in loaded]))
        mass = probs.sum(1)
        base, label_stats = refine_teacher_labels(probs / mass.clamp_min(MASS_EPS)[:, None], mass, depth=depth,
                                                  classes=classes, cfg=cfg)
    depth, depth_kind = _camera_height(cfg, depth=depth, depth_kind=depth_kind, base=base, classes=classes,
                                       label_stats=label_stats)
    colors, family = _colors_family(data, classes, cfg)
    return TrainingSet(stems=list(stems), rgb=torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), base=base.half(),
                       base_w=mass.clamp(0, 1).half(), depth=depth, depth_kind=depth_kind, classes=classes,
                       colors=colors, family=family, gt=_ground_truth(data, stems, cfg.erp_hw),
                       label_free=bool(cfg.n_clusters), label_stats=label_stats)


def _classes(cfg: DistillConfig, data, teacher: ResolvedTeacher, spec, device):
    """``(student classes, classes the pseudo labels are made on, what clusters are made of)``; the
    teacher is loaded here only when its classes or features are needed before the pseudo labels."""
    if not (cfg.n_clusters or (data.classes is None and cfg.class_map is None)):
        classes = student_classes(data, cfg.class_map, None)
        return classes, classes, None
    t = teacher.load(str(device))
    if not cfg.n_clusters:
        classes = student_classes(data, cfg.class_map, t)
        return classes, classes, None
    cluster_on = cluster.feature_source(t, spec.layout(t.input_hw))  # before the pseudo-label pass
    classes = [f"cluster{i:02d}" for i in range(cfg.n_clusters)]
    return classes, (list(t.classes) if t.classes else classes), cluster_on


def _pseudo_labels(data, teacher: ResolvedTeacher, spec, classes, *, rank: int, world: int, progress: bool,
                   device) -> list[dict]:
    """Every panorama's pseudo labels (each rank builds its shards; after a barrier one pass
    completes the set), as :meth:`PseudoLabelSet.load` dicts in stem order."""
    from panoedge.distill.pseudo import build_pseudo_labels

    pls = build_pseudo_labels(data, teacher, spec, classes, rank=rank, world_size=world, progress=progress,
                              device=str(device))
    barrier(world)
    if not pls.complete:
        pls = build_pseudo_labels(data, teacher, spec, classes, rank=0, world_size=1, progress=False, device=str(device))
    return [pls.load(s) for s in data.stems]


def _camera_height(cfg: DistillConfig, depth, depth_kind, base, classes, label_stats: dict):
    """``(depth, depth_kind)`` made metric by the camera height when ``cfg.camera_height_m > 0``."""
    if cfg.camera_height_m <= 0:
        return depth, depth_kind
    from panoedge.distill.camera_height import metric_from_camera_height

    if depth is None:
        raise UsageError("--camera-height scales a relative depth teacher's depth: this teacher gives no depth")
    if depth_kind != "relative":
        label_stats["camera_height"] = "not used: the teacher's depth is already metric"
        return depth, depth_kind
    depth, label_stats["camera_height"] = metric_from_camera_height(depth, base, classes,
                                                                    camera_height_m=cfg.camera_height_m)
    return depth, "metric"


def _ground_truth(data, stems, hw) -> torch.Tensor | None:
    """Ground-truth class ids at ``hw`` when every panorama has them (diagnostics only)."""
    import cv2

    if not all(s in data.files["semantic"] for s in stems):
        return None
    h, w = hw
    return torch.from_numpy(np.stack([cv2.resize(data.load(s, ["semantic"])["semantic"], (w, h),
                                                 interpolation=cv2.INTER_NEAREST) for s in stems]))


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
        base, stats["planes"] = planes.refine_planes(base, depth, classes, conf=cfg.planes_conf, tol=cfg.planes_tol,
                                                     sigma=cfg.planes_sigma)
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
                                          layout=layout, source=source)[0].cpu() for r in rgb]
    h, w = rgb.shape[1:3]
    area = erp_area_weights(h, w).expand(h, w)
    centres = cluster.fit_clusters(feats, cfg.n_clusters, area, seed=cfg.seed)
    return torch.stack([cluster.soft_assign(f, centres) for f in feats])


def normalise(x: torch.Tensor, cfg_model) -> torch.Tensor:
    """``x`` ``(B, 3, H, W)`` in [0, 1] normalised by the student's ``mean``/``std``."""
    mean = torch.tensor(cfg_model.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg_model.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def make_batch(ts: TrainingSet, cfg: DistillConfig, step: int, rank: int, world: int, model_cfg, device) -> dict:
    """This rank's share of step ``step``'s batch: ``x`` (normalised), ``probs``, ``weight``, ``depth``.

    The global batch is drawn by ``np.random.default_rng([seed, BATCH_RNG_STREAM, step])`` (rank
    ``r`` takes rows ``r::world``), with a random yaw (a circular roll, exact on ERP) and mirror.
    """
    rng = np.random.default_rng([cfg.seed, BATCH_RNG_STREAM, step])
    n, w = len(ts.stems), ts.rgb.shape[-1]
    idx, shift, flip = rng.integers(0, n, cfg.batch), rng.integers(0, w, cfg.batch), rng.random(cfg.batch) < MIRROR_P
    idx, shift, flip = idx[rank::world], shift[rank::world], flip[rank::world]
    cols = []
    for s, f in zip(shift, flip):
        c = (torch.arange(w) - int(s)) % w if cfg.augment else torch.arange(w)
        cols.append(c.flip(0) if (f and cfg.augment) else c)

    def take(t):
        return None if t is None else torch.stack([t[i][..., c] for i, c in zip(idx, cols)]).to(device)

    x = take(ts.rgb).float() / 255.0
    return {"x": normalise(x, model_cfg), "probs": take(ts.probs).float(), "weight": take(ts.weight).float(),
            "depth": take(ts.depth), "step": step, "rank": rank}
