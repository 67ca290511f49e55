"""Generations of self-training: each later generation's labels from the EMA student.

Generation 0 trains on the teacher's labels; each later one starts from labels refined with the
EMA student (:func:`next_labels`: RLCC ensembling, BiSMAP vetting, re-clustering), saved to
``labels/genNNN.pt`` so a resumed run trains on exactly the same labels (:func:`advance`). With
none of those on (the default), every generation keeps generation 0's labels and no pass is run
(:func:`relabels`); the schedule is global, so the split into generations changes nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from panoedge.distill import bismap, cluster, rlcc
from panoedge.distill.config import DistillConfig
from panoedge.distill.distributed import barrier
from panoedge.distill.train_data import TrainingSet, normalise
from panoedge.home import atomic_write_bytes
from panoedge.models.checkpoint import load_plain

PREDICT_BATCH = 8
"""Panoramas per EMA-student forward when relabelling (memory, not results: outputs are per image)."""
BISMAP_SEED_MULT = 7919
"""BiSMAP's generator seed is ``seed * BISMAP_SEED_MULT + generation`` (a prime: distinct per generation)."""
BISMAP_FIT_PIXELS = 2048
"""At most this many confident pixels per panorama (drawn by solid angle) fit BiSMAP's class Gaussians:
enough for a few diagonal components per class, bounded cost per generation."""
BISMAP_ACTIONS = ("accept", "relabel", "reject")
"""What :func:`panoedge.distill.bismap.refine` does to a pixel, in the order of its action ids."""
AREA_EPS = 1e-12
"""Smallest total area divided by when turning BiSMAP's action areas into fractions."""


@torch.no_grad()
def _predict_set(ema, ts: TrainingSet, device, batch: int = PREDICT_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """EMA student on every training panorama: probabilities ``(N, K, H, W)`` f16, features ``(N, C, h, w)``."""
    store, probs, feats = {}, [], []
    hook = ema.decoder.register_forward_hook(lambda m, i, o: store.__setitem__("f", o))
    try:
        for s in range(0, len(ts.stems), batch):
            x = normalise(ts.rgb[s:s + batch].to(device).float() / 255.0, ema.config)
            # the per-conv path calls the decoder module (so the hook sees its features); in eval mode
            # it equals the DLA-friendly one-wrap-per-stage forward to float rounding
            probs.append(torch.softmax(ema.forward_per_conv(x)["seg"].float(), 1).half().cpu())
            feats.append(store["f"].float().cpu())
    finally:
        hook.remove()
    return torch.cat(probs), torch.cat(feats)


def label_miou(probs: torch.Tensor, ts: TrainingSet) -> float | None:
    """Area-weighted mIoU (percent) of labels against ground truth: a diagnostic, never trained on."""
    if ts.gt is None or ts.label_free:
        return None
    from panoedge import metrics
    from panoedge.geometry import erp_area_weights

    h, w = ts.gt.shape[-2:]
    wts = np.broadcast_to(erp_area_weights(h, w), ts.gt.shape)
    return 100.0 * metrics.miou(probs.argmax(1).numpy(), ts.gt.numpy(), num_classes=len(ts.classes), weights=wts)


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
        new = torch.stack(cluster.stable_relabel(fresh, list(ts.probs.float()), cfg.n_clusters, area=area,
                                                 momentum=cfg.rlcc_momentum if cfg.rlcc else 1.0))
    elif cfg.rlcc:
        new = torch.stack([rlcc.ensemble(s.float(), p.float(), cfg.rlcc_momentum) for s, p in zip(sp, ts.probs)])
    else:
        new = ts.base.float()
    if cfg.bismap:
        new, weight, stats["bismap"] = _bismap(new, weight, sp=sp, feats=feats, area=area, cfg=cfg, g=g)
    stats["changed_vs_teacher"] = float((new.argmax(1) != ts.base.argmax(1)).float().mean())
    stats["diag_label_miou_area"] = label_miou(new, ts)
    stats["diag_teacher_label_miou_area"] = label_miou(ts.base.float(), ts)
    return new.half(), weight.half(), stats


def _bismap(new, weight, sp, feats, area, cfg, g) -> tuple[torch.Tensor, torch.Tensor, dict]:
    h, w = new.shape[-2:]
    gen = torch.Generator().manual_seed(cfg.seed * BISMAP_SEED_MULT + g)
    xs, ys, ws = [], [], []
    for i in range(len(new)):
        f = F.interpolate(feats[i][None], size=(h, w), mode="bilinear", align_corners=False)[0].reshape(feats.shape[1], -1)
        lab = new[i].argmax(0).reshape(-1)
        ok = ((new[i].max(0).values >= cfg.bismap_conf) & (sp[i].argmax(0) == new[i].argmax(0)) & (weight[i] > 0)).reshape(-1)
        sel = torch.nonzero(ok).flatten()
        if len(sel) > BISMAP_FIT_PIXELS:
            sel = sel[torch.multinomial(area.reshape(-1)[sel], BISMAP_FIT_PIXELS, replacement=False, generator=gen)]
        xs.append(f[:, sel].t())
        ys.append(lab[sel])
        ws.append(area.reshape(-1)[sel])
    model = bismap.fit_class_gmms(torch.cat(xs), torch.cat(ys), torch.cat(ws), new.shape[1],
                                  n_components=cfg.bismap_components, quantile=cfg.bismap_quantile, gen=gen)
    counts = torch.zeros(len(BISMAP_ACTIONS), dtype=torch.float64)
    out_p, out_w = new.clone(), weight.clone().float()
    for i in range(len(new)):
        f = F.interpolate(feats[i][None], size=(h, w), mode="bilinear", align_corners=False)[0]
        out_p[i], out_w[i], act = bismap.refine(new[i], weight[i].float(), feats=f, model=model)
        for a in range(len(BISMAP_ACTIONS)):
            counts[a] += float((area * (act == a)).sum())
    frac = (counts / counts.sum().clamp_min(AREA_EPS)).tolist()
    return out_p, out_w, {**dict(zip(BISMAP_ACTIONS, frac)), "classes_fitted": sum(m is not None for m in model.gmms)}


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
            probs, weight, stats = next_labels(ts, g, ema, cfg=cfg, device=device)
            buf = io.BytesIO()
            torch.save({"generation": g, "probs": probs, "weight": weight, "stats": stats}, buf)
            atomic_write_bytes(path(g), buf.getvalue())
        barrier(world)
    return load(g)
