"""FP32 vs INT8 accuracy on held-out ERP data: area-weighted mIoU and depth errors (NumPy).

A metrics block follows CONVENTIONS.md: ``miou_area`` and ``miou`` (percent), ``per_class_iou``
(area-weighted, percent, null for absent classes), ``absrel_area`` and ``absrel``, ``rmse`` and
``delta1`` (area-weighted), ``n_images``. Predictions are kept so the sensitivity scan can
compare a partly quantized model with FP32 pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.deploy.calib import EvalSet
from panoedge import metrics
from panoedge.geometry import erp_area_weights
from panoedge.results import Record, json_field
from panoedge.runtime.processing import postprocess


@dataclass(frozen=True)
class Metrics(Record):
    """A metrics block (:func:`score`): segmentation and depth figures where the model has those heads."""

    n_images: int
    miou_area: float | None = json_field(default=None, omit_none=True)
    miou: float | None = json_field(default=None, omit_none=True)
    per_class_iou: tuple[float | None, ...] | None = json_field(default=None, omit_none=True)
    absrel_area: float | None = json_field(default=None, omit_none=True)
    absrel: float | None = json_field(default=None, omit_none=True)
    rmse: float | None = json_field(default=None, omit_none=True)
    delta1: float | None = json_field(default=None, omit_none=True)
    depth_alignment: str | None = json_field(default=None, omit_none=True)

    @classmethod
    def from_dict(cls, block: dict) -> "Metrics":
        """The record of a :func:`score` block (or one read back from a report)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: (tuple(v) if k == "per_class_iou" and v is not None else v)
                      for k, v in block.items() if k in names})


@dataclass(frozen=True)
class BudgetCheck(Record):
    """INT8 against FP32 under the budgets (:func:`budget_check`)."""

    miou_drop: float | None
    absrel_rel_increase: float | None
    within: bool

    @classmethod
    def from_dict(cls, d: dict) -> "BudgetCheck":
        return cls(miou_drop=d["miou_drop"], absrel_rel_increase=d["absrel_rel_increase"], within=d["within"])


@dataclass
class Predictions:
    labels: np.ndarray | None  # (N, H, W) uint8
    depth: np.ndarray | None   # (N, H, W) float32 metres


def predict(runner, inputs: list[np.ndarray], input_name: str = "image") -> Predictions:
    """Run ``runner`` on every input and post-process to class ids and depth."""
    labels, depth = [], []
    for x in inputs:
        out = postprocess(runner.infer({input_name: x}))
        if "labels" in out:
            labels.append(out["labels"])
        if "depth" in out:
            depth.append(out["depth"])
    return Predictions(np.stack(labels) if labels else None, np.stack(depth) if depth else None)


def _area(n: int, h: int, w: int) -> np.ndarray:
    return np.broadcast_to(erp_area_weights(h, w), (n, h, w))


def _aligned(depth: np.ndarray, gt: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Each image's relative depth after its weighted least-squares scale and shift onto ``gt``."""
    out = np.zeros_like(depth, dtype=np.float32)
    for i in range(len(depth)):
        p, g, w = depth[i].astype(np.float64), gt[i].astype(np.float64), wts[i]
        ok = np.isfinite(g) & (g > 0) & np.isfinite(p) & (p > 0)
        if ok.sum() < 2:
            out[i] = depth[i]
            continue
        sw = np.sqrt(w[ok])
        s, t = np.linalg.lstsq(np.stack([p[ok], np.ones(ok.sum())], 1) * sw[:, None], g[ok] * sw, rcond=None)[0]
        out[i] = np.where(p > 0, np.maximum(s * p + t, 1e-3), 0.0)
    return out


def score(pred: Predictions, ev: EvalSet, num_classes: int, depth_kind: str = "metric") -> dict:
    """The metrics block of ``pred`` against the ground truth of ``ev``; ``relative`` depth is
    scored after a per-image least-squares scale and shift (``depth_alignment``)."""
    block: dict = {"n_images": len(ev.inputs)}
    if pred.labels is not None and ev.labels is not None:
        n, h, w = ev.labels.shape
        cm_area = metrics.confusion_matrix(pred.labels, ev.labels, num_classes, weights=_area(n, h, w))
        cm = metrics.confusion_matrix(pred.labels, ev.labels, num_classes)
        iou = metrics.per_class_iou(cm_area) * 100.0
        block.update(miou_area=100.0 * metrics.mean_iou(cm_area), miou=100.0 * metrics.mean_iou(cm),
                     per_class_iou=[None if not np.isfinite(v) else float(v) for v in iou])
    if pred.depth is not None and ev.depth is not None:
        n, h, w = ev.depth.shape
        wts = _area(n, h, w)
        d = _aligned(pred.depth, ev.depth, wts) if depth_kind == "relative" else pred.depth
        block.update(absrel_area=metrics.absrel(d, ev.depth, wts), absrel=metrics.absrel(d, ev.depth),
                     rmse=metrics.rmse(d, ev.depth, wts), delta1=metrics.delta1(d, ev.depth, wts),
                     depth_alignment="scale_shift" if depth_kind == "relative" else "none")
    return block


def disagreement(a: Predictions, b: Predictions) -> dict:
    """How far ``a`` is from ``b`` (e.g. partly quantized vs FP32), area-weighted.

    ``label_flips``: fraction of pixels whose class differs; ``log_depth``: mean
    ``|log(depth_a / depth_b)|``. Both are continuous, so they rank layers stably on few images.
    """
    out = {"label_flips": 0.0, "log_depth": 0.0}
    if a.labels is not None and b.labels is not None:
        n, h, w = a.labels.shape
        wts = _area(n, h, w)
        out["label_flips"] = float(((a.labels != b.labels) * wts).sum() / wts.sum())
    if a.depth is not None and b.depth is not None:
        n, h, w = a.depth.shape
        wts = _area(n, h, w)
        err = np.abs(np.log(np.maximum(a.depth, 1e-6)) - np.log(np.maximum(b.depth, 1e-6)))
        out["log_depth"] = float((err * wts).sum() / wts.sum())
    return out


def budget_check(fp32: dict, int8: dict, budget_miou: float, budget_absrel: float) -> dict:
    """``{"miou_drop", "absrel_rel_increase", "within"}``: mIoU drop in points (area-weighted) and the
    relative AbsRel increase (area-weighted) against the budgets; a metric absent from both is skipped."""
    out = {"miou_drop": None, "absrel_rel_increase": None, "within": True}
    if "miou_area" in fp32 and "miou_area" in int8:
        out["miou_drop"] = float(fp32["miou_area"] - int8["miou_area"])
        out["within"] &= out["miou_drop"] <= budget_miou
    if "absrel_area" in fp32 and "absrel_area" in int8 and fp32["absrel_area"] > 0:
        out["absrel_rel_increase"] = float((int8["absrel_area"] - fp32["absrel_area"]) / fp32["absrel_area"])
        out["within"] &= out["absrel_rel_increase"] <= budget_absrel
    out["within"] = bool(out["within"])
    return out
