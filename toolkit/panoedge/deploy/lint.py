"""Before anyone reaches the device: which ONNX nodes TensorRT or the DLA will not run as asked.

Rules (checked against the ONNX graph with shapes inferred):

* TensorRT: op types outside :data:`TRT_OPS` (the ONNX ops TensorRT's parser imports) are
  ``unsupported``: the engine will not build.
* DLA (targets with DLA cores, FP16/INT8): layers outside the DLA's supported set or beyond its
  limits are ``gpu_fallback``: with GPU fallback they run on the GPU, and each switch splits
  the network into another DLA loadable (at most 16 loaded per core). Limits follow NVIDIA's
  "DLA Supported Layers and Restrictions" (TensorRT 10 documentation): concatenation along the
  channel axis only; convolution 2-D with kernel 1-32, stride 1-8, 1-8192 channels; activations
  ReLU, Sigmoid, TanH, clipped/leaky ReLU; element-wise Sum/Sub/Product/Max/Min/Div/Pow;
  resize with constant, equal, integer H/W scales; slice with constant starts, unit steps and
  not along the batch axis; no non-batch dimension above 8192.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from panoedge.deploy.targets import Target

#: ONNX ops TensorRT 8.5+ imports (onnx-tensorrt operator support), restricted to what CNNs use.
TRT_OPS = frozenset({
    "Abs", "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "ConvTranspose", "DepthToSpace", "DequantizeLinear", "Div", "Elu", "Equal", "Erf",
    "Exp", "Expand", "Flatten", "Floor", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater",
    "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less",
    "Log", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Pad", "PRelu", "Pow", "QuantizeLinear", "Reciprocal",
    "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice",
    "Softmax", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample",
    "Where",
})
#: Op types that are not layers on the DLA side (folded into weights/scales or constants).
DLA_FREE = frozenset({"Constant", "QuantizeLinear", "DequantizeLinear", "Identity"})
DLA_ACTIVATIONS = frozenset({"Relu", "Sigmoid", "Tanh", "Clip", "LeakyRelu"})
DLA_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Max", "Min", "Div", "Pow"})
DLA_OTHER = frozenset({"Conv", "ConvTranspose", "Concat", "Slice", "Resize", "MaxPool", "AveragePool",
                       "GlobalAveragePool", "Softmax", "PRelu", "BatchNormalization", "Gemm"})
DLA_MAX_DIM = 8192
DLA_MAX_LOADABLES = 16


@dataclass(frozen=True)
class Finding:
    """One node that will not run as asked on the target."""

    node: str
    op_type: str
    engine: str      # "tensorrt" or "dla"
    severity: str    # "unsupported" (no engine) or "gpu_fallback" (DLA -> GPU)
    reason: str


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class _Graph:
    """Shapes and constants of a model, for the rules."""

    def __init__(self, proto):
        import onnx
        from onnx import numpy_helper, shape_inference

        inferred = shape_inference.infer_shapes(proto)
        self.shapes = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for n in proto.graph.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(_attr(n, "value")) if _attr(n, "value") is not None \
                    else None
        self.onnx = onnx

    def rank(self, name):
        s = self.shapes.get(name)
        return None if s is None else len(s)


def _dla_reason(node, g: _Graph) -> str | None:
    """Why ``node`` falls back from DLA to GPU, or None if the DLA runs it."""
    op = node.op_type
    if op in DLA_FREE:
        return None
    if op not in DLA_ACTIVATIONS | DLA_ELEMENTWISE | DLA_OTHER:
        return f"{op} is not a DLA layer"
    for t in list(node.input) + list(node.output):
        shape = g.shapes.get(t) or []
        if any(d and d > DLA_MAX_DIM for d in shape[1:]):
            return f"tensor {t} has a dimension above {DLA_MAX_DIM}"
    if op == "Concat":
        rank = g.rank(node.output[0]) or 4
        axis = _attr(node, "axis", 1)
        if axis % rank != 1:
            return f"concatenation along axis {axis}: the DLA concatenates along the channel axis only"
    elif op == "Conv":
        k = _attr(node, "kernel_shape") or []
        s = _attr(node, "strides") or [1, 1]
        w = g.shapes.get(node.input[1]) or list(getattr(g.consts.get(node.input[1]), "shape", []))
        if len(k) != 2:
            return "only 2-D convolutions run on the DLA"
        if not all(1 <= v <= 32 for v in k):
            return f"kernel {k}: the DLA takes 1-32"
        if not all(1 <= v <= 8 for v in s):
            return f"stride {s}: the DLA takes 1-8"
        if w and not 1 <= w[0] <= 8192:
            return f"{w[0]} output channels: the DLA takes 1-8192"
    elif op == "Slice":
        starts = g.consts.get(node.input[1]) if len(node.input) > 1 else None
        axes = g.consts.get(node.input[3]) if len(node.input) > 3 else None
        steps = g.consts.get(node.input[4]) if len(node.input) > 4 else None
        if starts is None:
            return "slice with non-constant starts"
        rank = g.rank(node.input[0]) or 4
        if axes is not None and any(int(a) % rank == 0 for a in axes.ravel()):
            return "slice along the batch axis"
        if steps is not None and any(int(v) != 1 for v in steps.ravel()):
            return f"slice steps {steps.ravel().tolist()}: the DLA slices with unit steps"
    elif op == "Resize":
        mode = _attr(node, "mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("nearest", "linear"):
            return f"resize mode {mode!r}: the DLA takes nearest or linear"
        scales = g.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scales is None or scales.size != 4:
            return "resize without constant 4-D scales"
        sh, sw = float(scales[2]), float(scales[3])
        if scales[0] != 1 or scales[1] != 1 or sh != sw or sh != int(sh):
            return f"resize scales {scales.tolist()}: the DLA takes equal integer H/W scales"
    elif op in DLA_ELEMENTWISE | DLA_ACTIVATIONS:
        if (g.rank(node.output[0]) or 4) != 4:
            return f"{op} on a {g.rank(node.output[0])}-D tensor: the DLA runs 4-D (2-D spatial) tensors"
    return None


def lint_model(proto, target: Target) -> dict:
    """Lint an ``onnx.ModelProto`` for ``target``: ``{"target", "findings", "counts", "dla", "ok"}``.

    ``ok`` is False only for ``unsupported`` findings (the engine would not build); DLA fallbacks
    are warnings with an estimate of the DLA loadables the graph splits into.
    """
    findings: list[Finding] = []
    dla_runs = 0
    if target.uses_tensorrt:
        g = _Graph(proto)
        use_dla = target.dla_cores > 0 and target.precision in ("int8", "fp16")
        on_dla_prev = None
        for node in proto.graph.node:
            if node.op_type not in TRT_OPS:
                findings.append(Finding(node.name, node.op_type, "tensorrt", "unsupported",
                                        f"TensorRT's ONNX parser has no {node.op_type}"))
                continue
            if not use_dla or node.op_type in DLA_FREE:
                continue
            why = _dla_reason(node, g)
            if why:
                findings.append(Finding(node.name, node.op_type, "dla", "gpu_fallback", why))
            on_dla = why is None
            if on_dla and on_dla_prev is not True:
                dla_runs += 1
            on_dla_prev = on_dla
    counts = {"unsupported": sum(f.severity == "unsupported" for f in findings),
              "gpu_fallback": sum(f.severity == "gpu_fallback" for f in findings),
              "nodes": len(proto.graph.node)}
    dla = None
    if target.uses_tensorrt and target.dla_cores > 0:
        dla = {"cores": target.dla_cores, "estimated_loadables": dla_runs,
               "over_limit": dla_runs > DLA_MAX_LOADABLES, "limit_per_core": DLA_MAX_LOADABLES}
    return {"schema": "panoedge.lint/1", "target": target.name, "findings": [asdict(f) for f in findings],
            "counts": counts, "dla": dla, "ok": counts["unsupported"] == 0}


def format_lint(report: dict, limit: int = 12) -> str:
    """A short human summary: counts, then the first ``limit`` findings grouped by reason."""
    c = report["counts"]
    lines = [f"lint ({report['target']}): {c['unsupported']} unsupported, {c['gpu_fallback']} DLA->GPU fallback "
             f"of {c['nodes']} nodes"]
    if report["dla"]:
        d = report["dla"]
        lines.append(f"  DLA: ~{d['estimated_loadables']} loadables (limit {d['limit_per_core']} per core)"
                     + ("  OVER THE LIMIT" if d["over_limit"] else ""))
    groups: dict[tuple, list[str]] = {}
    for f in report["findings"]:
        groups.setdefault((f["severity"], f["op_type"], f["reason"]), []).append(f["node"])
    for (sev, op, reason), nodes in list(groups.items())[:limit]:
        more = f" (+{len(nodes) - 3} more)" if len(nodes) > 3 else ""
        lines.append(f"  {sev:<12} {op:<10} x{len(nodes):<3} {reason}: {', '.join(nodes[:3])}{more}")
    return "\n".join(lines)
