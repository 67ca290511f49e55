"""Live accuracy where the source knows the truth (``synth://``), and the same model offline.

:class:`AccuracyMeter` accumulates confusion matrices (area-weighted and per pixel, at the
model's ERP size; the truth is resized by nearest neighbour) and depth errors over frames.
:class:`AccuracySink` feeds it from the pipeline in its own thread. :func:`offline_accuracy`
runs the model on the source's ground-truth ERP colour images (rendered directly, no fisheye,
no stitching) through the same pre/post-processing, so the two figures differ only by what
the live path adds: the camera, the stitcher, and frames lost to dropping.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from panoedge.metrics import confusion_matrix, mean_iou, per_class_iou
from panoedge.geometry import erp_area_weights
from panoedge.live.report import AccuracyFigures
from panoedge.live.stream import FrameResult, Sink, StreamInfo

__all__ = ["AccuracyMeter", "AccuracySink", "offline_accuracy", "comparable_classes"]


def comparable_classes(model_classes: list[str], truth_classes: list[str]) -> str | None:
    """None when predictions can be scored against the truth's ids, else why not."""
    if len(model_classes) != len(truth_classes):
        return f"the model has {len(model_classes)} classes, the source's truth {len(truth_classes)}"
    generic = all(c == f"class {i}" for i, c in enumerate(model_classes))
    if not generic and list(model_classes) != list(truth_classes):
        return "the model's class names differ from the source's"
    return None


class AccuracyMeter:
    """Segmentation and depth accuracy accumulated over frames (CONVENTIONS.md figures)."""

    def __init__(self, num_classes: int):
        self.k = int(num_classes)
        self.cm_area = np.zeros((self.k, self.k))
        self.cm = np.zeros((self.k, self.k))
        self.depth = np.zeros(6)  # area: sum w|e|/g, sum w; plain: sum |e|/g, n; delta1 area: sum w*ok; sq err area
        self.n = 0
        self._w: dict[tuple[int, int], np.ndarray] = {}

    def _weights(self, hw) -> np.ndarray:
        if hw not in self._w:
            self._w[hw] = erp_area_weights(*hw)
        return self._w[hw]

    def add(self, labels: np.ndarray | None, depth: np.ndarray | None, truth: dict) -> None:
        """Score one prediction against ``truth`` (``labels`` uint8 and ``depth`` float32 m, any ERP size)."""
        ref = labels if labels is not None else depth
        if ref is None:
            return
        hw = ref.shape[:2]
        w = self._weights(hw)
        if labels is not None and truth.get("labels") is not None:
            gt = truth["labels"]
            if gt.shape != hw:
                gt = cv2.resize(gt, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
            self.cm_area += confusion_matrix(labels, gt, self.k, w)
            self.cm += confusion_matrix(labels, gt, self.k)
        if depth is not None and truth.get("depth") is not None:
            gt = truth["depth"]
            if gt.shape != hw:
                gt = cv2.resize(gt, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
            ok = np.isfinite(gt) & (gt > 0) & np.isfinite(depth)
            g, p, ww = gt[ok].astype(np.float64), depth[ok].astype(np.float64), w[ok].astype(np.float64)
            rel = np.abs(p - g) / g
            ratio = np.maximum(p / g, g / np.maximum(p, 1e-9))
            self.depth += [(ww * rel).sum(), ww.sum(), rel.sum(), rel.size, (ww * (ratio < 1.25)).sum(),
                           (ww * (p - g) ** 2).sum()]
        self.n += 1

    def result(self) -> AccuracyFigures:
        """``miou_area``/``miou`` (percent), ``per_class_iou``, ``absrel_area``, ``absrel``, ``delta1``,
        ``rmse`` (area-weighted), ``n_images``."""
        d = self.depth
        nan = float("nan")
        return AccuracyFigures(
            miou_area=mean_iou(self.cm_area) * 100.0 if self.cm_area.sum() else nan,
            miou=mean_iou(self.cm) * 100.0 if self.cm.sum() else nan,
            per_class_iou=[None if not np.isfinite(v) else float(v) for v in per_class_iou(self.cm_area)],
            absrel_area=d[0] / d[1] if d[1] else nan,
            absrel=d[2] / d[3] if d[3] else nan,
            delta1=d[4] / d[1] if d[1] else nan,
            rmse=float(np.sqrt(d[5] / d[1])) if d[1] else nan,
            n_images=self.n,
        )


class AccuracySink(Sink):
    """Scores results that carry truth, in its own thread, at most ``max_fps`` a second.

    Scoring costs a few milliseconds a frame; sampling keeps that off a small machine's cores
    while still covering every part of a looping source over a run (0: score every frame).
    """

    scheme = "accuracy"
    queue_size = 4

    def __init__(self, num_classes: int, max_fps: float = 5.0):
        super().__init__("accuracy://")
        self.meter = AccuracyMeter(num_classes)
        self.period = 1.0 / max_fps if max_fps > 0 else 0.0
        self._last = -1e9

    def setup(self, info: StreamInfo) -> None:
        pass

    def deliver(self, result: FrameResult, concurrent: bool = True) -> None:
        now = time.perf_counter()
        if now - self._last < self.period:
            return
        self._last = now
        super().deliver(result, concurrent)

    def process(self, result: FrameResult) -> None:
        if result.truth is not None:
            self.meter.add(result.labels, result.depth, result.truth)

    def reset(self) -> None:
        self.meter = AccuracyMeter(self.meter.k)


def offline_accuracy(model, source) -> AccuracyFigures:
    """The model on each ground-truth ERP of a ``synth://`` source (no camera, no stitching)."""
    meter = AccuracyMeter(len(model.classes))
    source.prepare()
    for i in range(source.n):
        rgb = source.erp_rgb(i)
        h, w = model.input_hw
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        labels, depth = model.postprocess(model.infer(model.preprocess(rgb)))
        meter.add(labels, depth, source.truth[i])
    return meter.result()
