"""Pre- and post-processing shared by every runner, calibration and evaluation (NumPy + OpenCV).

Preprocessing is described by a dict (written by the exporter into the ONNX metadata and the
bundle manifest)::

    {"layout": "NCHW", "color": "RGB", "dtype": "float32", "scale": 1/255,
     "mean": [...], "std": [...], "formula": "(rgb_uint8 * scale - mean) / std"}

ERP frames are resized to the model's input size with ``cv2.INTER_AREA`` (RGB) or nearest
neighbour (labels, depth); the width wraps, so resizing a whole ERP needs no seam handling.
"""

from __future__ import annotations

import numpy as np

from panoedge.errors import DataError, UsageError

IGNORE = 255
DEFAULT_PREPROCESS = {"layout": "NCHW", "color": "RGB", "dtype": "float32", "scale": 1.0 / 255.0,
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                      "formula": "(rgb_uint8 * scale - mean) / std"}


def check_preprocess(spec: dict | None) -> dict:
    """A complete, validated preprocessing dict (missing keys are a ``DataError``, not defaulted)."""
    if not isinstance(spec, dict):
        raise DataError("preprocessing: missing (expected a dict with scale, mean, std, layout, color)")
    missing = [k for k in ("scale", "mean", "std") if k not in spec]
    if missing:
        raise DataError(f"preprocessing: missing {', '.join(missing)}")
    if spec.get("layout", "NCHW") != "NCHW" or spec.get("color", "RGB") != "RGB":
        raise DataError(f"preprocessing: layout {spec.get('layout')!r} / color {spec.get('color')!r}: "
                        "only NCHW RGB is supported")
    def numbers(v, n):
        return isinstance(v, (list, tuple)) and len(v) == n and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v)

    if not numbers(spec["mean"], 3) or not numbers(spec["std"], 3) or min(spec["std"]) <= 0:
        raise DataError("preprocessing: mean and std need three finite numbers each, std positive")
    if not numbers([spec["scale"]], 1) or spec["scale"] <= 0:
        raise DataError(f"preprocessing: scale {spec['scale']!r}: expected a positive number")
    return spec


def resize_rgb(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``(H', W', 3)`` uint8 -> ``(H, W, 3)`` uint8 with ``INTER_AREA`` (no-op at the right size)."""
    import cv2

    h, w = hw
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def resize_nearest(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Labels or depth resized by nearest neighbour (never mixes classes or depths)."""
    import cv2

    h, w = hw
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)


def preprocess(rgb: np.ndarray, hw: tuple[int, int], spec: dict) -> np.ndarray:
    """An 8-bit RGB ERP frame ``(H', W', 3)`` -> the model input ``(1, 3, H, W)`` float32."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise UsageError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    std = np.asarray(spec["std"], np.float32)
    x = resize_rgb(rgb, hw).astype(np.float32)
    x *= np.float32(spec["scale"]) / std  # (rgb * scale - mean) / std as one multiply and one subtract, in place:
    x -= np.asarray(spec["mean"], np.float32) / std  # a per-frame hot path: no temporary frames
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def postprocess(outputs: dict[str, np.ndarray], out_hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Model outputs -> ``{"labels": (H, W) uint8, "depth": (H, W) float32 metres}`` (present heads only).

    ``seg`` logits ``(1, K, H, W)`` become class ids by arg-max; ``depth`` ``(1, 1, H, W)`` is
    range in metres already. ``out_hw`` resizes both (nearest) to another size, e.g. the camera's.
    """
    out = {}
    if "seg" in outputs:
        out["labels"] = argmax_channels(np.asarray(outputs["seg"])[0])
    if "depth" in outputs:
        out["depth"] = np.asarray(outputs["depth"], dtype=np.float32)[0, 0]
    if out_hw is not None:
        out = {k: resize_nearest(v, out_hw) for k, v in out.items()}
    return out


def argmax_channels(logits: np.ndarray) -> np.ndarray:
    """``(K, H, W)`` scores -> ``(H, W)`` uint8 index of the largest (the first on ties), as
    ``logits.argmax(0)``, but as K whole-plane OpenCV compare/max passes instead of NumPy's strided
    reduction over the leading axis: about 10x faster on a 512x1024 frame of 11 classes."""
    import cv2

    logits = np.ascontiguousarray(logits, dtype=np.float32)
    if logits.ndim != 3 or not 1 <= logits.shape[0] <= 256:
        raise UsageError(f"expected (K, H, W) scores with 1 <= K <= 256, got {logits.shape}")
    best = logits[0].copy()
    idx = np.zeros(logits.shape[1:], np.uint8)
    for k in range(1, logits.shape[0]):
        gt = cv2.compare(logits[k], best, cv2.CMP_GT)  # 255 where class k wins so far
        cv2.max(best, logits[k], dst=best)
        np.bitwise_or(idx & ~gt, gt & np.uint8(k), out=idx)
    return idx
