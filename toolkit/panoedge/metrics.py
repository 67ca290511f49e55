"""Segmentation and depth metrics, exact and small, with optional per-pixel weights (NumPy only).

Weights are how ERP metrics become area-weighted (CONVENTIONS.md): pass
``panoedge.geometry.erp_area_weights(h, w)`` (broadcast per image) and every pixel counts in
proportion to its solid angle; ``weights=None`` counts every pixel once. Class ids are uint8
with ``ignore_index`` (255) skipped; depth pixels count where the ground truth is positive
and finite. Fractions in, fractions out: reports multiply mIoU by 100 (percent).
"""

from __future__ import annotations

import numpy as np

from panoedge.errors import UsageError

IGNORE = 255


def _flat(a) -> np.ndarray:
    return np.asarray(a).reshape(-1)


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise UsageError(f"weights of {w.shape[0]} values for {n} pixels")
    return w


def confusion_matrix(pred, gt, num_classes: int, weights=None, ignore_index: int = IGNORE) -> np.ndarray:
    """``(K, K)`` float64 matrix, rows = ground truth, columns = prediction, summed ``weights``.

    ``pred``/``gt`` integer class maps of the same shape (any shape, e.g. a stack ``(N, H, W)``);
    pixels with ``gt == ignore_index`` are skipped. Predictions outside ``[0, K)`` are a ``UsageError``.
    """
    p, g = _flat(pred).astype(np.int64), _flat(gt).astype(np.int64)
    if p.shape != g.shape:
        raise UsageError(f"pred has {p.size} pixels, gt {g.size}")
    w = _weights(weights, g.size)
    keep = g != ignore_index
    p, g, w = p[keep], g[keep], w[keep]
    if p.size and (p.min() < 0 or p.max() >= num_classes or g.min() < 0 or g.max() >= num_classes):
        raise UsageError(f"class ids outside [0, {num_classes}) (other than ignore {ignore_index})")
    cm = np.bincount(g * num_classes + p, weights=w, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).astype(np.float64)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class ``(K,)`` from a confusion matrix: ``tp / (gt + pred - tp)``; NaN where a class
    is absent from both ground truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(1) + cm.sum(0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean of :func:`per_class_iou` over the classes that occur (fraction in [0, 1]; NaN if none)."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def miou(pred, gt, num_classes: int, weights=None, ignore_index: int = IGNORE) -> float:
    """Mean IoU (fraction) of one label map or a stack, optionally weighted per pixel."""
    return mean_iou(confusion_matrix(pred, gt, num_classes, weights, ignore_index))


def _depth_parts(pred, gt, weights):
    p, g = _flat(pred).astype(np.float64), _flat(gt).astype(np.float64)
    if p.shape != g.shape:
        raise UsageError(f"pred depth has {p.size} pixels, gt {g.size}")
    w = _weights(weights, g.size)
    keep = np.isfinite(g) & (g > 0) & np.isfinite(p) & (w > 0)
    return p[keep], g[keep], w[keep]


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((x * w).sum() / w.sum()) if w.size and w.sum() > 0 else float("nan")


def absrel(pred, gt, weights=None) -> float:
    """Mean ``|pred - gt| / gt`` over valid ground truth (``gt > 0`` and finite), weighted."""
    p, g, w = _depth_parts(pred, gt, weights)
    return _wmean(np.abs(p - g) / g, w)


def rmse(pred, gt, weights=None) -> float:
    """Root of the (weighted) mean squared error in metres over valid ground truth."""
    p, g, w = _depth_parts(pred, gt, weights)
    return float(np.sqrt(_wmean((p - g) ** 2, w)))


def delta1(pred, gt, weights=None, threshold: float = 1.25) -> float:
    """(Weighted) fraction of valid pixels with ``max(pred/gt, gt/pred) < threshold``."""
    p, g, w = _depth_parts(pred, gt, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(p / g, np.where(p > 0, g / np.where(p > 0, p, 1.0), np.inf))
    return _wmean((ratio < threshold).astype(np.float64), w)


def depth_metrics(pred, gt, weights=None) -> dict[str, float]:
    """``{"absrel", "rmse", "delta1"}`` of :func:`absrel`, :func:`rmse`, :func:`delta1`."""
    return {"absrel": absrel(pred, gt, weights), "rmse": rmse(pred, gt, weights), "delta1": delta1(pred, gt, weights)}
