"""Class maps on teacher probabilities; the map files themselves are read by :mod:`panoedge.data.classmap`."""

from __future__ import annotations

import torch

from panoedge.data.classmap import (CLASSMAP_DIR, IGNORE, KEYS, SCHEMA, ClassMap, load_class_map, map_target_classes,
                                    normalise_name, shipped_class_maps)
from panoedge.errors import UsageError

__all__ = ["CLASSMAP_DIR", "IGNORE", "KEYS", "SCHEMA", "ClassMap", "apply_class_map", "load_class_map",
           "map_target_classes", "normalise_name", "shipped_class_maps"]


def apply_class_map(probs: torch.Tensor, mapping: ClassMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum source probabilities into target classes.

    ``probs`` ``(B, Ks, H, W)`` (softmax over ``Ks = len(mapping.source)``) -> ``(target, ignore)``:
    ``target`` ``(B, Kt, H, W)`` the summed probabilities of each target class, and ``ignore``
    ``(B, 1, H, W)`` the probability mass of ignored source classes, so
    ``target.sum(1) + ignore == probs.sum(1)`` (1 for softmax input). ``target`` is not
    renormalised: a pixel whose mass is mostly ignored keeps low target probabilities.
    """
    if probs.ndim != 4 or probs.shape[1] != len(mapping.source):
        raise UsageError(f"probabilities of shape {tuple(probs.shape)}: expected (B, {len(mapping.source)}, H, W) "
                         "for the class map's source classes")
    m = mapping.matrix(device=probs.device, dtype=probs.dtype)
    target = torch.einsum("bshw,st->bthw", probs, m)
    ignored = [s for s, t in enumerate(mapping.index) if t < 0]
    ignore = probs[:, ignored].sum(1, keepdim=True) if ignored else probs.new_zeros(probs.shape[0], 1, *probs.shape[2:])
    return target, ignore
