"""The student checkpoint file (``student.pt``): weights plus everything needed to rebuild them.

Format (``torch.save`` of a dict, loaded with ``weights_only=True``)::

    {"schema": "panoedge.student/1", "name": "pano-small", "num_classes": 11,
     "kwargs": {...create_student keyword arguments...}, "classes": [...], "colors": [[r, g, b], ...],
     "family": "indoor", "state_dict": {...}, "meta": {...free-form, JSON-able...}}

A distillation run folder holds ``student.pt`` (the final EMA weights) beside ``config.json``;
anything that takes a model accepts the file or the run folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from panoedge.errors import DataError
from panoedge.home import atomic_write_bytes
from panoedge.models.registry import create_student

SCHEMA = "panoedge.student/1"
_KWARGS = ("heads", "max_depth_m", "min_depth_m", "latitude", "mean", "std")


def student_kwargs(model: nn.Module) -> dict:
    """The ``create_student`` keyword arguments that rebuild ``model``'s architecture."""
    cfg = model.config.to_dict()
    return {k: (list(cfg[k]) if isinstance(cfg[k], tuple) else cfg[k]) for k in _KWARGS if k in cfg}


def save_student(path: str | Path, model: nn.Module, classes, colors=None, family: str | None = None,
                 meta: dict | None = None) -> Path:
    """Atomically write ``student.pt`` for ``model`` (a registered student)."""
    cfg = model.config
    if len(classes) != cfg.num_classes:
        raise DataError(f"{path}: {len(classes)} class names for a student with {cfg.num_classes} classes")
    blob = {
        "schema": SCHEMA,
        "name": cfg.name,
        "num_classes": int(cfg.num_classes),
        "kwargs": student_kwargs(model),
        "classes": list(classes),
        "colors": [list(map(int, c)) for c in colors] if colors is not None else None,
        "family": family,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_plain(path: str | Path, what: str, map_location="cpu"):
    """``torch.load`` with ``weights_only=True``: tensors, numbers, strings, lists and dicts only.

    Every checkpoint panoedge writes (student, resume checkpoints, label shards) is plain data, so
    a file that needs anything else was not written by panoedge and may run code if unpickled:
    it is refused with a ``DataError`` naming the file, and nothing in it is executed.
    """
    import pickle

    p = Path(path)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        detail = text[text.find("WeightsUnpickler error:"):].split("\n\n")[0] if "WeightsUnpickler" in text else text
        detail = " ".join(detail.replace("WeightsUnpickler error:", "").split()).split(". Please")[0][:200]  # not torch's advice to allow it
        if "global" in detail.lower() or "class" in detail.lower():
            raise DataError(f"{p}: refused: not a plain {what}: it asks to build objects panoedge never writes "
                            f"({detail}), which could run code; nothing was executed. Delete it to start over") from None
        raise DataError(f"{p}: not a readable {what} (corrupt, or not written by panoedge: {detail})") from None
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise DataError(f"{p}: not a readable {what} ({type(e).__name__}: {e})") from None


def resolve_student_path(path: str | Path) -> Path:
    """``student.pt`` itself, or the one inside a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "student.pt"
    if not p.is_file():
        raise DataError(f"{p}: no such student checkpoint (expected student.pt or a run folder holding one)")
    return p


def trained_hw(path: str | Path) -> tuple[int, int] | None:
    """The ERP size ``(H, W)`` a ``student.pt`` (or run folder) was trained at (``meta.size``), if recorded."""
    p = resolve_student_path(path)
    try:
        blob = torch.load(p, map_location="meta", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise DataError(f"{p}: not a readable student checkpoint ({type(e).__name__}: {e})") from None
    size = (blob.get("meta") or {}).get("size") if isinstance(blob, dict) else None
    return (int(size[0]), int(size[1])) if size else None


def load_student(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a student from ``student.pt`` (or a run folder): ``(model in eval mode, info)``.

    ``info`` holds everything in the file except the weights (classes, colours, family, meta).
    """
    p = resolve_student_path(path)
    blob = load_plain(p, "student checkpoint", map_location)
    if not isinstance(blob, dict) or blob.get("schema") != SCHEMA:
        raise DataError(f"{p}: schema: expected {SCHEMA!r}, got {blob.get('schema') if isinstance(blob, dict) else type(blob).__name__}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in blob["kwargs"].items()}
    model = create_student(blob["name"], blob["num_classes"], **kwargs)
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if missing or unexpected:
        raise DataError(f"{p}: weights do not fit {blob['name']}: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    model.eval()
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, info
