"""Before anyone reaches the device: which ONNX nodes TensorRT or the DLA will not run as asked.

Rules (checked against the ONNX graph with shapes inferred):

* TensorRT: op types outside :data:`TRT_OPS` (the ONNX ops TensorRT's parser imports) are
  ``unsupported``: the engine will not build.
* DLA (targets with DLA cores, FP16/INT8): layers outside the DLA's supported set or beyond its
  limits are ``gpu_fallback`` (:mod:`panoedge.deploy.dla_rules`, one rule per op citing the
  TensorRT versions it holds for; the lint applies those of the target's TensorRT).
* DLA loadables, counted as TensorRT partitions a network with GPU fallback: the DLA layers are
  grouped into maximal convex subgraphs (a path that leaves a group through a GPU layer never
  comes back into it), each one loadable, at most 16 loaded per core. :func:`dla_loadables`
  gives every DLA node the number of GPU layers on the longest path from the inputs to it and
  joins DLA neighbours of equal count (and DLA readers of one tensor at equal count): each
  connected group is one loadable. A model of TensorRT's partitioner, not a copy of it: the
  build log (``[DlaLayer] {ForeignNode[...]}`` lines) is the last word.
"""

from __future__ import annotations

from dataclasses import dataclass

from panoedge.deploy.dla_rules import DLA_MAX_DIM, DLA_MAX_LOADABLES, rules_for
from panoedge.deploy.targets import Target
from panoedge.results import Record, Result
from panoedge.runtime.trt_select import version_key

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
#: The TensorRT the lint assumes where a target names none.
DEFAULT_TENSORRT = "10.3.0"
#: Groups of findings ``LintResult.format`` lists before it stops (a summary, not the whole list).
FORMAT_GROUPS = 12
#: Node names ``LintResult.format`` prints per group of findings before ``(+N more)``.
FORMAT_NODES = 3
SCHEMA = "panoedge.lint/1"


@dataclass(frozen=True)
class Finding(Record):
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
    """Shapes, constants and attributes of a model, for the rules."""

    def __init__(self, proto):
        from onnx import numpy_helper, shape_inference

        inferred = shape_inference.infer_shapes(proto)
        self.shapes = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for t in proto.graph.initializer:
            self.shapes.setdefault(t.name, list(t.dims))
        for n in proto.graph.node:
            if n.op_type == "Constant" and _attr(n, "value") is not None:
                self.consts[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))

    attr = staticmethod(_attr)

    def const(self, name):
        return self.consts.get(name)

    def shape_of(self, name):
        return self.shapes.get(name)

    def rank(self, name):
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def kernel_from_weight(self, node):
        w = self.shapes.get(node.input[1]) if len(node.input) > 1 else None
        return list(w[2:]) if w and len(w) >= 3 else None


def dla_reason(node, g: _Graph, rules: dict, precision: str) -> str | None:
    """Why ``node`` falls back from DLA to GPU under ``rules`` (None: the DLA runs it)."""
    if node.op_type in DLA_FREE:
        return None
    rule = rules.get(node.op_type)
    if rule is None:
        return f"{node.op_type} is not a DLA layer"
    for t in list(node.input[:1]) + list(node.output):
        shape = g.shapes.get(t) or []
        if any(d and d > DLA_MAX_DIM for d in shape[1:]):
            return f"tensor {t} has a dimension above {DLA_MAX_DIM}"
    why = rule.check(node, g, precision)
    return None if why is None else f"{why} [{rule.cite()}]"


def dla_loadables(proto, on_dla: dict[str, bool]) -> int:
    """DLA loadables TensorRT splits ``proto`` into, given which nodes run on the DLA (by output name).

    ``on_dla`` maps every node's first output to True (DLA) or False (GPU). Nodes are walked in
    the graph's (topological) order; see the module docstring for the grouping.
    """
    level: dict[str, int] = {}      # tensor -> GPU layers on the longest path that produced it
    producer_dla: dict[str, str] = {}  # tensor -> the DLA node that produced it
    parent: dict[str, str] = {}
    first_reader: dict[tuple, str] = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    consts = {t.name for t in proto.graph.initializer}
    level.update({i.name: 0 for i in proto.graph.input if i.name not in consts})
    for node in proto.graph.node:
        if node.op_type == "Constant" or not node.output:
            continue
        key = node.output[0]
        dla = on_dla.get(key, False)
        ins = [t for t in node.input if t in level]
        lv = max((level[t] for t in ins), default=0) + (0 if dla else 1)
        for t in node.output:
            level[t] = lv
        if not dla:
            continue
        parent[key] = key
        for t in ins:
            src = producer_dla.get(t)
            if src is not None and level[t] == lv:
                parent[find(src)] = find(key)
            if level[t] == lv:  # DLA siblings reading one tensor at the same level share a loadable
                sib = first_reader.setdefault((t, lv), key)
                parent[find(sib)] = find(key)
        for t in node.output:
            producer_dla[t] = key
    return len({find(k) for k in parent})


@dataclass(frozen=True)
class LintCounts(Record):
    """Findings by severity, and the graph's node count."""

    unsupported: int
    gpu_fallback: int
    nodes: int


@dataclass(frozen=True)
class DlaLoadables(Record):
    """The DLA loadables the graph splits into against what one core holds."""

    cores: int
    estimated_loadables: int
    over_limit: bool
    limit_per_core: int
    gpu_layers: int


@dataclass(frozen=True)
class LintResult(Result):
    """What :func:`lint_model` found: ``ok`` is False only for ``unsupported`` findings."""

    SCHEMA = SCHEMA
    target: str
    tensorrt: str
    findings: tuple[Finding, ...]
    counts: LintCounts
    dla: DlaLoadables | None
    ok: bool

    @classmethod
    def from_dict(cls, d: dict) -> "LintResult":
        """A lint report read back from ``lint.json``."""
        return cls(target=d["target"], tensorrt=d["tensorrt"], findings=tuple(Finding(**f) for f in d["findings"]),
                   counts=LintCounts(**d["counts"]), dla=DlaLoadables(**d["dla"]) if d.get("dla") else None,
                   ok=d["ok"])

    def summary(self) -> dict:
        """The part a bundle's manifest keeps (``manifest["lint"][model]``)."""
        return {"counts": self.counts.to_dict(), "dla": self.dla.to_dict() if self.dla else None, "ok": self.ok}

    def format(self, limit: int = FORMAT_GROUPS) -> str:
        """A short human summary: counts, then the first ``limit`` findings grouped by reason."""
        c = self.counts
        lines = [f"lint ({self.target}): {c.unsupported} unsupported, {c.gpu_fallback} DLA->GPU fallback "
                 f"of {c.nodes} nodes"]
        if self.dla:
            d = self.dla
            lines.append(f"  DLA: {d.estimated_loadables} loadables (limit {d.limit_per_core} per core, "
                         f"TensorRT {self.tensorrt or '?'})"
                         + ("  OVER THE LIMIT: `panoedge engine` builds for the GPU unless --dla-core is given"
                            if d.over_limit else ""))
        groups: dict[tuple, list[str]] = {}
        for f in self.findings:
            groups.setdefault((f.severity, f.op_type, f.reason), []).append(f.node)
        for (sev, op, reason), nodes in list(groups.items())[:limit]:
            more = f" (+{len(nodes) - FORMAT_NODES} more)" if len(nodes) > FORMAT_NODES else ""
            lines.append(f"  {sev:<12} {op:<10} x{len(nodes):<3} {reason}: {', '.join(nodes[:FORMAT_NODES])}{more}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BundleLint(Result):
    """A bundle's ``lint.json``: the lint of its FP32 and of its INT8 model."""

    SCHEMA = SCHEMA
    fp32: LintResult
    int8: LintResult | None = None

    def format(self) -> str:
        """The FP32 model's lint (the one the engine plan and ``panoedge build`` go by)."""
        return self.fp32.format()


def lint_model(proto, target: Target, tensorrt: str | None = None) -> LintResult:
    """Lint an ``onnx.ModelProto`` for ``target`` on TensorRT ``tensorrt`` (default: the target's).

    ``ok`` is False only for ``unsupported`` findings (the engine would not build); DLA fallbacks
    are warnings, with the DLA loadables the graph splits into.
    """
    findings: list[Finding] = []
    version = tensorrt or target.tensorrt or DEFAULT_TENSORRT
    use_dla = target.uses_tensorrt and target.dla_cores > 0 and target.precision in ("int8", "fp16")
    on_dla: dict[str, bool] = {}
    if target.uses_tensorrt:
        g = _Graph(proto) if use_dla else None
        rules = rules_for(version_key(version))
        for node in proto.graph.node:
            if node.op_type not in TRT_OPS:
                findings.append(Finding(node=node.name, op_type=node.op_type, engine="tensorrt", severity="unsupported",
                                        reason=f"TensorRT's ONNX parser has no {node.op_type}"))
                continue
            if not use_dla or not node.output:
                continue
            why = dla_reason(node, g=g, rules=rules, precision=target.precision)
            if why:
                findings.append(Finding(node=node.name, op_type=node.op_type, engine="dla", severity="gpu_fallback",
                                        reason=why))
            on_dla[node.output[0]] = why is None
    counts = LintCounts(unsupported=sum(f.severity == "unsupported" for f in findings),
                        gpu_fallback=sum(f.severity == "gpu_fallback" for f in findings),
                        nodes=len(proto.graph.node))
    dla = None
    if use_dla:
        n = dla_loadables(proto, on_dla)
        dla = DlaLoadables(cores=target.dla_cores, estimated_loadables=n, over_limit=n > DLA_MAX_LOADABLES,
                           limit_per_core=DLA_MAX_LOADABLES, gpu_layers=counts.gpu_fallback)
    return LintResult(target=target.name, tensorrt=version, findings=tuple(findings), counts=counts, dla=dla,
                      ok=counts.unsupported == 0)
