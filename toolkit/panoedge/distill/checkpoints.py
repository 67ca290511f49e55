"""A distillation run folder's persistent state: resume checkpoint, config check and logs.

``ckpt.pt`` every ``ckpt_every`` steps (model, EMA, optimiser, scaler, step, generation, RNG
states; atomic): a rerun resumes from it and ends with bit-identical weights. ``log.csv`` and,
when ``tensorboard`` is importable, ``tb/`` (:class:`RunLog`).
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import numpy as np
import torch

from panoedge.distill.config import DistillConfig, load_run_config
from panoedge.errors import UsageError
from panoedge.home import atomic_write_bytes
from panoedge.models.checkpoint import load_plain

CKPT, LABELS, CONFIG, STUDENT, REPORT, LOG = "ckpt.pt", "labels", "config.json", "student.pt", "report.json", "log.csv"
NON_SEMANTIC = ("ckpt_every", "log_every", "eval_data", "eval_n", "device")
"""Config fields that do not change the weights: a resumed run may change them."""
LOG_KEYS = ("loss", "seg", "depth", "pixl", "depthg", "cons")
"""Loss parts written to ``log.csv`` (0 where a part is off)."""


def semantic(cfg: DistillConfig) -> dict:
    """The config fields that change the weights (not logging, checkpoint cadence, eval or device)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in NON_SEMANTIC}


def save_ckpt(path: Path, cfg, model, ema, opt, scaler, step: int, generation: int) -> None:
    """Atomically write everything a resume needs (weights, EMA, optimiser, scaler, step, RNG states)."""
    buf = io.BytesIO()
    torch.save({"config": semantic(cfg), "step": step, "generation": generation, "model": model.state_dict(),
                "ema": ema.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _numpy_rng_state() -> dict:
    """NumPy's global RNG state as plain data (tensors and numbers), so checkpoints load with ``weights_only``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(s: dict) -> None:
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))


def load_ckpt(path: Path, cfg, model, ema, opt, scaler) -> tuple[int, int]:
    """Restore :func:`save_ckpt`'s state for the same config; returns ``(step, generation)``."""
    state = load_plain(path, "resume checkpoint")
    if state["config"] != semantic(cfg):
        diff = sorted(k for k in state["config"] if state["config"].get(k) != semantic(cfg).get(k))
        raise UsageError(f"{path} was written by another configuration (differs in {', '.join(diff)}); "
                         "use another --out or the same config")
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    _set_numpy_rng_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), int(state["generation"])


class RunLog:
    """``log.csv`` (one row per ``log_every`` steps) and TensorBoard scalars under ``tb/`` when
    ``tensorboard`` is importable; only the writing rank opens anything. On resume, rows past
    the resumed step are dropped so the log matches an uninterrupted run."""

    def __init__(self, out: Path, active: bool, resume_step: int = 0):
        self.active, self.path, self.tb = active, out / LOG, None
        if not active:
            return
        header = "step,generation,lr," + ",".join(LOG_KEYS) + ",wall_s\n"
        rows = self.path.read_text().splitlines()[1:] if self.path.is_file() else []
        keep = [r for r in rows if r and int(r.split(",")[0]) <= resume_step]
        self.path.write_text(header + "".join(r + "\n" for r in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:
            self.tb = None
        self.t0 = time.perf_counter()

    def write(self, step: int, generation: int, lr: float, parts: dict) -> None:
        if not self.active:
            return
        vals = [f"{parts.get(k, 0.0):.6g}" for k in LOG_KEYS]
        with open(self.path, "a") as f:
            f.write(f"{step},{generation},{lr:.6g}," + ",".join(vals) + f",{time.perf_counter() - self.t0:.2f}\n")
        if self.tb is not None:
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def check_out(out: Path, cfg: DistillConfig) -> None:
    """Refuse a run folder that is not a folder, holds something else, or was written by another config."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CKPT).is_file() and not (out / CONFIG).is_file():
        raise UsageError(f"{out} exists and holds no {CKPT}; choose an empty or new folder")
    if (out / CONFIG).is_file() and semantic(load_run_config(out / CONFIG)) != semantic(cfg):
        raise UsageError(f"{out / CONFIG} was written by another configuration; use another --out or the same config")
    if (out / CKPT).is_file():  # a checkpoint that is not plain data, or another config's, is refused before any work
        state = load_plain(out / CKPT, "resume checkpoint")
        if not isinstance(state, dict) or state.get("config") != semantic(cfg):
            raise UsageError(f"{out / CKPT} was written by another configuration; use another --out or the same config")
