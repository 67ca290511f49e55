"""Parameter and compute summaries of the registered students.

Compute is counted, not estimated from a formula: forward hooks on every ``nn.Conv2d`` and
``nn.Linear`` add up multiply-accumulates (MACs) during one forward pass at batch 1, run on
torch's ``meta`` device so no arithmetic is done and any size is instant.
**GFLOPs = 2 * MACs / 1e9** of those layers; element-wise ops (batch-norm, activations, adds,
sigmoid) and resizes are not counted (they are a few percent and fuse on every backend).
"""

from __future__ import annotations

import torch
from torch import nn

from panoedge.models.registry import create_student, get_student_entry, list_students

TABLE_SIZES = ((256, 512), (512, 1024))
TABLE_NUM_CLASSES = 20


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


def students_table(num_classes: int = TABLE_NUM_CLASSES) -> list[dict]:
    """One row per registered student, for ``panoedge models``.

    Each row: ``name``, ``params``, ``gflops_256x512``, ``gflops_512x1024`` (both heads,
    ``num_classes`` segmentation classes) and ``description``.
    """
    rows = []
    for name in list_students():
        row = {"name": name}
        for hw in TABLE_SIZES:
            s = model_summary(name, num_classes, hw)
            row["params"] = s["params"]
            row[f"gflops_{hw[0]}x{hw[1]}"] = round(s["gflops"], 3)
        row["description"] = get_student_entry(name).description
        rows.append(row)
    return rows
