"""Parameter and compute summaries of the registered students.

Compute is counted, not estimated from a formula: forward hooks on every ``nn.Conv2d`` and
``nn.Linear`` add up multiply-accumulates (MACs) during one forward pass at batch 1, run on
torch's ``meta`` device so no arithmetic is done and any size is instant.
**GFLOPs = 2 * MACs / 1e9** of those layers; element-wise ops (batch-norm, activations, adds,
sigmoid) and resizes are not counted (they are a few percent and fuse on every backend).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from panoedge.models.registry import create_student, get_student_entry, list_students
from panoedge.results import Record, Result

TABLE_SIZES = ((256, 512), (512, 1024))
"""ERP input sizes (H, W) the ``panoedge models`` table gives GFLOPs at: the training size and the deploy size."""
TABLE_NUM_CLASSES = 20
"""Segmentation classes of the table's figures unless ``--classes`` says otherwise."""
GFLOPS_DIGITS = 3
"""Decimals GFLOPs are rounded to in the table and its JSON."""


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``; buffers are not counted."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, hw: tuple[int, int]) -> int:
    """Conv and linear multiply-accumulates of one forward pass of a ``(1, 3, H, W)`` input.

    A conv contributes ``output elements * (in_channels / groups) * kh * kw``; a linear
    ``output elements * in_features``. The model must accept a ``meta`` tensor (all panoedge
    students do); it is run in eval mode under ``torch.no_grad`` on the device of its parameters.
    """
    total = 0

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total += out.numel() * (mod.in_channels // mod.groups) * kh * kw
        else:
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *hw, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def model_summary(name: str, num_classes: int, hw: tuple[int, int], **kw) -> dict:
    """Parameters and compute of student ``name`` at input ``hw = (H, W)``.

    Returns ``{"name", "num_classes", "hw", "params", "macs", "gflops"}`` where ``gflops`` is
    ``2 * macs / 1e9`` (see the module docstring for what is counted). ``kw`` goes to
    :func:`create_student` (e.g. ``heads=("seg",)``).
    """
    with torch.device("meta"):
        model = create_student(name, num_classes, **kw)
    macs = count_macs(model, tuple(hw))
    return {"name": name, "num_classes": int(num_classes), "hw": [int(hw[0]), int(hw[1])],
            "params": count_parameters(model), "macs": macs, "gflops": 2.0 * macs / 1e9}


@dataclass(frozen=True)
class StudentRow(Record):
    """One registered student: parameters and GFLOPs per :data:`TABLE_SIZES` entry. The JSON form
    is flat: ``name``, ``params``, ``gflops_256x512``, ``gflops_512x1024``, ``description``."""

    name: str
    params: int
    gflops: tuple[tuple[tuple[int, int], float], ...]  # ((H, W), GFLOPs) per table size
    description: str

    def gflops_at(self, hw: tuple[int, int]) -> float:
        return dict(self.gflops)[tuple(hw)]

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params,
                **{f"gflops_{h}x{w}": v for (h, w), v in self.gflops}, "description": self.description}


@dataclass(frozen=True)
class StudentsTable(Result):
    """``panoedge models``: every registered student, smallest first (by parameters)."""

    SCHEMA = "panoedge.models/1"

    num_classes: int
    students: tuple[StudentRow, ...]

    def format(self) -> str:
        sizes = [hw for hw, _ in self.students[0].gflops] if self.students else list(TABLE_SIZES)
        cols = [f"GFLOPs {h}x{w}" for h, w in sizes]  # each column one wider than its title
        lines = [f"{'name':<12} {'params':>10}" + "".join(f" {c:>{len(c) + 1}}" for c in cols) + "  description"]
        for r in self.students:
            figures = "".join(f" {v:>{len(c) + 1}.2f}" for c, (_, v) in zip(cols, r.gflops))
            lines.append(f"{r.name:<12} {r.params:>10,}{figures}  {r.description}")
        lines.append("GFLOPs = 2 x multiply-accumulates of conv and linear layers, both heads on.")
        return "\n".join(lines)


def students_table(num_classes: int = TABLE_NUM_CLASSES) -> list[StudentRow]:
    """One row per registered student (registry order), for ``panoedge models``: parameters and
    GFLOPs at each of :data:`TABLE_SIZES` (both heads, ``num_classes`` segmentation classes)."""
    rows = []
    for name in list_students():
        summaries = [model_summary(name, num_classes, hw) for hw in TABLE_SIZES]
        gflops = tuple((hw, round(s["gflops"], GFLOPS_DIGITS)) for hw, s in zip(TABLE_SIZES, summaries))
        rows.append(StudentRow(name=name, params=summaries[0]["params"], gflops=gflops,
                               description=get_student_entry(name).description))
    return rows


def list_students_table(num_classes: int = TABLE_NUM_CLASSES) -> StudentsTable:
    """``panoedge models``: :func:`students_table`, smallest student first."""
    rows = sorted(students_table(num_classes=num_classes), key=lambda r: r.params)
    return StudentsTable(num_classes=int(num_classes), students=tuple(rows))
