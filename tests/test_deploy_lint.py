"""DLA lint: one small probe graph per rule of NVIDIA's DLA supported-layers table, per TensorRT version,
and the loadable count (DLA subgraphs split by GPU layers)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from panoedge.deploy.dla_rules import RULES
from panoedge.deploy.lint import dla_loadables, lint_model
from panoedge.deploy.targets import load_target

AGX = load_target("jetson-agx-orin")


def probe(op: str, inputs: dict, attrs: dict | None = None, consts: dict | None = None, out_shape=None,
          out_type=TensorProto.FLOAT) -> onnx.ModelProto:
    """A one-node model: ``inputs`` name -> shape (graph inputs), ``consts`` name -> array (initializers)."""
    consts = consts or {}
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, ["y"], name=f"probe_{op}", **(attrs or {}))
    graph = helper.make_graph(
        [node], "probe", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def dla_reasons(model, target=AGX, tensorrt="10.3.0") -> list[str]:
    rep = lint_model(model, target, tensorrt=tensorrt)
    return [f.reason for f in rep.findings if f.engine == "dla"]


X = {"x": [1, 8, 16, 16]}
W8 = np.zeros((8, 8, 3, 3), np.float32)


@pytest.mark.parametrize("attrs,ok", [
    ({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, True),
    ({"kernel_shape": [3, 3], "pads": [3, 3, 3, 3]}, False),          # padding not smaller than the kernel
    ({"kernel_shape": [3, 3], "strides": [9, 9]}, False),             # stride 1-8
    ({"kernel_shape": [3, 3], "dilations": [33, 33], "pads": [0, 0, 0, 0]}, False),
])
def test_conv_rule(attrs, ok):
    assert (dla_reasons(probe("Conv", X, attrs, {"w": W8})) == []) == ok


@pytest.mark.parametrize("attrs,ok", [
    ({"kernel_shape": [2, 2], "strides": [2, 2]}, True),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "group": 2}, False),  # grouped deconvolution
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, False),  # padded
    ({"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 2]}, False),
    ({"kernel_shape": [24, 24], "strides": [24, 24]}, False),         # square 23-32: disabled on the DLA
])
def test_conv_transpose_rule(attrs, ok):
    groups = attrs.get("group", 1)
    w = np.zeros((8, 8 // groups, *attrs["kernel_shape"]), np.float32)
    reasons = dla_reasons(probe("ConvTranspose", X, attrs, {"w": w}))
    assert (reasons == []) == ok, reasons


def test_comparisons_run_on_the_dla_in_int8_from_86():
    model = probe("Equal", {"a": [1, 8, 4, 4], "b": [1, 8, 4, 4]}, out_type=TensorProto.BOOL)
    for op in ("Equal", "Greater", "Less"):
        model.graph.node[0].op_type = op
        assert dla_reasons(model, tensorrt="10.3.0") == [] and dla_reasons(model, tensorrt="8.6.2") == []
        assert "8.5" in dla_reasons(model, tensorrt="8.5.2")[0]
        assert "INT8 builds only" in dla_reasons(model, target=replace(AGX, precision="fp16"))[0]


@pytest.mark.parametrize("op,attrs,ok", [
    ("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, True),
    ("MaxPool", {"kernel_shape": [9, 9]}, False),                     # window 1-8
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [17, 17]}, False),  # stride 1-16
    ("AveragePool", {"kernel_shape": [8, 8], "pads": [8, 8, 8, 8]}, False),  # padding 0-7
])
def test_pooling_rule(op, attrs, ok):
    assert (dla_reasons(probe(op, X, attrs)) == []) == ok


@pytest.mark.parametrize("mode,coord,scale,ok", [
    ("linear", "half_pixel", 4.0, True),
    ("linear", "pytorch_half_pixel", 2.0, True),
    ("linear", "half_pixel", 8.0, False),        # bilinear: 1-4
    ("nearest", "asymmetric", 8.0, True),        # nearest: 1-32
    ("nearest", "asymmetric", 33.0, False),
    ("linear", "align_corners", 2.0, False),     # bilinear needs half-pixel
    ("cubic", "half_pixel", 2.0, False),
])
def test_resize_rule(mode, coord, scale, ok):
    model = probe("Resize", X, {"mode": mode, "coordinate_transformation_mode": coord},
                  {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, scale, scale], np.float32)})
    assert (dla_reasons(model) == []) == ok


def test_concat_slice_and_version_dependent_gemm():
    cat = helper.make_node("Concat", ["x", "x"], ["y"], axis=3)
    model = probe("Concat", X, {"axis": 3})
    model.graph.node[0].CopyFrom(cat)
    assert "channel axis" in dla_reasons(model)[0]
    model.graph.node[0].attribute[0].i = 1
    assert dla_reasons(model) == []
    sl = probe("Slice", X, None, {"s": np.array([0]), "e": np.array([2]), "a": np.array([0])})
    assert "batch axis" in dla_reasons(sl)[0]
    gemm = probe("Gemm", {"x": [1, 8]}, None, {"w": np.zeros((8, 4), np.float32)}, out_shape=[1, 4])
    assert "MatrixMultiply" in dla_reasons(gemm, tensorrt="10.3.0")[0]
    assert not any("MatrixMultiply" in r for r in dla_reasons(gemm, tensorrt="8.6.2"))


def test_every_rule_cites_its_versions():
    for rule in RULES:
        cite = rule.cite()
        assert cite.startswith("TensorRT ") and ("DLA" in cite or "TensorRT 10" in cite), cite
    rep = lint_model(probe("MaxPool", X, {"kernel_shape": [9, 9]}), AGX, tensorrt="8.6.2")
    assert "TensorRT 8.5+" in rep.findings[0].reason and rep.tensorrt == "8.6.2"


def _chain(ops: list[str]) -> onnx.ModelProto:
    """x -> op0 -> op1 -> ... where "G" is an Erf (a GPU-only layer) and "R" a Relu (DLA)."""
    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        out = f"t{i}"
        if op == "G":
            nodes.append(helper.make_node("Erf", [prev], [out], name=f"erf{i}"))
        else:
            nodes.append(helper.make_node("Relu", [prev], [out], name=f"relu{i}"))
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("ops,loadables", [("RRR", 1), ("RGR", 2), ("RGRGR", 3), ("GGR", 1), ("RRG", 1)])
def test_loadables_are_dla_runs_split_by_gpu_layers(ops, loadables):
    rep = lint_model(_chain(list(ops)), AGX)
    assert rep.dla.estimated_loadables == loadables


def test_a_branch_around_a_gpu_layer_is_a_separate_loadable():
    # x -> relu a -> width concat (GPU) -> relu c -> add(c, a): a's DLA group cannot take the add
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Concat", ["a", "a"], ["b"], axis=3),
             helper.make_node("Slice", ["b", "s", "e", "ax"], ["c"]), helper.make_node("Add", ["c", "a"], ["d"])]
    on = {"a": True, "b": False, "c": True, "d": True}
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, None)])
    assert dla_loadables(helper.make_model(graph), on) == 2


def test_over_the_limit_is_reported():
    rep = lint_model(_chain(list("RG" * 17 + "R")), AGX)
    assert rep.dla.estimated_loadables == 18 and rep.dla.over_limit
    assert "OVER THE LIMIT" in rep.format()
    assert lint_model(_chain(list("RG" * 17 + "R")), load_target("jetson-orin-nano")).dla is None


@pytest.mark.parametrize("lo,hi,ok", [(0.0, 6.0, True), (0.0, 200.0, False), (-1.0, 1.0, False)])
def test_clip_is_a_dla_activation_only_as_clipped_relu(lo, hi, ok):
    model = probe("Clip", X, None, {"lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)})
    assert (dla_reasons(model) == []) == ok


def test_activations_and_elementwise_need_4d_tensors():
    assert dla_reasons(probe("Sigmoid", X)) == [] and dla_reasons(probe("Relu", X)) == []
    assert "4-D" in dla_reasons(probe("Relu", {"x": [1, 8, 16]}))[0]
    assert "not a DLA layer" in dla_reasons(probe("HardSwish", X))[0]  # not in the table's activations
