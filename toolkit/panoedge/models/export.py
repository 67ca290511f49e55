"""Batch-norm folding and ONNX export of the students.

The exported graph has one input ``image`` ``(B, 3, H, W)`` float32 (normalised as the
model's ``preprocess`` says) and one named output per enabled head: ``seg`` ``(B, K, H, W)``
logits and ``depth`` ``(B, 1, H, W)`` range in metres. Batch is 1 unless ``dynamic_batch``;
``H``/``W`` are fixed at export. The file is plain ONNX; the student config and preprocessing
also ride along as ONNX ``metadata_props`` (``panoedge.config``, ``panoedge.preprocess``).

Exporter choice: torch 2.13's default ``torch.onnx.export`` is the dynamo exporter, which
needs ``onnxscript``; the TorchScript exporter (``dynamo=False``) gives a clean opset-17 graph
of plain Conv/Relu/Slice/Concat/Resize nodes with constant-folded indices, so that is used.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from panoedge.errors import UsageError
from panoedge.models.blocks import ConvBNAct, StemConv
from panoedge.models.students import check_input

#: Op types an exported student may contain: each exports at opset 17 and runs on TensorRT.
ALLOWED_ONNX_OPS = frozenset({
    "Conv", "Relu", "Clip", "HardSwish", "Sigmoid", "Add", "Mul",
    "Concat", "Slice", "Resize", "Constant",
})


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Eval-mode copy of ``model`` with every batch-norm folded into its convolution.

    Folds each :class:`ConvBNAct` (conv -> bn pairs as built by panoedge's blocks) using the
    running statistics, so outputs match the eval-mode model to float rounding. The original
    is untouched unless ``inplace``. A batch-norm outside those blocks raises ``UsageError``.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    for mod in model.modules():
        if isinstance(mod, ConvBNAct):
            mod.fold()
    left = [name for name, mod in model.named_modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise UsageError(f"batch-norm outside panoedge ConvBNAct blocks cannot be folded: {', '.join(left)}")
    return model


class _TupleOutputs(nn.Module):
    """Adapter: the student's dict output as a tuple in ``heads`` order, for the tracer."""

    def __init__(self, model: nn.Module, heads: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.heads = heads

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[h] for h in self.heads)


def prepare_for_export(model: nn.Module, hw: tuple[int, int]) -> nn.Module:
    """CPU, eval-mode copy with batch-norm folded and the latitude term baked for height ``H``."""
    m = fold_batchnorm(model).to("cpu")
    for mod in m.modules():
        if isinstance(mod, StemConv):
            mod.bake(int(hw[0]))
    return m


def graph_op_types(proto) -> set[str]:
    """The set of op types in an ``onnx.ModelProto``'s main graph."""
    return {node.op_type for node in proto.graph.node}


def _inline_shared_initializers(proto) -> None:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer, in place.

    The TorchScript exporter deduplicates equal parameters (e.g. the all-zero folded biases
    of an untrained model) into one initializer plus ``Identity`` nodes; copies keep the graph
    to the op set of :data:`ALLOWED_ONNX_OPS`.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy_ = proto.graph.initializer.add()
            copy_.CopyFrom(inits[node.input[0]])
            copy_.name = node.output[0]
        else:
            keep.append(node)
    if len(keep) != len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(keep)


def export_student_onnx(model: nn.Module, path: str | os.PathLike, hw: tuple[int, int],
                        opset: int = 17, dynamic_batch: bool = False, classes=None, colors=None,
                        depth_kind: str | None = None) -> Path:
    """Export a student to ONNX at input size ``hw = (H, W)``; returns the written path.

    Steps: validate the size (multiples of 32), fold batch-norm and bake the latitude term
    (:func:`prepare_for_export`, on a copy), trace with the TorchScript exporter at ``opset``,
    run ``onnx.checker``, check the op set against :data:`ALLOWED_ONNX_OPS`, then write to a
    temporary file beside ``path`` and ``os.replace`` it into place (readers never see a
    half-written file). ``dynamic_batch`` makes axis 0 of every input/output symbolic.
    ``classes``/``colors`` (optional) ride along as ``panoedge.classes``/``panoedge.colors``
    metadata, so any consumer of the plain ONNX file knows what the channels mean;
    ``panoedge.depth_kind`` says what the depth output is: ``metric`` (metres; the default for a
    depth head), ``relative`` (range up to scale and shift) or ``none`` (no depth head).
    """
    h, w = (int(v) for v in hw)
    check_input(torch.empty(1, 3, h, w, device="meta"))
    if opset < MIN_OPSET:
        raise UsageError(f"opset {opset}: need {MIN_OPSET} or newer")
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "heads"):
        raise UsageError("export_student_onnx needs a panoedge student (a model with .config.heads)")
    heads = tuple(config.heads)
    kind = (depth_kind or "metric") if "depth" in heads else "none"
    if kind not in DEPTH_KINDS:
        raise UsageError(f"depth kind {depth_kind!r}: choose metric or relative")
    if classes is not None and len(classes) != config.num_classes:
        raise UsageError(f"{len(classes)} class names for a student with {config.num_classes} classes")

    proto = _trace(_TupleOutputs(prepare_for_export(model, (h, w)), heads), heads=heads, hw=(h, w), opset=int(opset),
                   dynamic_batch=dynamic_batch)
    meta = {
        "panoedge.config": config.to_dict(),
        "panoedge.preprocess": getattr(model, "preprocess", None),
        "panoedge.export": {"hw": [h, w], "opset": int(opset), "dynamic_batch": bool(dynamic_batch),
                            "batchnorm_folded": True, "torch": torch.__version__},
        "panoedge.depth_kind": kind,
    }
    if classes is not None:
        meta["panoedge.classes"] = list(classes)
    if colors is not None:
        meta["panoedge.colors"] = [[int(c) for c in col] for col in colors]
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value, sort_keys=True)
    return _write_atomically(proto, Path(path))


MIN_OPSET = 13
"""The oldest ONNX opset the export supports (``Resize`` and ``Split`` as the deployable set uses them)."""
DEPTH_KINDS = ("metric", "relative", "none")


def _trace(wrapper: nn.Module, heads: tuple[str, ...], hw: tuple[int, int], opset: int, dynamic_batch: bool):
    """``wrapper`` traced with the TorchScript exporter, checked by ``onnx.checker`` and against
    :data:`ALLOWED_ONNX_OPS`; the ONNX ``ModelProto``."""
    import onnx

    h, w = hw
    names = ["image", *heads]
    dynamic_axes = {n: {0: "batch"} for n in names} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(wrapper, (torch.zeros(1, 3, h, w),), buf, dynamo=False,
                          opset_version=opset, input_names=["image"], output_names=list(heads),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    _inline_shared_initializers(proto)
    onnx.checker.check_model(proto)
    bad = graph_op_types(proto) - ALLOWED_ONNX_OPS
    if bad:
        raise UsageError(f"model exports op types outside the deployable set: {', '.join(sorted(bad))}")
    return proto


def _write_atomically(proto, path: Path) -> Path:
    """``proto`` written to a temporary file beside ``path``, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(proto.SerializeToString())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
