"""The torch ``grid_sample`` path of the feather stitch (CUDA when present; CPU for checking).

It runs the CPU path's integer pipeline step by step (:mod:`panoedge.stitch.tables`), so the
two agree within 1 grey level (in practice they are equal):

- sampling positions are decoded from the same fixed-point ``cv2.remap`` maps (integer part +
  k/32 fraction), and ``grid_sample`` (bilinear, zero padding, ``align_corners=False``) runs in
  float64, so each weighted sum equals OpenCV's fixed-point sum exactly; it is then rounded half
  up as ``cv2.remap`` does;
- the gain images are the CPU path's own (built by ``cv2.transform`` when the gains change,
  then uploaded), and products are rounded half to even as ``cv2.multiply`` does.

torch is imported here only (the one module of ``panoedge.stitch`` that does), inside functions: when
this backend is created or :func:`cuda_available` finds an NVIDIA driver, so ``panoedge.stitch`` loads
torch-free and a CPU-only robot never imports it.
"""

from __future__ import annotations

import numpy as np

_EPS = 2.0 ** -12
"""Below the 1/1024 step of the exact bilinear sums: makes float64 ties round up like OpenCV."""


def fixed_to_grid(m1: np.ndarray, m2: np.ndarray, src_hw) -> np.ndarray:
    """A ``grid_sample`` grid ``(H, W, 2)`` float64 (``align_corners=False``) from ``cv2`` fixed-point maps.

    ``m1 (H, W, 2) int16`` holds the integer source position, ``m2 (H, W) uint16`` the fraction
    index ``ty * 32 + tx``; the source pixel is ``(x, y) = m1 + (tx, ty) / 32``.
    """
    h_src, w_src = src_hw
    x = m1[..., 0].astype(np.float64) + (m2 & 31).astype(np.float64) / 32.0
    y = m1[..., 1].astype(np.float64) + (m2 >> 5).astype(np.float64) / 32.0
    return np.stack([(2.0 * x + 1.0) / w_src - 1.0, (2.0 * y + 1.0) / h_src - 1.0], axis=-1)


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device; never imports torch on machines without
    an NVIDIA driver (the robot runtime stays torch-free)."""
    import importlib.util
    import os

    if importlib.util.find_spec("torch") is None:
        return False
    if not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvhost-ctrl")):
        return False
    import torch

    return bool(torch.cuda.is_available())


class TorchBackend:
    """Feather stitching with ``torch.nn.functional.grid_sample`` on ``device`` (``cuda`` or ``cpu``)."""

    def __init__(self, device: str = "cuda"):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            from panoedge.errors import UsageError

            raise UsageError("device cuda: torch sees no CUDA GPU here (use device auto or cpu)")
        self.torch = torch
        self.device = torch.device(device)
        self._prepared: dict = {}
        self._gains: tuple | None = None

    def _tensor(self, a: np.ndarray):
        """``(H, W, C)`` array -> ``(1, C, H, W)`` float64 tensor on the device."""
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device).permute(2, 0, 1)[None].double()

    def _prepare(self, t):
        key = id(t)
        if key not in self._prepared:
            torch = self.torch
            hc, wc = t.canvas_hw
            grids = (fixed_to_grid(*t.strip_maps, (hc, wc)), fixed_to_grid(*t.main_maps, t.padded_hw))
            self._prepared = {key: tuple(torch.from_numpy(g)[None].to(self.device) for g in grids)}
            self._gains = None
        return self._prepared[key]

    def _sample(self, src, grid):
        import torch.nn.functional as F

        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.torch.floor(out + 0.5 + _EPS).clamp_(0, 255)

    def _scale(self, img, gain, one: int):
        from panoedge.stitch.exposure import CLIPPED_LEVEL, KEEP_CLIPPED_MIN_GAIN

        out = self.torch.round(img * gain / one).clamp_(0, 255)
        keep = (img >= CLIPPED_LEVEL) & (gain > KEEP_CLIPPED_MIN_GAIN * one - 1)
        return out.masked_fill_(keep, 255.0)  # clipped stays white under a mild gain, as on the CPU

    def stitch(self, stitcher, t, canvas: np.ndarray) -> np.ndarray:
        """Stitch the frame already loaded in ``canvas`` (the CPU path's buffer) with tables ``t``."""
        torch = self.torch
        strip_grid, main_grid = self._prepare(t)
        hc = t.canvas_hw[0]
        src = self._tensor(canvas[:hc])
        strip = self._sample(src, strip_grid)
        strip_np = strip[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
        gains = stitcher.gains_for(t, strip_np)
        correct = stitcher.exposure is not None or t.has_vignetting
        gm = None
        if correct:
            strip_gain, gm_np = stitcher._gain_images(t, gains)
            if self._gains is None or self._gains[0] is not gm_np:
                self._gains = (gm_np, self._tensor(strip_gain), self._tensor(gm_np))
            strip = self._scale(strip, self._gains[1], t.one)
            gm = self._gains[2]
        out = self._sample(torch.cat([src, strip], dim=2), main_grid)
        if gm is not None:
            out = self._scale(out, gm, t.one)
        return out[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
