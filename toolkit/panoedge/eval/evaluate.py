"""``panoedge eval`` and ``panoedge predict``: a model (student, ONNX export or teacher) on ERP data.

:func:`evaluate` returns an :class:`EvalReport`, the CONVENTIONS.md evaluation report (schema
``panoedge.eval/1``): ``miou_area``/``miou`` (percent), ``per_class_iou`` (area-weighted, percent;
``per_class_iou_plain`` beside it), ``absrel_area``/``absrel``, ``rmse_area``/``rmse`` (metres),
``delta1_area``/``delta1`` (fractions), the same block per 30-degree latitude band
(``by_latitude_band``, north to south) and for the seam (``seam``: the 5% of columns at each edge of
the ERP image), and ``n_images``. Area weights are solid angles (:func:`panoedge.geometry.erp_area_weights`).

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

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from panoedge import metrics
from panoedge.data.folder import DatasetFolder
from panoedge.errors import DataError, UsageError
from panoedge.eval.predictors import MODES, Predictor, check_erp_rgb, load_predictor
from panoedge.io import IGNORE
from panoedge.progress import tqdm
from panoedge.results import Record, Result, json_field

__all__ = ["MODES", "SCHEMA", "ClassMatch", "EvalReport", "Predictions", "Predictor", "RegionMetrics", "SeamMetrics",
           "apply_class_map", "evaluate", "evaluate_model", "load_predictor", "map_model_classes", "predict_images",
           "predict_model"]

SCHEMA = "panoedge.eval/1"
BAND_DEG = 30
"""Height of a latitude band, degrees: six bands from pole to pole, equator split at 0."""
BANDS = ("60N-90N", "30N-60N", "0-30N", "0-30S", "30S-60S", "60S-90S")
SEAM_FRACTION = 0.05
"""Share of the ERP width scored as the seam at each edge (where wrap-around mistakes show)."""
DELTA1 = 1.25
"""delta1 threshold: the share of pixels with ``max(pred / gt, gt / pred)`` below it (the usual 1.25)."""
RATIO_EPS = 1e-12
"""Floor of a predicted depth in the ``gt / pred`` ratio (a zero prediction is a miss, not a division error)."""
MIN_ALIGNED_DEPTH_M = 1e-3
"""Scale-and-shift-aligned depth is kept at least this far away (metres): alignment must not make it negative."""
LUT_SIZE = 256
"""Entries of a class-id lookup table: every uint8 label value."""
PREVIEW_COLOR_SEED = 12345
"""Seed of the class colours of ``predict`` overlays for a model without colours (stable across runs)."""
PREVIEW_COLOR_RANGE = (40, 255)
"""RGB values of those colours: never near black, so a class stays visible over a dark image."""
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


def map_model_classes(predictor: Predictor, class_map: str) -> Predictor:
    """``predictor`` reporting on ``class_map``'s target classes (its source classes are the model's),
    as ``panoedge predict --class-map`` runs it; a model without class names is a ``UsageError``."""
    from panoedge.data.classmap import load_class_map, map_target_classes
    from panoedge.eval.predictors import with_class_map

    if predictor.classes is None:
        raise UsageError(f"{predictor.name} names no classes; --class-map maps named classes")
    return with_class_map(predictor, load_class_map(class_map, predictor.classes, map_target_classes(class_map)))


def _norm(name: str) -> str:
    return " ".join(str(name).split()).lower()


@dataclass(frozen=True)
class ClassMatch(Record):
    """How the model's classes met the dataset's: ``by`` ``"name"``, ``"index"`` or ``"hungarian"``;
    the dataset classes ``evaluated``; those only one side has; for ``hungarian``, each cluster's class."""

    by: str
    evaluated: list[str]
    dataset_only: list[str]
    model_only: list[str]
    clusters: dict[str, str | None] | None = json_field(omit_none=True, default=None)


def match_classes(predictor: Predictor, dataset_classes) -> tuple[np.ndarray, np.ndarray, ClassMatch]:
    """``(pred_lut (256,), gt_lut (256,), match)``: model ids -> dataset ids (``K`` = not in the
    dataset), dataset ids -> themselves or 255 where the model lacks the class."""
    ds = [str(c) for c in dataset_classes]
    k = len(ds)
    pred_lut, gt_lut = np.full(LUT_SIZE, k, np.int64), np.full(LUT_SIZE, IGNORE, np.int64)
    if predictor.classes is None:
        if predictor.num_classes != k:
            raise UsageError(f"{predictor.name} has {predictor.num_classes} unnamed classes, the dataset {k} "
                             f"({', '.join(ds)}); classes cannot be matched")
        pred_lut[:k] = gt_lut[:k] = np.arange(k)
        return pred_lut, gt_lut, ClassMatch(by="index", evaluated=ds, dataset_only=[], model_only=[])
    where = {_norm(c): i for i, c in enumerate(ds)}
    for i, c in enumerate(predictor.classes):
        pred_lut[i] = where.get(_norm(c), k)
    common = sorted({int(v) for v in pred_lut[:len(predictor.classes)] if v < k})
    if not common:
        raise UsageError(f"no class of {predictor.name} ({', '.join(predictor.classes)}) is in the dataset "
                         f"({', '.join(ds)}); classes are matched by name")
    gt_lut[common] = common
    mine = {_norm(c) for c in predictor.classes}
    return pred_lut, gt_lut, ClassMatch(by="name", evaluated=[ds[i] for i in common],
                                        dataset_only=[c for c in ds if _norm(c) not in mine],
                                        model_only=[c for c in predictor.classes if _norm(c) not in where])


def is_label_free(classes) -> bool:
    """Whether ``classes`` are a label-free student's clusters (``cluster00`` ...)."""
    return bool(classes) and all(re.fullmatch(r"cluster\d+", str(c)) for c in classes)


def match_clusters(cm_raw: np.ndarray, k: int, n_clusters: int) -> np.ndarray:
    """``(256,)`` lut: cluster -> dataset class by a one-to-one Hungarian matching on the
    (area-weighted) overlap ``cm_raw`` (rows dataset ids, columns cluster ids); unmatched -> ``k``."""
    from scipy.optimize import linear_sum_assignment

    lut = np.full(LUT_SIZE, k, np.int64)
    rows, cols = linear_sum_assignment(-cm_raw[:k, :n_clusters].T)
    lut[rows] = cols
    return lut


SEG_KEYS = ("miou_area", "per_class_iou", "miou", "per_class_iou_plain")
DEPTH_KEYS = ("absrel_area", "rmse_area", "delta1_area", "absrel", "rmse", "delta1")


@dataclass(frozen=True)
class RegionMetrics(Record):
    """The scores of one region (whole image, a latitude band or the seam): mIoU and per-class IoU in
    percent, AbsRel, RMSE (metres) and delta1 (fraction), area-weighted (``_area``; ``per_class_iou``)
    and plain. A score is ``None`` where the region has nothing to score; the JSON has the segmentation
    keys only when classes were scored (``scored_classes``) and the depth keys only when depth was."""

    miou_area: float | None = None
    per_class_iou: dict[str, float | None] | None = None
    absrel_area: float | None = None
    rmse_area: float | None = None
    delta1_area: float | None = None
    miou: float | None = None
    per_class_iou_plain: dict[str, float | None] | None = None
    absrel: float | None = None
    rmse: float | None = None
    delta1: float | None = None
    scored_classes: bool = json_field(json=False, default=False)
    scored_depth: bool = json_field(json=False, default=False)

    def to_dict(self) -> dict:
        leave_out = (() if self.scored_classes else SEG_KEYS) + (() if self.scored_depth else DEPTH_KEYS)
        return {k: v for k, v in super().to_dict().items() if k not in leave_out}

    def row(self, name: str) -> str:
        """One line of :meth:`EvalReport.format`'s table."""
        return (f"{name:<10} {_fmt(self.miou_area, True):>9} {_fmt(self.miou, True):>6} "
                f"{_fmt(self.absrel_area):>11} {_fmt(self.absrel):>7} {_fmt(self.rmse_area):>7} "
                f"{_fmt(self.delta1_area):>7}")


@dataclass(frozen=True)
class SeamMetrics(RegionMetrics):
    """:class:`RegionMetrics` of the seam, with the share of the width it covers at each edge."""

    fraction_each_side: float = SEAM_FRACTION


def _fmt(v, pct: bool = False) -> str:
    return "   -  " if v is None else (f"{v:6.1f}" if pct else f"{v:6.3f}")


HEADLINE_KEYS = ("model", "mode", "miou_area", "miou", "per_class_iou", "absrel_area", "absrel", "rmse_area",
                 "delta1_area", "n_images", "depth_alignment", "seam")
"""The parts of an evaluation report a summary keeps (:meth:`EvalReport.headline`)."""


@dataclass(frozen=True)
class EvalReport(Result):
    """What :func:`evaluate` measured (the module docstring says what each score is). The JSON form is
    flat as CONVENTIONS.md has it: the whole image's scores (:attr:`overall`) sit at the top level."""

    SCHEMA = SCHEMA

    model: str
    mode: str
    data: str
    machine: dict
    overall: RegionMetrics
    by_latitude_band: dict[str, RegionMetrics]
    seam: SeamMetrics
    n_images: int
    depth_kind: str | None
    depth_alignment: str
    class_match: ClassMatch | None
    layout: Any = json_field(omit_none=True, default=None)

    def to_dict(self) -> dict:
        out = {}
        for key, value in super().to_dict().items():
            if key == "overall":
                out.update(value)
            else:
                out[key] = value
        return out

    def headline(self) -> dict:
        """The :data:`HEADLINE_KEYS` of the JSON form that this report has (a model without depth has no
        ``absrel*``): what a distillation run keeps of each evaluation."""
        d = self.to_dict()
        return {k: d[k] for k in HEADLINE_KEYS if k in d}

    def format(self) -> str:
        head = (f"{self.model} ({self.mode}) on {self.data}: {self.n_images} panoramas, depth alignment "
                f"{self.depth_alignment}; area-weighted unless marked plain")
        table = [f"{'region':<10} {'mIoU area':>9} {'mIoU':>6} {'AbsRel area':>11} {'AbsRel':>7} {'RMSE':>7} "
                 f"{'delta1':>7}",
                 self.overall.row("all"), *(r.row(name) for name, r in self.by_latitude_band.items()),
                 self.seam.row("seam")]
        return "\n".join([head, *table])


class _Region:
    """Running sums of one region (whole image, a band or the seam), area-weighted and plain.

    The confusion is kept in the model's own ids (columns) against dataset ids (rows) and mapped
    to dataset ids at :meth:`report`, so a label-free model's clusters can be matched after the pass.
    """

    def __init__(self, k: int, n_model: int = 0):
        self.k, self.n = k, max(k, n_model) + 1
        self.cm = {"area": np.zeros((self.n, self.n)), "plain": np.zeros((self.n, self.n))}
        self.depth = {"area": np.zeros(4), "plain": np.zeros(4)}  # sum w*|e|/g, w*e^2, w*[d1], w

    def add(self, sel, *, labels, gt_labels, depth, gt_depth, area) -> None:
        for key, w in (("area", area[sel]), ("plain", None)):
            if labels is not None:
                self.cm[key] += metrics.confusion_matrix(labels[sel], gt_labels[sel], num_classes=self.n, weights=w)
            if depth is not None:
                p, g = depth[sel].astype(np.float64), gt_depth[sel].astype(np.float64)
                ww = np.ones_like(g) if w is None else w.astype(np.float64)
                ok = np.isfinite(g) & (g > 0) & np.isfinite(p)
                p, g, ww = p[ok], g[ok], ww[ok]
                ratio = np.maximum(p / g, g / np.maximum(p, RATIO_EPS))
                self.depth[key] += [(ww * np.abs(p - g) / g).sum(), (ww * (p - g) ** 2).sum(),
                                    (ww * (ratio < DELTA1)).sum(), ww.sum()]

    def mapped(self, key: str, lut: np.ndarray) -> np.ndarray:
        """The ``(K + 1, K + 1)`` confusion in dataset ids, model ids mapped through ``lut``."""
        out = np.zeros((self.k + 1, self.k + 1))
        raw = self.cm[key][:self.k + 1]
        for j in range(self.n):
            out[:, min(int(lut[j]), self.k)] += raw[:, j]
        return out

    def report(self, *, names: list[str], evaluated: list[int], seg: bool, depth: bool, lut=None,
               kind: type[RegionMetrics] = RegionMetrics) -> RegionMetrics:
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
        return kind(**out, scored_classes=seg, scored_depth=depth)


def _align_scale_shift(pred: np.ndarray, gt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``s * pred + t`` with ``(s, t)`` the weighted least-squares fit to valid ``gt``; kept positive."""
    ok = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if ok.sum() < 2:
        return pred
    sw = np.sqrt(w[ok])
    a = np.stack([pred[ok], np.ones(ok.sum())], 1) * sw[:, None]
    s, t = np.linalg.lstsq(a, gt[ok] * sw, rcond=None)[0]
    return np.where(pred > 0, np.maximum(s * pred + t, MIN_ALIGNED_DEPTH_M), 0.0).astype(np.float32)


def _regions(h: int, w: int) -> dict:
    """Row/column selections: ``all``, each latitude band, and ``seam``."""
    lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    band = np.minimum(((90.0 - lat) // BAND_DEG).astype(int), len(BANDS) - 1)
    n = max(1, math.ceil(SEAM_FRACTION * w))
    cols = np.r_[0:n, w - n:w]
    sel = {"all": (slice(None), slice(None)), "seam": (slice(None), cols)}
    sel.update({BANDS[b]: (band == b, slice(None)) for b in range(len(BANDS))})
    return sel


@dataclass(frozen=True)
class _Plan:
    """What one evaluation scores and how the model's class ids meet the dataset's."""

    seg: bool
    depth: bool
    label_free: bool
    relative: bool
    pred_lut: np.ndarray | None
    gt_lut: np.ndarray | None
    match: ClassMatch | None


def _plan(predictor: Predictor, data: DatasetFolder) -> _Plan:
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
        ids = np.arange(LUT_SIZE)
        pred_lut, gt_lut = ids, np.where(ids < k, ids, IGNORE)
        match = ClassMatch(by="hungarian", evaluated=list(data.classes), dataset_only=[], model_only=[])
    else:
        pred_lut, gt_lut, match = match_classes(predictor, data.classes) if seg else (None, None, None)
    return _Plan(seg=seg, depth=dep, label_free=free, relative=dep and predictor.depth_kind == "relative",
                 pred_lut=pred_lut, gt_lut=gt_lut, match=match)


def _score_image(predictor: Predictor, data: DatasetFolder, *, stem: str, plan: _Plan, regions: dict) -> None:
    """Predict panorama ``stem`` and add it to every region's sums."""
    from panoedge.geometry import erp_area_weights

    sample = data.load(stem, ["rgb"] + (["semantic"] if plan.seg else []) + (["depth"] if plan.depth else []))
    rgb = check_erp_rgb(sample["rgb"], str(data.files["rgb"][stem]))
    h, w = rgb.shape[:2]
    for m in ("semantic", "depth"):
        if m in sample and sample[m].shape != (h, w):
            raise DataError(f"{data.files[m][stem]}: {sample[m].shape[1]}x{sample[m].shape[0]}, its image is {w}x{h}")
    labels, depth = predictor.predict(rgb)
    area = erp_area_weights(h, w, np.float64)
    lab = gt_l = gt_d = None
    if plan.seg and "semantic" in sample:
        lab, gt_l = (labels if plan.label_free else plan.pred_lut[labels]), plan.gt_lut[sample["semantic"]]
    if plan.depth and "depth" in sample:
        gt_d = sample["depth"]
        depth = _align_scale_shift(depth, gt_d, area) if plan.relative else depth
    else:
        depth = None
    for name, sel in _regions(h, w).items():
        regions[name].add(sel, labels=lab, gt_labels=gt_l, depth=depth, gt_depth=gt_d, area=area)


def evaluate(predictor: Predictor, data: DatasetFolder, max_images: int | None = None,
             progress: bool = True) -> EvalReport:
    """Evaluate ``predictor`` on ``data`` (its first ``max_images`` stems); the report is in the module docstring."""
    from panoedge.env import machine_info

    stems = data.stems[: max_images] if max_images else data.stems
    if max_images is not None and max_images < 1:
        raise UsageError(f"--max-images {max_images}: must be >= 1")
    plan = _plan(predictor, data)
    k = len(data.classes)
    evaluated = [data.classes.index(c) for c in plan.match.evaluated] if plan.seg else []
    regions = {name: _Region(k, predictor.num_classes) for name in ("all", *BANDS, "seam")}
    for stem in tqdm(stems, desc="eval", unit="img", disable=not progress):
        _score_image(predictor, data, stem=stem, plan=plan, regions=regions)
    names = list(data.classes) if plan.seg else []
    lut, match = (np.arange(LUT_SIZE) if plan.seg else None), plan.match
    if plan.label_free:
        lut = match_clusters(regions["all"].cm["area"], k, predictor.num_classes)
        match = dataclasses.replace(match, clusters={c: (names[lut[i]] if lut[i] < k else None)
                                                     for i, c in enumerate(predictor.classes)})
    scores = dict(names=names, evaluated=evaluated, seg=plan.seg, depth=plan.depth, lut=lut)
    return EvalReport(
        model=predictor.name, mode=getattr(predictor, "mode", "erp"), data=str(data.root),
        machine=machine_info(backends_used=[predictor.backend]),
        overall=regions["all"].report(**scores),
        by_latitude_band={b: regions[b].report(**scores) for b in BANDS},
        seam=regions["seam"].report(**scores, kind=SeamMetrics),
        n_images=len(stems), depth_kind=predictor.depth_kind if plan.depth else None,
        depth_alignment="scale_shift" if plan.relative else "none", class_match=match,
        layout=getattr(predictor, "layout", None))


def evaluate_model(model: str, data: str | Path, *, mode: str = "erp", device: str = "auto", layout=None,
                   class_map: str | None = None, rig: str | None = None, every: int = 1,
                   max_images: int | None = None, progress: bool = True) -> EvalReport:
    """``panoedge eval``: MODEL (:func:`load_predictor`; ``layout`` shapes tangent patches) on DATA
    (:func:`panoedge.data.resolve_data`, ``rig``/``every`` for a dual-fisheye recording), read through
    ``class_map`` (:func:`apply_class_map`); see :func:`evaluate`."""
    from panoedge.data import resolve_data

    predictor = load_predictor(model, mode=mode, device=device, layout=layout)
    predictor, ds, _ = apply_class_map(predictor, resolve_data(data, rig=rig, every=every), class_map)
    return evaluate(predictor, ds, max_images=max_images, progress=progress)


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


PREDICTION_FOLDERS = ("labels", "overlay", "depth", "depth_color")
"""Sub-folders :func:`predict_images` writes (each only for the heads the model has)."""


@dataclass(frozen=True)
class Predictions(Result):
    """What :func:`predict_images` wrote: the model, the output folder and the stems, in input order."""

    SCHEMA = "panoedge.predict/1"

    model: str
    out: Path
    stems: tuple[str, ...]

    def format(self) -> str:
        folders = ", ".join(f"{f}/" for f in PREDICTION_FOLDERS)
        return f"wrote {len(self.stems)} prediction(s) to {self.out} ({folders})"


def predict_images(predictor: Predictor, inputs: str | Path, out_dir: str | Path, progress: bool = True,
                   rig: str | None = None, every: int = 1) -> Predictions:
    """Run ``predictor`` on an image or a folder of ERP panoramas; returns what it wrote.

    Per image ``STEM``: ``out/labels/STEM.png`` (uint8 class ids of the model's classes),
    ``out/overlay/STEM.png`` (half RGB, half class colour), ``out/depth/STEM.png`` (16-bit
    millimetres, for programs: it looks black in an image viewer; relative depth in its own
    units, median 1 "metre") and ``out/depth_color/STEM.png`` (near red to far blue, with its
    scale, for people). A file that is not 2:1 is a ``UsageError`` naming it.
    """
    from panoedge.io import colorize_labels, depth_with_scale, read_rgb, write_depth, write_labels, write_rgb

    files, out = _inputs(inputs, rig=rig, every=every), Path(out_dir)
    colors = predictor.colors
    if colors is None and predictor.num_classes:
        rng = np.random.default_rng(PREVIEW_COLOR_SEED)
        colors = rng.integers(*PREVIEW_COLOR_RANGE, (predictor.num_classes, 3)).astype(np.uint8)
    stems = []
    for stem, f in tqdm(files, desc="predict", unit="img", disable=not progress):
        rgb = check_erp_rgb(read_rgb(f), str(f))
        labels, depth = predictor.predict(rgb)
        if labels is not None:
            write_labels(out / "labels" / f"{stem}.png", labels)
            overlay = (rgb >> 1) + (colorize_labels(labels, colors) >> 1)  # uint8 halves: no float copy at 5.7K
            write_rgb(out / "overlay" / f"{stem}.png", np.where(labels[..., None] == IGNORE, rgb, overlay))
        if depth is not None:
            write_depth(out / "depth" / f"{stem}.png", depth)
            unit = "m" if predictor.depth_kind in (None, "metric") else "rel."
            write_rgb(out / "depth_color" / f"{stem}.png", depth_with_scale(depth, unit))
        stems.append(stem)
    return Predictions(model=predictor.name, out=out, stems=tuple(stems))


def predict_model(model: str, inputs: str | Path, out_dir: str | Path, *, mode: str = "erp", device: str = "auto",
                  layout=None, class_map: str | None = None, rig: str | None = None, every: int = 1,
                  progress: bool = True) -> Predictions:
    """``panoedge predict``: MODEL (:func:`load_predictor`) on INPUTS, its classes mapped through
    ``class_map`` (:func:`map_model_classes`); see :func:`predict_images`."""
    predictor = load_predictor(model, mode=mode, device=device, layout=layout)
    if class_map is not None:
        predictor = map_model_classes(predictor, class_map)
    return predict_images(predictor, inputs, out_dir, progress=progress, rig=rig, every=every)
