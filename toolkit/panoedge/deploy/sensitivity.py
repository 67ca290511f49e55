"""Per-layer INT8 sensitivity and the exclusion search that brings a model within its accuracy budget.

Scan: for every quantized layer, run a model where *only* that layer reads quantized inputs
(every other node rewired to float, :func:`panoedge.deploy.qdq.with_float_nodes`) and measure
how far the outputs move from FP32 on a few held-out images: area-weighted fraction of flipped
labels + mean ``|log(depth ratio)|`` (:func:`panoedge.deploy.evaluate.disagreement`).

Search: keep the ``k`` most sensitive layers in float, re-quantize with ONNX Runtime
(``nodes_to_exclude``) and evaluate on the whole held-out set; ``k`` doubles until the budget
holds, then bisects down to the smallest ``k`` that holds (O(log n) quantizations). If even
every layer in float misses the budget, the report says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from panoedge.progress import tqdm

from panoedge.deploy.evaluate import Predictions, budget_check, disagreement, predict, score
from panoedge.deploy.qdq import quantize_qdq, with_float_nodes
from panoedge.runtime.ort_runner import OrtRunner


def scan(qdq_proto, fp32_proto, candidates: list[str], inputs, fp32_pred: Predictions, threads: int | None = None,
         progress: bool = True) -> list[dict]:
    """Sensitivity of each candidate, most sensitive first: ``[{"node", "label_flips", "log_depth", "score"}]``."""
    import onnx

    others = [n.name for n in qdq_proto.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="panoedge-scan-") as tmp:
        path = Path(tmp) / "one.onnx"
        for node in tqdm(candidates, desc="sensitivity scan", unit="layer", disable=not progress):
            onnx.save(with_float_nodes(qdq_proto, fp32_proto, [o for o in others if o != node]), str(path))
            with OrtRunner(path, threads=threads) as runner:
                d = disagreement(predict(runner, inputs), fp32_pred)
            rows.append({"node": node, **d, "score": d["label_flips"] + d["log_depth"]})
    return sorted(rows, key=lambda r: -r["score"])


def exclusion_search(model_in, model_out, ranges, method, activations: str, ranking: list[dict], ev, fp32: dict,
                     num_classes: int, budget_miou: float, budget_absrel: float, per_channel: bool = True,
                     always: list[str] = (), threads: int | None = None,
                     progress: bool = True) -> tuple[list[str], dict, list[dict]]:
    """Smallest prefix of ``ranking`` to keep in float so the budget holds (doubling, then bisection).

    Returns ``(excluded node names, INT8 metrics of the written model, trials)``; each trial
    records ``k``, the metrics and the budget check. ``model_out`` holds the chosen model.
    ``always``: nodes excluded in every trial (the float tail), not counted in ``k``.
    """
    order = [r["node"] for r in ranking]
    trials: dict[int, dict] = {}

    def trial(k: int) -> dict:
        if k not in trials:
            quantize_qdq(model_in=model_in, model_out=model_out, ranges=ranges, method=method,
                         activations=activations, per_channel=per_channel, exclude=[*always, *order[:k]])
            with OrtRunner(model_out, threads=threads) as runner:
                m = score(pred=predict(runner, ev.inputs), ev=ev, num_classes=num_classes)
            trials[k] = {"k": k, "metrics": m,
                         **budget_check(fp32=fp32, int8=m, budget_miou=budget_miou, budget_absrel=budget_absrel)}
            bar.update(1)
        return trials[k]

    bar = tqdm(desc="keep sensitive layers in float", unit="trial", disable=not progress)
    lo, hi, k = 0, None, 1
    while k <= len(order):
        if trial(k)["within"]:
            hi = k
            break
        lo = k
        k = len(order) if k < len(order) < 2 * k else 2 * k
    if hi is None:
        best = len(order)
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if trial(mid)["within"] else (mid, hi)
        best = hi
    final = trial(best)
    quantize_qdq(model_in=model_in, model_out=model_out, ranges=ranges, method=method, activations=activations,
                 per_channel=per_channel, exclude=[*always, *order[:best]])
    bar.close()
    steps = [{k: v for k, v in t.items() if k != "metrics"} | {"miou_area": t["metrics"].get("miou_area"),
                                                                 "absrel_area": t["metrics"].get("absrel_area")}
             for _, t in sorted(trials.items())]
    return order[:best], final["metrics"], steps
