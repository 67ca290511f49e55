"""One QDQ quantization of an ONNX model with ONNX Runtime, from stored calibration ranges.

Explicit quantization: ``QuantizeLinear``/``DequantizeLinear`` pairs in plain ONNX, the form
TensorRT 10+ and ONNX Runtime both take. Weights are int8, symmetric, per output channel
(``axis = 0`` on every conv weight's ``DequantizeLinear``). Activations:

* ``int8``: symmetric, zero point 0: what TensorRT accepts; runs on ONNX Runtime too.
* ``uint8``: asymmetric: ONNX Runtime CPU's fast path on x86 (VNNI's u8 x s8 dot product);
  TensorRT rejects it.

Ranges come from a calibration file written once (:func:`panoedge.deploy.calib.calibrate` +
``save_tensors_data``), so re-quantizing with other nodes excluded costs no calibration.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from panoedge.errors import UsageError

ACTIVATIONS = ("int8", "uint8")
#: Op types the sensitivity scan considers (compute layers; data movement follows its inputs).
SCAN_OPS = ("Conv", "Add", "Mul", "Sigmoid", "Resize", "Clip", "HardSwish")


def quantize_qdq(model_in: str | Path, model_out: str | Path, ranges: str | Path, method, activations: str = "int8",
                 per_channel: bool = True, exclude=(), only=None) -> Path:
    """Write the QDQ model of ``model_in`` to ``model_out`` using the ranges file ``ranges``.

    ``exclude``: node names kept in float: ONNX Runtime leaves their weights float, and their
    activation inputs are rewired to the float tensors (ORT shares one Q/DQ pair among a
    tensor's consumers, so an excluded node would otherwise still read INT8-rounded values).
    ``only``: quantize just these nodes. ``method`` is the ``CalibrationMethod`` of the ranges.
    """
    import inspect

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise UsageError(f"onnxruntime {onnxruntime.__version__}: quantize_static has no calibration_cache_path; "
                         "panoedge quantize needs a newer onnxruntime (tested with 1.32)")
    if activations not in ACTIVATIONS:
        raise UsageError(f"activations {activations!r}: choose int8 (TensorRT + ORT) or uint8 (ORT CPU)")
    act = QuantType.QInt8 if activations == "int8" else QuantType.QUInt8
    extra = {"ActivationSymmetric": activations == "int8", "WeightSymmetric": True}
    model_out = Path(model_out)
    tmp = model_out.with_name(f".{model_out.name}.tmp-{os.getpid()}")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs a pre-processing hint on every call
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(model_in), str(tmp), None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=act, weight_type=QuantType.QInt8, calibrate_method=method,
                            nodes_to_exclude=list(exclude), nodes_to_quantize=list(only) if only else None,
                            extra_options=extra, calibration_cache_path=str(ranges))
        if exclude:
            _float_inputs(tmp, model_in, exclude)
        os.replace(tmp, model_out)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    return model_out


def _float_inputs(path: Path, model_in, names) -> None:
    import onnx

    proto = with_float_nodes(onnx.load(str(path)), onnx.load(str(model_in)), names)
    onnx.save(proto, str(path))


def quantized_nodes(proto) -> list[str]:
    """Names of the nodes of :data:`SCAN_OPS` types that read a ``DequantizeLinear`` output.

    These are the layers ONNX Runtime (and TensorRT) will run in INT8; in graph order.
    """
    dq_out = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in proto.graph.node
            if n.op_type in SCAN_OPS and n.name and any(i in dq_out for i in n.input)]


def qdq_summary(proto) -> dict:
    """Counts of Q/DQ nodes and whether every conv weight is dequantized per channel (``axis`` 0)."""
    inits = {t.name: t for t in proto.graph.initializer}
    dq_by_out = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    per_channel = []
    for n in proto.graph.node:
        if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in dq_by_out:
            dq = dq_by_out[n.input[1]]
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            scale = inits.get(dq.input[1])
            per_channel.append(axis == 0 and dq.input[0] in inits and scale is not None and len(scale.dims) == 1)
    return {"quantize_linear": sum(n.op_type == "QuantizeLinear" for n in proto.graph.node),
            "dequantize_linear": sum(n.op_type == "DequantizeLinear" for n in proto.graph.node),
            "int8_convs": len(per_channel), "per_channel_weights": bool(per_channel) and all(per_channel)}


def with_float_nodes(qdq_proto, fp32_proto, names) -> object:
    """A copy of a QDQ model where the nodes ``names`` read float inputs again (no re-quantization).

    Each input of such a node that comes from a ``DequantizeLinear`` is rewired to the tensor the
    same node reads in the FP32 model (node names and float tensor names are kept by ONNX
    Runtime's quantizer); FP32 weights are copied in as needed and Q/DQ nodes left without a
    consumer are dropped. Approximates ``nodes_to_exclude`` in milliseconds, which is what the
    sensitivity scan needs; the delivered model is always made by :func:`quantize_qdq`.
    """
    import onnx

    proto = onnx.ModelProto()
    proto.CopyFrom(qdq_proto)
    names = set(names)
    fp32_nodes = {n.name: n for n in fp32_proto.graph.node}
    fp32_inits = {t.name: t for t in fp32_proto.graph.initializer}
    have = {t.name for t in proto.graph.initializer}
    produced = {o for n in proto.graph.node for o in n.output}
    dq_out = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in proto.graph.node:
        if node.name not in names or node.name not in fp32_nodes:
            continue
        orig = fp32_nodes[node.name].input
        for k, inp in enumerate(node.input):
            if inp not in dq_out or k >= len(orig):
                continue
            src = orig[k]
            if src in fp32_inits:
                if src in produced:  # the quantizer reused the name for a DequantizeLinear output
                    src = f"{src}.float"
                if src not in have:
                    init = onnx.TensorProto()
                    init.CopyFrom(fp32_inits[orig[k]])
                    init.name = src
                    proto.graph.initializer.append(init)
                    have.add(src)
            node.input[k] = src
    _drop_dead(proto)
    return proto


def _drop_dead(proto) -> None:
    """Remove Q/DQ nodes whose outputs nobody reads, repeatedly; then unused initializers."""
    graph_out = {o.name for o in proto.graph.output}
    while True:
        used = {i for n in proto.graph.node for i in n.input} | graph_out
        dead = [n for n in proto.graph.node
                if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            proto.graph.node.remove(n)
    used = {i for n in proto.graph.node for i in n.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def float_tail(proto, outputs=("depth",)) -> list[str]:
    """Nodes between the last convolution and each graph output in ``outputs`` (the head's tail).

    The depth head ends in sigmoid -> scale to metres -> x4 upsample; INT8 there would quantize
    metres themselves (a step of ``max_depth / 255``), so these nodes stay float and the output
    tensor is never quantized. Segmentation logits only feed an arg-max and stay INT8.
    """
    producer = {o: n for n in proto.graph.node for o in n.output}
    tail, todo = [], [o.name for o in proto.graph.output if o.name in outputs]
    seen = set()
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen or node.op_type == "Conv":
            continue
        seen.add(node.name)
        tail.append(node.name)
        todo.extend(i for i in node.input if i in producer)
    return tail
