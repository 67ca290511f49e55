"""Process-group helpers for a distillation launched by ``torchrun`` (one process: all no-ops).

Under DDP (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from ``torchrun``) the process group is ``nccl``
on CUDA and ``gloo`` on CPU.
"""

from __future__ import annotations

import os

import torch

from panoedge.errors import UsageError


def dist_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the ``torchrun`` environment (``(0, 1, 0)`` without)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by ``torchrun``; returns ``(rank, world_size)``."""
    import torch.distributed as dist

    rank, world, _ = dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


def barrier(world: int) -> None:
    """All ranks wait here (no-op for one process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{dist_info()[2]}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r}: CUDA is not available on this machine")
    return dev


def broadcast_buffers(*models: torch.nn.Module) -> None:
    """Rank 0's batch-norm buffers to every rank (DDP keeps parameters in step, not buffers)."""
    import torch.distributed as dist

    for m in models:
        for b in m.buffers():
            dist.broadcast(b.data, 0)
