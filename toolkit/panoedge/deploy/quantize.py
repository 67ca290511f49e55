"""``panoedge quantize``: calibrated QDQ INT8 with a measured accuracy budget.

Steps (:func:`quantize_model`):

1. Read the FP32 ONNX (a corrupt or foreign file is a ``DataError``) and its preprocessing.
2. Calibrate on real images of DATA (:mod:`panoedge.deploy.calib`; no data is an error, never
   random scales); keep the ranges (``*.ranges.json``, ONNX Runtime's format) and write the
   TensorRT calibration cache (``*.calib.cache``) from the same statistics.
3. Quantize to QDQ (:mod:`panoedge.deploy.qdq`), evaluate FP32 and INT8 on held-out data
   (area-weighted mIoU, depth AbsRel). The depth head's tail (sigmoid -> metres -> upsample)
   always stays float (:func:`panoedge.deploy.qdq.float_tail`).
4. Over budget: scan per-layer sensitivity and keep the most sensitive layers in float until
   within budget (:mod:`panoedge.deploy.sensitivity`).
5. Time both models on ONNX Runtime CPU here; the report is a :class:`QuantizeResult`
   (schema ``panoedge.quantize/1``).

Outputs appear only complete: every file is written beside its destination and moved into place.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from panoedge.deploy import calib as calib_mod
from panoedge.deploy.bench import Cases
from panoedge.deploy.evaluate import BudgetCheck, Metrics, budget_check, predict, score
from panoedge.deploy.onnx_io import load_onnx, model_info
from panoedge.deploy.qdq import ACTIVATIONS, float_tail, qdq_summary, quantize_qdq, quantized_nodes
from panoedge.deploy.trt_cache import write_cache
from panoedge.errors import UsageError, unknown_name
from panoedge.home import shareable
from panoedge.results import Record, Result, json_field

SCHEMA = "panoedge.quantize/1"
#: Untimed runs per model before the latency is measured (first runs pay for allocation and caches).
LATENCY_WARMUP = 3
#: Rows of the sensitivity scan the report keeps (most sensitive first; the rest only lengthen it).
SENSITIVITY_ROWS_KEPT = 20
#: Characters of the calibration set's sha256 that the summary prints (enough to tell sets apart).
SHA_PRINTED = 16
_NAN = float("nan")


@dataclass(frozen=True)
class QuantizeConfig:
    """Everything a quantization depends on; the one place its defaults live."""

    method: str = "entropy"
    n: int = 256
    n_eval: int = 16
    budget_miou: float = 1.0
    budget_absrel: float = 0.03
    activations: str = "int8"
    per_channel: bool = True
    evaluate: bool = True
    scan_images: int = 4
    tensorrt: str = "8.6.2"
    threads: int | None = None
    latency_repeat: int = 20

    def validate(self) -> "QuantizeConfig":
        if self.method not in calib_mod.METHODS:
            raise unknown_name("calibration method", self.method, calib_mod.METHODS)
        if self.activations not in ACTIVATIONS:
            raise unknown_name("activation type", self.activations, ACTIVATIONS)
        if self.n < 1:
            raise UsageError(f"--n {self.n}: calibration needs at least one image")
        if self.evaluate and self.n_eval < 1:
            raise UsageError(f"--n-eval {self.n_eval}: evaluation needs at least one image (or --no-eval)")
        if self.budget_miou < 0 or self.budget_absrel < 0:
            raise UsageError("accuracy budgets must be >= 0")
        return self


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class Calibration(Record):
    """The calibration set and the tensors the TensorRT cache leaves to float."""

    method: str
    n_images: int
    sha256: str
    data: str
    activations: str
    trt_cache_float_tensors: tuple[str, ...] = ()

    def format(self) -> str:
        return (f"calibration: {self.n_images} images ({self.method}, {self.activations} activations), "
                f"sha256 {self.sha256[:SHA_PRINTED]}")


@dataclass(frozen=True)
class Evaluation(Record):
    """The held-out images the accuracy was measured on."""

    n_images: int
    stems: tuple[str, ...]
    data: str


@dataclass(frozen=True)
class Budget(Record):
    """The accuracy budget: its limits, the first (all-INT8) check and the final one; or why there is none."""

    within: bool | None
    miou_points: float | None = None
    absrel_relative: float | None = None
    first_pass: BudgetCheck | None = None
    miou_drop: float | None = None
    absrel_rel_increase: float | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        if self.note is not None:  # not evaluated: the note says why
            return {"within": self.within, "note": self.note}
        return {"miou_points": self.miou_points, "absrel_relative": self.absrel_relative,
                "first_pass": self.first_pass.to_dict(), "miou_drop": self.miou_drop,
                "absrel_rel_increase": self.absrel_rel_increase, "within": self.within}

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        if "note" in d:
            return cls(within=d["within"], note=d["note"])
        return cls(within=d["within"], miou_points=d["miou_points"], absrel_relative=d["absrel_relative"],
                   first_pass=BudgetCheck.from_dict(d["first_pass"]), miou_drop=d["miou_drop"],
                   absrel_rel_increase=d["absrel_rel_increase"])

    def format(self) -> str:
        drop = "n/a" if self.miou_drop is None else f"{self.miou_drop:.2f}"
        rel = "n/a" if self.absrel_rel_increase is None else f"{100 * self.absrel_rel_increase:+.2f}%"
        return (f"budget: mIoU drop {drop} <= {self.miou_points} points, "
                f"AbsRel {rel} <= +{100 * self.absrel_relative:.1f}%: "
                + ("within" if self.within else
                   "NOT within, even with every scanned compute layer in float (data movement stays INT8)"))


@dataclass(frozen=True)
class ExcludedNode(Record):
    """A node kept in float, and why: its rank and figures in the sensitivity scan."""

    node: str
    reason: str
    label_flips: float
    log_depth: float
    score: float


@dataclass(frozen=True)
class QdqSummary(Record):
    """Q/DQ node counts of the INT8 model and whether its conv weights are per channel."""

    quantize_linear: int
    dequantize_linear: int
    int8_convs: int
    per_channel_weights: bool


@dataclass(frozen=True)
class Latency(Record):
    """FP32 vs INT8 latency on ONNX Runtime CPU here."""

    backend: str
    threads: int | None
    cases: Cases
    int8_speedup: float

    @classmethod
    def from_dict(cls, d: dict) -> "Latency":
        return cls(backend=d["backend"], threads=d["threads"], cases=Cases.from_dict(d["cases"]),
                   int8_speedup=d["int8_speedup"])

    def format(self) -> str:
        return (f"ORT CPU latency: FP32 {self.cases.fp32.latency_ms.median:.1f} ms, "
                f"INT8 {self.cases.int8.latency_ms.median:.1f} ms (x{self.int8_speedup:.2f})")


@dataclass(frozen=True)
class QuantizeFiles(Record):
    """The files written: the QDQ model, the TensorRT calibration cache and the ORT ranges."""

    int8: str
    trt_cache: str
    ranges: str


def _metrics_line(name: str, m: Metrics) -> str:
    def v(x):
        return _NAN if x is None else x

    return f"{name:<6} {v(m.miou_area):>10.2f} {v(m.miou):>7.2f} {v(m.absrel_area):>12.4f} {v(m.absrel):>8.4f}"


@dataclass(frozen=True)
class QuantizeResult(Result):
    """What :func:`quantize_model` did and measured (``quantize.json`` in a bundle)."""

    SCHEMA = SCHEMA
    model: str
    config: QuantizeConfig
    input_hw: tuple[int, int]
    calibration: Calibration
    fp32: Metrics | None
    int8: Metrics | None
    evaluation: Evaluation | None = json_field(omit_none=True)
    budget: Budget
    excluded_nodes: tuple[ExcludedNode, ...]
    exclusion_trials: tuple[dict, ...]
    float_tail: tuple[str, ...]
    sensitivity: tuple[dict, ...]
    qdq: QdqSummary
    latency: Latency
    files: QuantizeFiles

    @classmethod
    def from_dict(cls, d: dict) -> "QuantizeResult":
        """A report read back from ``quantize.json`` (a cached stage)."""
        ev = d.get("evaluation")
        return cls(model=d["model"], config=QuantizeConfig(**d["config"]), input_hw=tuple(d["input_hw"]),
                   calibration=Calibration(**{**d["calibration"], "trt_cache_float_tensors":
                                              tuple(d["calibration"]["trt_cache_float_tensors"])}),
                   fp32=Metrics.from_dict(d["fp32"]) if d["fp32"] else None,
                   int8=Metrics.from_dict(d["int8"]) if d["int8"] else None,
                   evaluation=Evaluation(n_images=ev["n_images"], stems=tuple(ev["stems"]), data=ev["data"]) if ev else None,
                   budget=Budget.from_dict(d["budget"]),
                   excluded_nodes=tuple(ExcludedNode(**e) for e in d["excluded_nodes"]),
                   exclusion_trials=tuple(d["exclusion_trials"]), float_tail=tuple(d["float_tail"]),
                   sensitivity=tuple(d["sensitivity"]), qdq=QdqSummary(**d["qdq"]),
                   latency=Latency.from_dict(d["latency"]), files=QuantizeFiles(**d["files"]))

    @classmethod
    def load(cls, path: str | Path) -> "QuantizeResult":
        """The report a finished quantization left in ``path`` (``quantize.json``)."""
        from panoedge.safe_load import load_report

        return load_report(path, cls.from_dict, schema=SCHEMA)

    def accuracy_summary(self) -> dict:
        """The accuracy block a bundle's manifest carries: FP32 and INT8 scores, the budget, the layers
        kept in float and the latency, as JSON."""
        d = self.to_dict()
        return {key: d.get(key) for key in ("fp32", "int8", "budget", "excluded_nodes", "latency")}

    def with_local_paths(self) -> "QuantizeResult":
        """This report with its model and files named relative to their folder (a folder that moves)."""
        return dataclasses.replace(self, model=Path(self.model).name, files=QuantizeFiles(
            int8=Path(self.files.int8).name, trt_cache=Path(self.files.trt_cache).name,
            ranges=Path(self.files.ranges).name))

    def format_accuracy(self) -> str:
        """Calibration, FP32 vs INT8 accuracy and budget, the layers kept in float, and the latency."""
        lines = [self.calibration.format()]
        if self.fp32:
            lines.append(f"{'':<6} {'mIoU area':>10} {'mIoU':>7} {'AbsRel area':>12} {'AbsRel':>8}   "
                         f"({self.fp32.n_images} held-out images)")
            lines += [_metrics_line("FP32", self.fp32), _metrics_line("INT8", self.int8), self.budget.format()]
        else:
            lines.append("accuracy: not evaluated (--no-eval)")
        if self.excluded_nodes:
            lines.append(f"kept in float ({len(self.excluded_nodes)}, most sensitive first; "
                         f"{len(self.exclusion_trials)} trials):")
            lines += [f"  {e.node:<44} {e.reason}" for e in self.excluded_nodes]
        else:
            lines.append("kept in float: none")
        lines.append(self.latency.format())
        return "\n".join(lines)

    def format(self) -> str:
        return (f"wrote {self.files.int8} (QDQ: {self.qdq.int8_convs} int8 convs, per-channel weights "
                f"{self.qdq.per_channel_weights}), {self.files.trt_cache}\n" + self.format_accuracy())


# ---------------------------------------------------------------- the steps


def side_paths(out: str | Path) -> dict[str, Path]:
    """Files written beside ``model.int8.onnx``: ``model.int8.calib.cache`` and ``model.int8.ranges.json``."""
    out = Path(out)
    stem = out.name[:-5] if out.name.endswith(".onnx") else out.name
    return {"trt_cache": out.with_name(f"{stem}.calib.cache"), "ranges": out.with_name(f"{stem}.ranges.json")}


def _latency(fp32_path, int8_path, hw, repeat: int, threads) -> Latency:
    """FP32 vs INT8 latency on ONNX Runtime CPU here, timed interleaved (see :mod:`panoedge.deploy.bench`)."""
    import numpy as np

    from panoedge.deploy.bench import time_interleaved
    from panoedge.runtime.ort_runner import OrtRunner

    x = {"image": np.random.default_rng(0).standard_normal((1, 3, *hw), dtype=np.float32)}
    with OrtRunner(fp32_path, "ort-cpu", threads=threads) as fp32, OrtRunner(int8_path, "ort-cpu", threads=threads) as int8:
        cases = time_interleaved({"fp32": lambda: fp32.infer(x), "int8": lambda: int8.infer(x)},
                                 warmup=LATENCY_WARMUP, repeat=repeat)
    return Latency(backend="ort-cpu", threads=threads, cases=cases, int8_speedup=cases.int8_speedup())


def trt_cache_scales(proto, amax: dict[str, float], float_nodes) -> tuple[dict[str, float], list[str]]:
    """The calibration cache's scales without the outputs of ``float_nodes`` (kept in float in the QDQ model).

    TensorRT's implicit INT8 (the DLA plan) runs a layer without a scale in FP16, so dropping them
    keeps the same layers out of INT8 as the QDQ model whose accuracy was measured. Returns
    ``(scales, dropped tensor names)``.
    """
    names = set(float_nodes)
    drop = {o for n in proto.graph.node if n.name in names for o in n.output}
    return {t: a for t, a in amax.items() if t not in drop}, sorted(drop & set(amax))


def _excluded(names: list[str], scan_rows: list[dict]) -> tuple[ExcludedNode, ...]:
    """Each node kept in float, with why: its rank and figures from the sensitivity scan."""
    why = {r["node"]: r for r in scan_rows}
    return tuple(ExcludedNode(
        node=n, reason=f"sensitivity rank {i + 1} of {len(scan_rows)}: {why[n]['label_flips']:.2%} labels "
                       f"flipped, mean |log depth ratio| {why[n]['log_depth']:.4f} when only this layer is INT8",
        label_flips=why[n]["label_flips"], log_depth=why[n]["log_depth"], score=why[n]["score"])
        for i, n in enumerate(names))


@dataclass
class _Work:
    """What the steps of one quantization share: the FP32 model, its facts and the temporary files."""

    cfg: QuantizeConfig
    model_in: Path
    proto: object
    info: dict
    data: str | Path | None
    tmp: Path
    progress: bool
    method: object = None  # ONNX Runtime's CalibrationMethod
    tail: list = dataclasses.field(default_factory=list)

    @property
    def hw(self):
        return self.info["hw"]

    @property
    def num_classes(self) -> int:
        return int(self.info["config"]["num_classes"])

    @property
    def ranges(self) -> Path:
        return self.tmp / "ranges.json"

    @property
    def int8(self) -> Path:
        return self.tmp / "model.int8.onnx"

    @property
    def trt_cache(self) -> Path:
        return self.tmp / "calib.cache"


def _read_fp32(model_in: Path):
    """The FP32 model and its facts; a dynamic-batch export is refused (calibration feeds batch 1)."""
    proto = load_onnx(model_in)
    info = model_info(proto, model_in)
    if info["inputs"][0]["shape"][0] != 1:
        raise UsageError(f"{model_in}: quantize a static batch-1 export (input shape {info['inputs'][0]['shape']})")
    return proto, info


def _calibrate(w: _Work, calib_set) -> tuple[dict, Calibration]:
    """Activation statistics on the calibration images, kept as ORT ranges; the tensors and the record."""
    from onnxruntime.quantization.calibrate import save_tensors_data

    stream = calib_mod.ImageStream(images=calib_set, hw=w.hw, pre=w.info["preprocess"],
                                   input_name=w.info["inputs"][0]["name"])
    tensors = calib_mod.calibrate(w.model_in, stream, w.cfg.method, symmetric=w.cfg.activations == "int8",
                                  progress=w.progress)
    save_tensors_data(tensors, w.ranges)
    return tensors, Calibration(method=w.cfg.method, n_images=len(calib_set), sha256=stream.sha256(), data=str(w.data),
                                activations=w.cfg.activations)


def _quantize(w: _Work, exclude) -> None:
    quantize_qdq(model_in=w.model_in, model_out=w.int8, ranges=w.ranges, method=w.method,
                 activations=w.cfg.activations, per_channel=w.cfg.per_channel, exclude=exclude)


@dataclass(frozen=True)
class _Accuracy:
    """The outcome of the accuracy step."""

    fp32: Metrics | None = None
    int8: Metrics | None = None
    evaluation: Evaluation | None = None
    budget: Budget = Budget(within=None, note="not evaluated (--no-eval)")
    excluded: tuple[str, ...] = ()
    trials: tuple[dict, ...] = ()
    scan_rows: tuple[dict, ...] = ()


def _keep_sensitive_in_float(w: _Work, ev, fp32_pred, fp32: dict):
    """Scan per-layer sensitivity and keep the most sensitive layers in float until within budget:
    ``(excluded names, INT8 metrics, trials, scan rows)``; :attr:`_Work.int8` holds the chosen model."""
    from panoedge.deploy import sensitivity
    from panoedge.deploy.evaluate import Predictions

    n_scan = max(1, min(w.cfg.scan_images, len(ev.inputs)))
    sub = Predictions(*(None if a is None else a[:n_scan] for a in (fp32_pred.labels, fp32_pred.depth)))
    qdq_proto = load_onnx(w.int8, check=False)
    scan_rows = sensitivity.scan(qdq_proto=qdq_proto, fp32_proto=w.proto, candidates=quantized_nodes(qdq_proto),
                                 inputs=ev.inputs[:n_scan], fp32_pred=sub, threads=w.cfg.threads, progress=w.progress)
    excluded, int8, trials = sensitivity.exclusion_search(
        model_in=w.model_in, model_out=w.int8, ranges=w.ranges, method=w.method, activations=w.cfg.activations,
        ranking=scan_rows, ev=ev, fp32=fp32, num_classes=w.num_classes, budget_miou=w.cfg.budget_miou, budget_absrel=w.cfg.budget_absrel, per_channel=w.cfg.per_channel,
        always=w.tail, threads=w.cfg.threads, progress=w.progress)
    return excluded, int8, trials, scan_rows


def _accuracy(w: _Work, eval_set) -> _Accuracy:
    """FP32 and INT8 on the held-out images against the budget; over budget, the exclusion search."""
    from panoedge.runtime.ort_runner import OrtRunner

    if eval_set is None:
        return _Accuracy()
    cfg, kind = w.cfg, w.info["depth_kind"]
    ev = calib_mod.load_eval_set(images=eval_set, hw=w.hw, pre=w.info["preprocess"], num_classes=w.num_classes)
    with OrtRunner(w.model_in, threads=cfg.threads) as runner:
        fp32_pred = predict(runner, ev.inputs)
    fp32 = score(pred=fp32_pred, ev=ev, num_classes=w.num_classes, depth_kind=kind)
    with OrtRunner(w.int8, threads=cfg.threads) as runner:
        int8 = score(pred=predict(runner, ev.inputs), ev=ev, num_classes=w.num_classes, depth_kind=kind)
    first = budget_check(fp32=fp32, int8=int8, budget_miou=cfg.budget_miou, budget_absrel=cfg.budget_absrel)
    excluded, trials, scan_rows = [], [], []
    if not first["within"]:
        excluded, int8, trials, scan_rows = _keep_sensitive_in_float(w, ev=ev, fp32_pred=fp32_pred, fp32=fp32)
    final = BudgetCheck.from_dict(budget_check(fp32=fp32, int8=int8, budget_miou=cfg.budget_miou,
                                               budget_absrel=cfg.budget_absrel))
    return _Accuracy(
        fp32=Metrics.from_dict(fp32), int8=Metrics.from_dict(int8),
        evaluation=Evaluation(n_images=len(ev.inputs), stems=tuple(ev.stems), data=str(w.data)),
        budget=Budget(within=final.within, miou_points=cfg.budget_miou, absrel_relative=cfg.budget_absrel,
                      first_pass=BudgetCheck.from_dict(first), miou_drop=final.miou_drop,
                      absrel_rel_increase=final.absrel_rel_increase),
        excluded=tuple(excluded), trials=tuple(trials), scan_rows=tuple(scan_rows))


def _write_trt_cache(w: _Work, tensors, float_nodes) -> list[str]:
    """The TensorRT calibration cache from the same statistics, without the float nodes' outputs;
    returns the tensors it leaves to float."""
    amax, dropped = trt_cache_scales(w.proto, calib_mod.tensor_amax(tensors), float_nodes)
    write_cache(w.trt_cache, amax, w.cfg.tensorrt)
    return dropped


def _move_into_place(w: _Work, out: Path) -> QuantizeFiles:
    sides = side_paths(out)
    for src, dst in ((w.ranges, sides["ranges"]), (w.trt_cache, sides["trt_cache"]), (w.int8, out)):
        shareable(src)  # ORT writes the ranges through a private temp file (0600)
        os.replace(src, dst)
    return QuantizeFiles(int8=str(out), trt_cache=str(sides["trt_cache"]), ranges=str(sides["ranges"]))


def quantize_model(model_in: str | Path, data: str | Path | None, out: str | Path,
                   config: QuantizeConfig = QuantizeConfig(), progress: bool = True) -> QuantizeResult:
    """Quantize ``model_in`` (FP32 ONNX from ``panoedge export``) to QDQ INT8 at ``out``; the report.

    See the module docstring for the steps: read, calibrate, quantize, measure the accuracy (and
    keep sensitive layers in float when over budget), write the TensorRT cache, time both models,
    move the files into place.
    """
    cfg = config.validate()
    model_in, out = Path(model_in), Path(out)
    proto, info = _read_fp32(model_in)
    calib_set, eval_set = calib_mod.split_data(data=data, n_calib=cfg.n, n_eval=cfg.n_eval if cfg.evaluate else 0,
                                               hw=info["hw"], progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".panoedge-quantize-", dir=out.parent) as tmp:
        w = _Work(cfg=cfg, model_in=model_in, proto=proto, info=info, data=data, tmp=Path(tmp), progress=progress,
                  method=calib_mod.ort_method(cfg.method), tail=float_tail(proto))
        tensors, calibration = _calibrate(w, calib_set)
        _quantize(w, exclude=w.tail)
        acc = _accuracy(w, eval_set)
        dropped = _write_trt_cache(w, tensors, [*w.tail, *acc.excluded])
        qdq = QdqSummary(**qdq_summary(load_onnx(w.int8, check=False)))
        latency = _latency(model_in, w.int8, hw=w.hw, repeat=cfg.latency_repeat, threads=cfg.threads)
        files = _move_into_place(w, out)
    return QuantizeResult(
        model=str(model_in), config=cfg, input_hw=tuple(info["hw"]),
        calibration=dataclasses.replace(calibration, trt_cache_float_tensors=tuple(dropped)),
        fp32=acc.fp32, int8=acc.int8, evaluation=acc.evaluation, budget=acc.budget,
        excluded_nodes=_excluded(list(acc.excluded), list(acc.scan_rows)), exclusion_trials=acc.trials,
        float_tail=tuple(w.tail), sensitivity=acc.scan_rows[:SENSITIVITY_ROWS_KEPT], qdq=qdq, latency=latency,
        files=files)
