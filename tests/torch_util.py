"""Torch helpers shared by the model and deploy tests."""

from __future__ import annotations

import torch


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch-norm non-trivial statistics and affine terms, so folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()
