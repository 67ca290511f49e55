"""``panoedge eval`` and ``panoedge predict``: a model (student, ONNX export or teacher) on ERP data.

:func:`evaluate` returns the CONVENTIONS.md evaluation report (schema ``panoedge.eval/1``):
``miou_area``/``miou`` (percent), ``per_class_iou`` (area-weighted, percent; ``per_class_iou_plain``
beside it), ``absrel_area``/``absrel``, ``rmse_area``/``rmse`` (metres), ``delta1_area``/``delta1``
(fractions), the same block per 30-degree latitude band (``by_latitude_band``, north to south)
and for the seam (``seam``: the 5% of columns at each edge of the ERP image), and ``n_images``.
Area weights are solid angles (:func:`panoedge.geometry.erp_area_weights`).

A label-free model (classes ``cluster00`` ...) has its clusters matched one-to-one to the
dataset's classes by the Hungarian algorithm on their area-weighted overlap over the whole
evaluation (``class_match.by == "hungarian"``, the matching in ``class_match.clusters``).
Otherwise classes are matched by name between the model and the dataset: dataset pixels of classes the
model lacks are left out, model classes the dataset lacks count as wrong; a model without
class names (an ONNX export without ``panoedge.classes``) is matched by index when the counts
agree. Relative depth is aligned to the ground truth per image by a least-squares scale and
shift before the depth metrics (``depth_alignment``: ``"scale_shift"``, else ``"none"``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from panoedge.progress import tqdm

from panoedge.data.folder import DatasetFolder
from panoedge.errors import DataError, UsageError
from panoedge import metrics
from panoedge.eval.predictors import MODES, Predictor, check_erp_rgb, load_predictor

__all__ = ["MODES", "Predictor", "apply_class_map", "evaluate", "load_predictor", "predict_images", "SCHEMA"]

SCHEMA = "panoedge.eval/1"
BANDS = ("60N-90N", "30N-60N", "0-30N", "0-30S", "30S-60S", "60S-90S")
SEAM_FRACTION = 0.05


def apply_class_map(predictor: Predictor, data, class_map: str | None):
    """``(predictor, data, side)`` with ``class_map`` applied where its source classes fit.

    A published layout (``structured3d:`` ...) whose own classes the map is for is read through
    it (``side="data"``: ground truth in the map's target classes); otherwise the map takes the
    model's classes onto its targets (``side="model"``: a teacher's probabilities are summed,
    a student's ids mapped), so an ADE20K teacher is scored on ``window`` for ``windowpane``.
    Neither fitting is a ``UsageError`` naming both class lists.
    """
    if class_map is None:
        return predictor, data, None
    from panoedge.data.classmap import load_class_map, map_target_classes
    from panoedge.data.layouts import LayoutDataset
    from panoedge.errors import ConfigError
    from panoedge.eval.predictors import with_class_map

    target = map_target_classes(class_map)
    if isinstance(data, LayoutDataset):
        try:
            load_class_map(class_map, data.layout.classes, target)
            return predictor, LayoutDataset(data.root, layout=data.layout, class_map=class_map), "data"
        except (ConfigError, UsageError):
            pass
    if predictor.classes is not None:
        try:
            return with_class_map(predictor, load_class_map(class_map, predictor.classes, target)), data, "model"
        except (ConfigError, UsageError):
            pass
    native = getattr(getattr(data, "layout", None), "classes", None) or data.classes or ()
    raise UsageError(f"class map {class_map!r} is for neither the model's classes "
                     f"({', '.join(list(predictor.classes or ())[:8]) or 'unnamed'}) nor the data's "
                     f"({', '.join(list(native)[:8]) or 'none'})")


def _norm(name: str) -> str:
    return " ".join(str(name).split()).lower()


def match_classes(predictor: Predictor, dataset_classes) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(pred_lut (256,), gt_lut (256,), info)``: model ids -> dataset ids (``K`` = not in the
    dataset), dataset ids -> themselves or 255 where the model lacks the class."""
    ds = [str(c) for c in dataset_classes]
    k = len(ds)
    pred_lut, gt_lut = np.full(256, k, np.int64), np.full(256, 255, np.int64)
    if predictor.classes is None:
        if predictor.num_classes != k:
            raise UsageError(f"{predictor.name} has {predictor.num_classes} unnamed classes, the dataset {k} "
                             f"({', '.join(ds)}); classes cannot be matched")
        pred_lut[:k] = gt_lut[:k] = np.arange(k)
        return pred_lut, gt_lut, {"by": "index", "evaluated": ds, "dataset_only": [], "model_only": []}
    where = {_norm(c): i for i, c in enumerate(ds)}
    for i, c in enumerate(predictor.classes):
        pred_lut[i] = where.get(_norm(c), k)
    common = sorted({int(v) for v in pred_lut[:len(predictor.classes)] if v < k})
    if not common:
        raise UsageError(f"no class of {predictor.name} ({', '.join(predictor.classes)}) is in the dataset "
                         f"({', '.join(ds)}); classes are matched by name")
    gt_lut[common] = common
    mine = {_norm(c) for c in predictor.classes}
    return pred_lut, gt_lut, {"by": "name", "evaluated": [ds[i] for i in common],
                              "dataset_only": [c for c in ds if _norm(c) not in mine],
                              "model_only": [c for c in predictor.classes if _norm(c) not in where]}


def is_label_free(classes) -> bool:
    """Whether ``classes`` are a label-free student's clusters (``cluster00`` ...)."""
    return bool(classes) and all(re.fullmatch(r"cluster\d+", str(c)) for c in classes)


def match_clusters(cm_raw: np.ndarray, k: int, n_clusters: int) -> np.ndarray:
    """``(256,)`` lut: cluster -> dataset class by a one-to-one Hungarian matching on the
    (area-weighted) overlap ``cm_raw`` (rows dataset ids, columns cluster ids); unmatched -> ``k``."""
    from scipy.optimize import linear_sum_assignment

    lut = np.full(256, k, np.int64)
    rows, cols = linear_sum_assignment(-cm_raw[:k, :n_clusters].T)
    lut[rows] = cols
    return lut


class _Region:
    """Running sums of one region (whole image, a band or the seam), area-weighted and plain.

    The confusion is kept in the model's own ids (columns) against dataset ids (rows) and mapped
    to dataset ids at :meth:`report`, so a label-free model's clusters can be matched after the pass.
    """

    def __init__(self, k: int, n_model: int = 0):
        self.k, self.n = k, max(k, n_model) + 1
        self.cm = {"area": np.zeros((self.n, self.n)), "plain": np.zeros((self.n, self.n))}
        self.depth = {"area": np.zeros(4), "plain": np.zeros(4)}  # sum w*|e|/g, w*e^2, w*[d1], w

    def add(self, sel, labels, gt_l, depth, gt_d, area) -> None:
        for key, w in (("area", area[sel]), ("plain", None)):
            if labels is not None:
                self.cm[key] += metrics.confusion_matrix(labels[sel], gt_l[sel], self.n, w)
            if depth is not None:
                p, g = depth[sel].astype(np.float64), gt_d[sel].astype(np.float64)
                ww = np.ones_like(g) if w is None else w.astype(np.float64)
                ok = np.isfinite(g) & (g > 0) & np.isfinite(p)
                p, g, ww = p[ok], g[ok], ww[ok]
                ratio = np.maximum(p / g, g / np.maximum(p, 1e-12))
                self.depth[key] += [(ww * np.abs(p - g) / g).sum(), (ww * (p - g) ** 2).sum(),
                                    (ww * (ratio < 1.25)).sum(), ww.sum()]

    def mapped(self, key: str, lut: np.ndarray) -> np.ndarray:
        """The ``(K + 1, K + 1)`` confusion in dataset ids, model ids mapped through ``lut``."""
        out = np.zeros((self.k + 1, self.k + 1))
        raw = self.cm[key][:self.k + 1]
        for j in range(self.n):
            out[:, min(int(lut[j]), self.k)] += raw[:, j]
        return out

    def report(self, names: list[str], evaluated: list[int], seg: bool, depth: bool, lut=None) -> dict:
        out = {}
        for key, sfx in (("area", "_area"), ("plain", "")):
            if seg:
                iou = metrics.per_class_iou(self.mapped(key, lut))[evaluated]
                out["miou" + sfx] = 100.0 * float(np.nanmean(iou)) if np.isfinite(iou).any() else None
                out["per_class_iou" + ("" if key == "area" else "_plain")] = {
                    names[i]: (None if np.isnan(v) else 100.0 * float(v)) for i, v in zip(evaluated, iou)}
            if depth:
                s = self.depth[key]
                ok = s[3] > 0
                out["absrel" + sfx] = float(s[0] / s[3]) if ok else None
                out["rmse" + sfx] = float(math.sqrt(s[1] / s[3])) if ok else None
                out["delta1" + sfx] = float(s[2] / s[3]) if ok else None
        return out


def _align_scale_shift(pred: np.ndarray, gt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``s * pred + t`` with ``(s, t)`` the weighted least-squares fit to valid ``gt``; kept positive."""
    ok = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if ok.sum() < 2:
        return pred
    sw = np.sqrt(w[ok])
    a = np.stack([pred[ok], np.ones(ok.sum())], 1) * sw[:, None]
    s, t = np.linalg.lstsq(a, gt[ok] * sw, rcond=None)[0]
    return np.where(pred > 0, np.maximum(s * pred + t, 1e-3), 0.0).astype(np.float32)


def _regions(h: int, w: int) -> dict:
    """Row/column selections: ``all``, each latitude band, and ``seam``."""
    lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    band = np.minimum(((90.0 - lat) // 30).astype(int), 5)
    n = max(1, math.ceil(SEAM_FRACTION * w))
    cols = np.r_[0:n, w - n:w]
    sel = {"all": (slice(None), slice(None)), "seam": (slice(None), cols)}
    sel.update({BANDS[b]: (band == b, slice(None)) for b in range(6)})
    return sel


def evaluate(predictor: Predictor, data: DatasetFolder, max_images: int | None = None, progress: bool = True) -> dict:
    """Evaluate ``predictor`` on ``data`` (its first ``max_images`` stems); the report is in the module docstring."""
    from panoedge.env import machine_info
    from panoedge.geometry import erp_area_weights

    stems = data.stems[: max_images] if max_images else data.stems
    if max_images is not None and max_images < 1:
        raise UsageError(f"--max-images {max_images}: must be >= 1")
    mods = data.modalities
    seg = predictor.num_classes > 0 and "semantic" in mods
    dep = predictor.depth_kind is not None and "depth" in mods
    if not (seg or dep):
        raise UsageError(f"nothing to evaluate: {predictor.name} predicts {'classes' if predictor.num_classes else ''}"
                         f"{' and ' if predictor.num_classes and predictor.depth_kind else ''}"
                         f"{'depth' if predictor.depth_kind else ''}, {data.root} has {', '.join(mods)}")
    k = len(data.classes)
    free = seg and is_label_free(predictor.classes)
    if free:  # clusters: matched to classes one-to-one after the pass (the usual unsupervised score)
        pred_lut, gt_lut = np.arange(256), np.where(np.arange(256) < k, np.arange(256), 255)
        match = {"by": "hungarian", "evaluated": list(data.classes), "dataset_only": [], "model_only": []}
    else:
        pred_lut, gt_lut, match = match_classes(predictor, data.classes) if seg else (None, None, None)
    evaluated = [data.classes.index(c) for c in match["evaluated"]] if seg else []
    relative = dep and predictor.depth_kind == "relative"
    regions = {name: _Region(k, predictor.num_classes) for name in ("all", *BANDS, "seam")}
    for stem in tqdm(stems, desc="eval", unit="img", disable=not progress):
        sample = data.load(stem, ["rgb"] + (["semantic"] if seg else []) + (["depth"] if dep else []))
        rgb = check_erp_rgb(sample["rgb"], str(data.files["rgb"][stem]))
        h, w = rgb.shape[:2]
        for m in ("semantic", "depth"):
            if m in sample and sample[m].shape != (h, w):
                raise DataError(f"{data.files[m][stem]}: {sample[m].shape[1]}x{sample[m].shape[0]}, its image is {w}x{h}")
        labels, depth = predictor.predict(rgb)
        area = erp_area_weights(h, w, np.float64)
        lab = gt_l = gt_d = None
        if seg and "semantic" in sample:
            lab, gt_l = (labels if free else pred_lut[labels]), gt_lut[sample["semantic"]]
        if dep and "depth" in sample:
            gt_d = sample["depth"]
            depth = _align_scale_shift(depth, gt_d, area) if relative else depth
        else:
            depth = None
        for name, sel in _regions(h, w).items():
            regions[name].add(sel, lab, gt_l, depth, gt_d, area)
    names = list(data.classes) if seg else []
    lut = np.arange(256) if seg else None
    if free:
        lut = match_clusters(regions["all"].cm["area"], k, predictor.num_classes)
        match["clusters"] = {c: (names[lut[i]] if lut[i] < k else None) for i, c in enumerate(predictor.classes)}
    rep = {"schema": SCHEMA, "model": predictor.name, "mode": getattr(predictor, "mode", "erp"),
           "data": str(data.root), "machine": machine_info(backends_used=[predictor.backend]),
           **regions["all"].report(names, evaluated, seg, dep, lut),
           "by_latitude_band": {b: regions[b].report(names, evaluated, seg, dep, lut) for b in BANDS},
           "seam": {**regions["seam"].report(names, evaluated, seg, dep, lut), "fraction_each_side": SEAM_FRACTION},
           "n_images": len(stems), "depth_kind": predictor.depth_kind if dep else None,
           "depth_alignment": "scale_shift" if relative else "none", "class_match": match}
    layout = getattr(predictor, "layout", None)
    if layout is not None:
        rep["layout"] = layout.to_dict()
    return rep


def _inputs(path, rig: str | None = None, every: int = 1) -> list[tuple[str, Path]]:
    """``(stem, file)`` of the panoramas to predict: one image file, or anything
    :func:`panoedge.data.resolve_data` reads (a folder of panoramas found recursively, a dataset
    folder's ``rgb/``, ``structured3d:PATH`` ..., a dual-fisheye recording with ``rig``)."""
    from panoedge.data import resolve_data
    from panoedge.io import IMAGE_EXTS

    p = Path(str(path)).expanduser()
    if p.is_file() and rig is None:
        if p.suffix.lower() not in IMAGE_EXTS:
            raise DataError(f"{p}: not an image ({', '.join(IMAGE_EXTS)})")
        return [(p.stem, p)]
    ds = resolve_data(str(path), rig=rig, every=every)
    return [(stem, ds.files["rgb"][stem]) for stem in ds.stems]


def predict_images(predictor: Predictor, inputs: str | Path, out_dir: str | Path, progress: bool = True,
                   rig: str | None = None, every: int = 1) -> list[str]:
    """Run ``predictor`` on an image or a folder of ERP panoramas; returns the stems written.

    Per image ``STEM``: ``out/labels/STEM.png`` (uint8 class ids of the model's classes),
    ``out/overlay/STEM.png`` (half RGB, half class colour), ``out/depth/STEM.png`` (16-bit
    millimetres, for programs: it looks black in an image viewer; relative depth in its own
    units, median 1 "metre") and ``out/depth_color/STEM.png`` (near red to far blue, with its
    scale, for people). A file that is not 2:1 is a ``UsageError`` naming it.
    """
    from panoedge.io import colorize_labels, depth_with_scale, read_rgb, write_depth, write_labels, write_rgb

    files, out = _inputs(inputs, rig, every), Path(out_dir)
    colors = predictor.colors
    if colors is None and predictor.num_classes:
        colors = np.random.default_rng(12345).integers(40, 255, (predictor.num_classes, 3)).astype(np.uint8)
    stems = []
    for stem, f in tqdm(files, desc="predict", unit="img", disable=not progress):
        rgb = check_erp_rgb(read_rgb(f), str(f))
        labels, depth = predictor.predict(rgb)
        if labels is not None:
            write_labels(out / "labels" / f"{stem}.png", labels)
            overlay = (rgb >> 1) + (colorize_labels(labels, colors) >> 1)  # uint8 halves: no float copy at 5.7K
            write_rgb(out / "overlay" / f"{stem}.png", np.where(labels[..., None] == 255, rgb, overlay))
        if depth is not None:
            write_depth(out / "depth" / f"{stem}.png", depth)
            unit = "m" if predictor.depth_kind in (None, "metric") else "rel."
            write_rgb(out / "depth_color" / f"{stem}.png", depth_with_scale(depth, unit))
        stems.append(stem)
    return stems
