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
5. Time both models on ONNX Runtime CPU here and write the report (schema ``panoedge.quantize/1``).

Outputs appear only complete: every file is written beside its destination and moved into place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from panoedge.deploy import calib as calib_mod
from panoedge.deploy.evaluate import budget_check, predict, score
from panoedge.deploy.onnx_io import load_onnx, model_info
from panoedge.deploy.qdq import ACTIVATIONS, float_tail, qdq_summary, quantize_qdq, quantized_nodes
from panoedge.deploy.trt_cache import write_cache
from panoedge.errors import UsageError, unknown_name
from panoedge.home import shareable

SCHEMA = "panoedge.quantize/1"


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


def side_paths(out: str | Path) -> dict[str, Path]:
    """Files written beside ``model.int8.onnx``: ``model.int8.calib.cache`` and ``model.int8.ranges.json``."""
    out = Path(out)
    stem = out.name[:-5] if out.name.endswith(".onnx") else out.name
    return {"trt_cache": out.with_name(f"{stem}.calib.cache"), "ranges": out.with_name(f"{stem}.ranges.json")}


def _latency(fp32_path, int8_path, hw, repeat: int, threads) -> dict:
    """FP32 vs INT8 latency on ONNX Runtime CPU here, timed interleaved (see :mod:`panoedge.deploy.bench`)."""
    import numpy as np

    from panoedge.deploy.bench import time_interleaved
    from panoedge.runtime.ort_runner import OrtRunner

    x = {"image": np.random.default_rng(0).standard_normal((1, 3, *hw), dtype=np.float32)}
    runners = {name: OrtRunner(p, "ort-cpu", threads=threads) for name, p in (("fp32", fp32_path), ("int8", int8_path))}
    cases = time_interleaved({name: (lambda r=r: r.infer(x)) for name, r in runners.items()}, 3, repeat)
    speedup = cases["fp32"]["latency_ms"]["median"] / cases["int8"]["latency_ms"]["median"]
    return {"backend": "ort-cpu", "threads": threads, "cases": cases, "int8_speedup": speedup}


def trt_cache_scales(proto, amax: dict[str, float], float_nodes) -> tuple[dict[str, float], list[str]]:
    """The calibration cache's scales without the outputs of ``float_nodes`` (kept in float in the QDQ model).

    TensorRT's implicit INT8 (the DLA plan) runs a layer without a scale in FP16, so dropping them
    keeps the same layers out of INT8 as the QDQ model whose accuracy was measured. Returns
    ``(scales, dropped tensor names)``.
    """
    names = set(float_nodes)
    drop = {o for n in proto.graph.node if n.name in names for o in n.output}
    return {t: a for t, a in amax.items() if t not in drop}, sorted(drop & set(amax))


def _excluded(names: list[str], scan_rows: list[dict]) -> list[dict]:
    """Each node kept in float, with why: its rank and figures from the sensitivity scan."""
    why = {r["node"]: r for r in scan_rows}
    return [{"node": n, "reason": f"sensitivity rank {i + 1} of {len(scan_rows)}: {why[n]['label_flips']:.2%} labels "
                                  f"flipped, mean |log depth ratio| {why[n]['log_depth']:.4f} when only this layer is INT8",
             **{k: why[n][k] for k in ("label_flips", "log_depth", "score")}} for i, n in enumerate(names)]


def quantize_model(model_in: str | Path, data: str | Path | None, out: str | Path,
                   config: QuantizeConfig = QuantizeConfig(), progress: bool = True) -> dict:
    """Quantize ``model_in`` (FP32 ONNX from ``panoedge export``) to QDQ INT8 at ``out``; the report.

    See the module docstring for the steps. The report holds ``fp32`` and ``int8`` metric
    blocks, ``budget`` (limits, drops, ``within``), ``excluded_nodes`` with the reason for each,
    ``calibration`` (``method``, ``n_images``, ``sha256``), ``latency`` and the written ``files``.
    """
    from onnxruntime.quantization.calibrate import save_tensors_data

    from panoedge.runtime.ort_runner import OrtRunner

    cfg = config.validate()
    model_in = Path(model_in)
    proto = load_onnx(model_in)
    info = model_info(proto, model_in)
    hw, pre, k = info["hw"], info["preprocess"], int(info["config"]["num_classes"])
    if info["inputs"][0]["shape"][0] != 1:
        raise UsageError(f"{model_in}: quantize a static batch-1 export (input shape {info['inputs'][0]['shape']})")
    calib_set, eval_set = calib_mod.split_data(data, cfg.n, cfg.n_eval if cfg.evaluate else 0, hw, progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sides = side_paths(out)
    method = calib_mod.ort_method(cfg.method)
    report = {"schema": SCHEMA, "model": str(model_in), "config": asdict(cfg), "input_hw": list(hw)}
    with tempfile.TemporaryDirectory(prefix=".panoedge-quantize-", dir=out.parent) as tmp:
        tmp = Path(tmp)
        stream = calib_mod.ImageStream(calib_set, hw, pre, info["inputs"][0]["name"])
        tensors = calib_mod.calibrate(model_in, stream, cfg.method, symmetric=cfg.activations == "int8",
                                      progress=progress)
        report["calibration"] = {"method": cfg.method, "n_images": len(calib_set), "sha256": stream.sha256(),
                                 "data": str(data), "activations": cfg.activations}
        ranges = tmp / "ranges.json"
        save_tensors_data(tensors, ranges)
        int8_tmp = tmp / "model.int8.onnx"
        tail = float_tail(proto)
        quantize_qdq(model_in, int8_tmp, ranges, method, cfg.activations, cfg.per_channel, exclude=tail)
        excluded, steps, scan_rows = [], [], []
        if eval_set is not None:
            ev = calib_mod.load_eval_set(eval_set, hw, pre, k)
            fp32_pred = predict(OrtRunner(model_in, threads=cfg.threads), ev.inputs)
            fp32 = score(fp32_pred, ev, k, info["depth_kind"])
            int8 = score(predict(OrtRunner(int8_tmp, threads=cfg.threads), ev.inputs), ev, k, info["depth_kind"])
            first = budget_check(fp32, int8, cfg.budget_miou, cfg.budget_absrel)
            if not first["within"]:
                from panoedge.deploy import sensitivity
                from panoedge.deploy.evaluate import Predictions

                n_scan = max(1, min(cfg.scan_images, len(ev.inputs)))
                sub = Predictions(*(None if a is None else a[:n_scan] for a in (fp32_pred.labels, fp32_pred.depth)))
                qdq_proto = load_onnx(int8_tmp, check=False)
                scan_rows = sensitivity.scan(qdq_proto, proto, quantized_nodes(qdq_proto), ev.inputs[:n_scan], sub,
                                             cfg.threads, progress)
                excluded, int8, steps = sensitivity.exclusion_search(
                    model_in, int8_tmp, ranges, method, cfg.activations, scan_rows, ev, fp32, k,
                    cfg.budget_miou, cfg.budget_absrel, cfg.per_channel, tail, cfg.threads, progress)
            final = budget_check(fp32, int8, cfg.budget_miou, cfg.budget_absrel)
            report.update(fp32=fp32, int8=int8, evaluation={"n_images": len(ev.inputs), "stems": ev.stems,
                                                            "data": str(data)})
            report["budget"] = {"miou_points": cfg.budget_miou, "absrel_relative": cfg.budget_absrel,
                                "first_pass": first, **final}
        else:
            report.update(fp32=None, int8=None, budget={"within": None, "note": "not evaluated (--no-eval)"})
        amax, dropped = trt_cache_scales(proto, calib_mod.tensor_amax(tensors), [*tail, *excluded])
        write_cache(tmp / "calib.cache", amax, cfg.tensorrt)
        report["calibration"]["trt_cache_float_tensors"] = dropped
        report["excluded_nodes"] = _excluded(excluded, scan_rows)
        report["exclusion_trials"] = steps
        report["float_tail"] = tail
        report["sensitivity"] = scan_rows[:20]
        report["qdq"] = qdq_summary(load_onnx(int8_tmp, check=False))
        report["latency"] = _latency(model_in, int8_tmp, hw, cfg.latency_repeat, cfg.threads)
        for src, dst in ((ranges, sides["ranges"]), (tmp / "calib.cache", sides["trt_cache"]), (int8_tmp, out)):
            shareable(src)  # ORT writes the ranges through a private temp file (0600)
            os.replace(src, dst)
    report["files"] = {"int8": str(out), "trt_cache": str(sides["trt_cache"]), "ranges": str(sides["ranges"])}
    return report
