"""The DLA's supported layers and limits, one rule per ONNX op, each citing the TensorRT versions it holds for.

Source: NVIDIA TensorRT Developer Guide, "DLA Supported Layers and Restrictions", for TensorRT
8.5, 8.6 and 10.x (the versions the Jetson targets name: JetPack 5.1 = 8.5.2, 6.0 = 8.6.2,
6.1/6.2 = 10.3.0), and the DLA notes in ``NvInfer.h`` (e.g. ``IDeconvolutionLayer::setNbGroups``:
"If executing this layer on DLA, nbGroups must be one"). A rule returns why a node falls back to
the GPU, or None. Where the table differs between versions the rule says which one it follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: Largest non-batch dimension the DLA takes (all versions).
DLA_MAX_DIM = 8192
#: DLA loadables one core holds at a time (all versions: "only 16 DLA loadable can be loaded
#: concurrently per core").
DLA_MAX_LOADABLES = 16
ALL = ((8, 5), None)           # 8.5 and later
UP_TO_8 = ((8, 5), (10, 0))    # 8.5 and 8.6 only
FROM_8_6 = ((8, 6), None)
TABLE = "TensorRT Developer Guide, DLA Supported Layers and Restrictions"


@dataclass(frozen=True)
class Rule:
    """How the DLA takes one ONNX op: ``check(node, graph, precision) -> reason | None``."""

    op_types: tuple[str, ...]
    layer: str                 # the TensorRT layer the op becomes
    holds: tuple               # (first version, first version it no longer holds for or None)
    source: str
    check: Callable

    def applies(self, version: tuple[int, ...]) -> bool:
        first, gone = self.holds
        return version[:2] >= first and (gone is None or version[:2] < gone)

    def cite(self) -> str:
        first, gone = self.holds
        span = (f"TensorRT {first[0]}.{first[1]}+" if gone is None
                else f"TensorRT {first[0]}.{first[1]} up to {gone[0]}.{gone[1]} (excluded)")
        return f"{span}: {self.source}"


def _ints(v, n=2):
    return [int(x) for x in (v if v is not None else [])] or None


def _spatial_pads(pads):
    if not pads:
        return [0, 0, 0, 0]
    return [int(p) for p in pads]


def _conv(node, g, precision):
    k = _ints(g.attr(node, "kernel_shape")) or g.kernel_from_weight(node)
    s = _ints(g.attr(node, "strides")) or [1, 1]
    d = _ints(g.attr(node, "dilations")) or [1, 1]
    pads = _spatial_pads(g.attr(node, "pads"))
    groups = int(g.attr(node, "group", 1))
    w = g.shape_of(node.input[1])
    if not k or len(k) != 2:
        return "only 2-D convolutions run on the DLA"
    if not all(1 <= v <= 32 for v in k):
        return f"kernel {k}: the DLA takes 1-32"
    if not all(0 <= p <= 31 for p in pads):
        return f"padding {pads}: the DLA takes 0-31"
    if any(p >= k[i % 2] for i, p in enumerate(pads)):
        return f"padding {pads} not smaller than kernel {k}"
    if not all(1 <= v <= 8 for v in s):
        return f"stride {s}: the DLA takes 1-8"
    if not all(1 <= v <= 32 for v in d):
        return f"dilation {d}: the DLA takes 1-32"
    if w and not 1 <= w[0] <= 8192:
        return f"{w[0]} output channels: the DLA takes 1-8192"
    if not 1 <= groups <= 8192:
        return f"{groups} groups: the DLA takes 1-8192"
    return None


def _deconv(node, g, precision):
    k = _ints(g.attr(node, "kernel_shape")) or g.kernel_from_weight(node)
    s = _ints(g.attr(node, "strides")) or [1, 1]
    d = _ints(g.attr(node, "dilations")) or [1, 1]
    pads = _spatial_pads(g.attr(node, "pads"))
    w = g.shape_of(node.input[1])
    groups = int(g.attr(node, "group", 1))
    if not k or len(k) != 2:
        return "only 2-D deconvolutions run on the DLA"
    if groups != 1:
        return f"grouped deconvolution ({groups} groups): the DLA takes 1 group"
    if any(pads) or g.attr(node, "output_padding") and any(_ints(g.attr(node, "output_padding"))):
        return f"deconvolution padding {pads}: the DLA takes 0"
    if any(v != 1 for v in d):
        return f"dilated deconvolution {d}: the DLA takes dilation 1"
    square_ok = all(1 <= v <= 32 for v in k) or sorted(k) in ([1, 64], [1, 96], [1, 128])
    if not square_ok:
        return f"deconvolution kernel {k}: the DLA takes 1-32 (or 1x64/96/128)"
    if k[0] == k[1] and s[0] == s[1] and 23 <= k[0] <= 32 and 23 <= s[0] <= 32:
        return f"square kernel and stride {k[0]} in 23-32: disabled on the DLA (compile time)"
    if not all(1 <= v <= 32 for v in s):
        return f"deconvolution stride {s}: the DLA takes 1-32"
    if w and not 1 <= w[0] <= 8192:
        return f"{w[0]} input channels: the DLA takes 1-8192"
    return None


def _pool(node, g, precision):
    k = _ints(g.attr(node, "kernel_shape"))
    s = _ints(g.attr(node, "strides")) or [1, 1]
    pads = _spatial_pads(g.attr(node, "pads"))
    if not k or len(k) != 2:
        return "only 2-D pooling runs on the DLA"
    if not all(1 <= v <= 8 for v in k):
        return f"pooling window {k}: the DLA takes 1-8"
    if not all(0 <= p <= 7 for p in pads):
        return f"pooling padding {pads}: the DLA takes 0-7"
    if not all(1 <= v <= 16 for v in s):
        return f"pooling stride {s}: the DLA takes 1-16"
    return None


def _global_pool(node, g, precision):
    shape = g.shape_of(node.input[0]) or []
    if len(shape) != 4 or None in shape[2:]:
        return "global pooling over unknown spatial size"
    return _pool_window(shape[2:])


def _pool_window(hw):
    if not all(1 <= v <= 8 for v in hw):
        return f"global pooling is a {hw[0]}x{hw[1]} window: the DLA pools windows of 1-8"
    return None


def _concat(node, g, precision):
    rank = g.rank(node.output[0]) or 4
    axis = int(g.attr(node, "axis", 1))
    if axis % rank != 1:
        return f"concatenation along axis {axis}: the DLA concatenates along the channel axis only"
    if len(node.input) < 2:
        return "concatenation of one input"
    return None


def _resize(node, g, precision):
    mode = g.attr(node, "mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    coord = g.attr(node, "coordinate_transformation_mode", "half_pixel")
    coord = coord.decode() if isinstance(coord, bytes) else coord
    if mode not in ("nearest", "linear"):
        return f"resize mode {mode!r}: the DLA takes nearest or linear"
    if mode == "linear" and coord not in ("half_pixel", "pytorch_half_pixel"):
        return f"bilinear resize with {coord!r} coordinates: the DLA takes half-pixel only"
    scales = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or scales.size != 4:
        return "resize without 4 constant scales"
    sh, sw = float(scales[2]), float(scales[3])
    top = 32 if mode == "nearest" else 4
    if scales[0] != 1 or scales[1] != 1 or not all(v == int(v) and 1 <= v <= top for v in (sh, sw)):
        return f"resize scales {scales.tolist()}: the DLA takes 1, 1 and integer H/W scales in 1-{top} ({mode})"
    return None


def _slice(node, g, precision):
    starts = g.const(node.input[1]) if len(node.input) > 1 else None
    ends = g.const(node.input[2]) if len(node.input) > 2 else None
    axes = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = g.const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if starts is None or ends is None:
        return "slice with non-constant starts or ends"
    rank = g.rank(node.input[0]) or 4
    if rank != 4:
        return f"slice of a {rank}-D tensor: the DLA slices 4-D tensors"
    if axes is not None and any(int(a) % rank == 0 for a in axes.ravel()):
        return "slice along the batch axis"
    if steps is not None and any(int(v) != 1 for v in steps.ravel()):
        return f"slice steps {steps.ravel().tolist()}: the DLA slices with unit steps"
    return None


def _activation(node, g, precision):
    if node.op_type == "Clip":
        lo = g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        hi = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if lo is None or float(lo) != 0.0 or hi is None or not 1 <= float(hi) <= 127:
            return "clip other than clipped ReLU with a constant ceiling in 1-127"
    return _four_d(node, g, precision)


def _four_d(node, g, precision):
    r = g.rank(node.output[0])
    if r is not None and r != 4:
        return f"{node.op_type} on a {r}-D tensor: the DLA runs 4-D tensors"
    return None


def _comparison(node, g, precision):
    if precision != "int8":
        return f"{node.op_type} runs on the DLA in INT8 builds only"
    return _four_d(node, g, precision)


def _not_on(reason):
    return lambda node, g, precision: reason


RULES: tuple[Rule, ...] = (
    Rule(("Conv",), "Convolution", ALL, TABLE + ": Convolution and Fully Connected", _conv),
    Rule(("ConvTranspose",), "Deconvolution", ALL, TABLE + ": Deconvolution (and NvInfer.h setNbGroups)", _deconv),
    Rule(("MaxPool", "AveragePool"), "Pooling", ALL, TABLE + ": Pooling (window 1-8, padding 0-7, stride 1-16)", _pool),
    Rule(("GlobalAveragePool", "GlobalMaxPool"), "Pooling", ALL, TABLE + ": Pooling window 1-8", _global_pool),
    Rule(("Concat",), "Concatenation", ALL, TABLE + ": Concatenation (channel axis only)", _concat),
    Rule(("Resize", "Upsample"), "Resize", ALL,
         TABLE + ": Resize (scales [1, 1, h, w], integer h/w in 1-32 nearest, 1-4 bilinear, half-pixel)", _resize),
    Rule(("Slice",), "Slice", ALL, TABLE + ": Slice (4-D, static, unit stride, not the batch axis)", _slice),
    Rule(("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip"), "Activation", ALL,
         TABLE + ": Activation (ReLU, Sigmoid, TanH, clipped ReLU 1-127, leaky ReLU)", _activation),
    Rule(("PRelu",), "ParametricReLU", ALL, TABLE + ": Parametric ReLU", _four_d),
    Rule(("BatchNormalization",), "Scale", ALL, TABLE + ": Scale", _four_d),
    Rule(("Add", "Sub", "Mul", "Max", "Min", "Div", "Pow"), "ElementWise", ALL,
         TABLE + ": ElementWise (Sum, Sub, Product, Max, Min, Div, Pow)", _four_d),
    Rule(("Equal", "Greater", "Less"), "ElementWise", FROM_8_6,
         TABLE + ": ElementWise comparison (Equal, Greater, Less), INT8", _comparison),
    Rule(("Equal", "Greater", "Less"), "ElementWise", ((8, 5), (8, 6)),
         TABLE + " (8.5 lists no comparison operations)", _not_on("comparison operations are not DLA layers in 8.5")),
    Rule(("Softmax",), "SoftMax", ALL, TABLE + ": SoftMax (Orin, 4-D)", _four_d),
    Rule(("Gemm",), "FullyConnected", UP_TO_8, TABLE + ": Convolution and Fully Connected", _four_d),
    Rule(("Gemm",), "MatrixMultiply", ((10, 0), None),
         "TensorRT 10 removed IFullyConnectedLayer; Gemm becomes MatrixMultiply, not a DLA layer",
         _not_on("Gemm imports as MatrixMultiply in TensorRT 10, which the DLA does not run")),
)


def rules_for(version: tuple[int, ...]) -> dict[str, Rule]:
    """Op type -> the rule that holds for TensorRT ``version``."""
    out: dict[str, Rule] = {}
    for rule in RULES:
        if rule.applies(version):
            for op in rule.op_types:
                out[op] = rule
    return out
