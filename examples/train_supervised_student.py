"""Train a student with full supervision on a dataset folder (labels + depth), then save ``student.pt``.

A quick way to get a trained student to quantize and bundle while distillation is not at hand:
the synthetic world gives exact labels and range, so a few hundred steps give a student whose
INT8 behaviour is worth measuring. Not a substitute for distillation on real teachers.

Loss (CONVENTIONS.md: every ERP pixel counts by its solid angle): area-weighted cross entropy on
labels (255 ignored) + area-weighted L1 on log depth over valid pixels. Augmentation is seam-safe:
a random yaw (horizontal roll of the ERP) and a left-right mirror.

Example (300 steps take 10-40 minutes per student on 2 CPU cores)::

    panoedge synth data/indoor-train --n 96 --size 256x512 --family indoor --seed 1
    python examples/train_supervised_student.py data/indoor-train --student pano-small \\
        --size 256x512 --steps 300 --out runs/pano-small
    panoedge export runs/pano-small --out runs/pano-small.onnx
    panoedge quantize runs/pano-small.onnx --calib synth:indoor --out runs/pano-small.int8.onnx
    panoedge build runs/pano-small --target cpu --calib synth:indoor --out bundles/small-cpu
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from panoedge.data import DatasetFolder
from panoedge.geometry import check_erp_size, parse_hw
from panoedge.geometry.torch_ops import erp_area_weights
from panoedge.models import create_student, save_student


def load_arrays(ds: DatasetFolder, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every sample resized to ``hw``: rgb (N, H, W, 3) uint8, labels (N, H, W) uint8, depth (N, H, W) m."""
    h, w = hw
    rgb, lab, dep = [], [], []
    for stem in ds.stems:
        s = ds.load(stem, ["rgb", "semantic", "depth"])
        rgb.append(cv2.resize(s["rgb"], (w, h), interpolation=cv2.INTER_AREA))
        lab.append(cv2.resize(s["semantic"], (w, h), interpolation=cv2.INTER_NEAREST))
        dep.append(cv2.resize(s["depth"], (w, h), interpolation=cv2.INTER_NEAREST))
    return {"rgb": np.stack(rgb), "labels": np.stack(lab), "depth": np.stack(dep)}


def batch(data: dict, idx: np.ndarray, rng: np.random.Generator, mean, std) -> tuple[torch.Tensor, ...]:
    """A normalised batch with a random yaw roll and mirror per image (both seam-safe on ERP)."""
    rgb, lab, dep = data["rgb"][idx], data["labels"][idx], data["depth"][idx]
    w = rgb.shape[2]
    for i in range(len(idx)):
        shift = int(rng.integers(w))
        rgb[i], lab[i], dep[i] = (np.roll(a[i], shift, axis=1) for a in (rgb, lab, dep))
        if rng.random() < 0.5:
            rgb[i], lab[i], dep[i] = (a[i][:, ::-1] for a in (rgb, lab, dep))
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x, torch.from_numpy(lab.astype(np.int64)), torch.from_numpy(dep.astype(np.float32))


def loss_fn(out: dict, labels: torch.Tensor, depth: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Area-weighted cross entropy + area-weighted L1 of log depth (valid pixels only)."""
    ce = F.cross_entropy(out["seg"], labels, ignore_index=255, reduction="none")
    seg_w = area * (labels != 255)
    seg = (ce * seg_w).sum() / seg_w.sum().clamp_min(1e-6)
    valid = depth > 0
    dep_w = area * valid
    err = (torch.log(out["depth"][:, 0].clamp_min(1e-3)) - torch.log(depth.clamp_min(1e-3))).abs()
    dep = (err * dep_w).sum() / dep_w.sum().clamp_min(1e-6)
    return seg + dep


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    hw = check_erp_size(*parse_hw(args.size, "--size"), what="--size", multiple=32)
    ds = DatasetFolder(args.data)
    data = load_arrays(ds, hw)
    model = create_student(args.student, len(ds.classes), max_depth_m=args.max_depth)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    area = erp_area_weights(*hw)[None]  # (1, H, 1) broadcast over batch and width
    rng = np.random.default_rng(args.seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        x, labels, depth = batch(data, rng.choice(len(ds), args.batch, replace=False), rng, model.config.mean,
                                 model.config.std)
        loss = loss_fn(model(x), labels, depth, area)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  lr {lr:.2e}  {time.perf_counter() - t0:6.0f} s", flush=True)
    model.eval()
    meta = {"trained": "supervised on synthetic ground truth (examples/train_supervised_student.py)",
            "data": str(args.data), "size": list(hw), "steps": args.steps, "batch": args.batch, "seed": args.seed}
    out = Path(args.out)
    return save_student(out / "student.pt", model, ds.classes, ds.colors, family=ds.meta.get("family"), meta=meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="dataset folder with rgb/, semantic/ and depth/")
    p.add_argument("--student", default="pano-small")
    p.add_argument("--size", default="256x512", help="training size HxW (multiples of 32, W = 2H)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-depth", type=float, default=20.0, help="depth head range in metres (indoor: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="run folder; student.pt is written inside")
    path = train(p.parse_args())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
