"""Reading and writing images, depth and labels as CONVENTIONS.md defines them.

- RGB: 8-bit PNG or JPEG on disk, ``(H, W, 3)`` uint8 RGB in memory.
- Depth: 16-bit PNG in millimetres (0 = invalid) or ``.npy`` float32 metres; the extension
  decides. In memory float32 metres, 0 = invalid.
- Labels: uint8 PNG of class ids, 255 = ignore.
Every write is atomic (temp file, then rename); every read failure names the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from panoedge.errors import DataError
from panoedge.home import atomic_write_bytes
from panoedge.image_guard import check_image_file

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
IGNORE = 255


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB; a clear error if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    check_image_file(path)  # dimensions from the header, refused above the pixel budget before decoding
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: not a readable image (corrupt, or not PNG/JPEG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _encode(path: Path, img: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(path.suffix.lower() or ".png", img, list(params))
    if not ok:
        raise DataError(f"{path}: could not encode an image of shape {img.shape} and dtype {img.dtype}")
    return buf.tobytes()


def write_rgb(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Atomically write an RGB uint8 image (PNG or JPEG by extension)."""
    path = Path(path)
    params = (cv2.IMWRITE_JPEG_QUALITY, jpeg_quality) if path.suffix.lower() in (".jpg", ".jpeg") else ()
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    return atomic_write_bytes(path, _encode(path, bgr, params))


def write_depth(path: str | Path, depth_m: np.ndarray) -> Path:
    """Atomically write depth in metres: ``.png`` as uint16 millimetres, ``.npy`` as float32."""
    path = Path(path)
    d = np.asarray(depth_m, dtype=np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    if path.suffix.lower() == ".npy":
        import io as _io

        buf = _io.BytesIO()
        np.save(buf, d.astype(np.float32))
        return atomic_write_bytes(path, buf.getvalue())
    if path.suffix.lower() != ".png":
        raise DataError(f"{path}: depth is written as .png (uint16 mm) or .npy (float32 m)")
    mm = np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)
    return atomic_write_bytes(path, _encode(path, mm))


def read_depth(path: str | Path) -> np.ndarray:
    """Depth in float32 metres (0 = invalid) from ``.png`` (uint16 mm) or ``.npy`` (float32 m)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such depth file")
    if path.suffix.lower() == ".npy":
        try:
            d = np.load(path)
        except Exception as e:  # numpy raises several types for bad files
            raise DataError(f"{path}: not a readable .npy depth file ({e})") from None
        d = np.asarray(d, dtype=np.float32)
        return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
    check_image_file(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a readable depth image")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise DataError(f"{path}: depth PNG must be single-channel 16-bit millimetres, got {img.dtype} {img.shape}")
    return img.astype(np.float32) / 1000.0


def write_labels(path: str | Path, labels: np.ndarray) -> Path:
    """Atomically write class ids as a uint8 PNG (255 = ignore)."""
    path = Path(path)
    return atomic_write_bytes(path, _encode(path, np.ascontiguousarray(labels, dtype=np.uint8)))


def read_labels(path: str | Path) -> np.ndarray:
    """Class ids ``(H, W)`` uint8 from a single-channel PNG."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such label file")
    check_image_file(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a readable label image")
    if img.ndim != 2 or img.dtype != np.uint8:
        raise DataError(f"{path}: labels must be a single-channel 8-bit PNG, got {img.dtype} {img.shape}")
    return img


def colorize_labels(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from class ids and a ``(K, 3)`` palette; ignore (255) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(colors, dtype=np.uint8)
    lut[: len(colors)] = colors
    return lut[np.asarray(labels, dtype=np.uint8)]


def depth_range(depth_m: np.ndarray) -> tuple[float, float]:
    """``(near, far)`` for colouring: the 2nd and 98th percentiles of the valid depth (far > near)."""
    d = np.asarray(depth_m, dtype=np.float32)
    ok = d[np.isfinite(d) & (d > 0)]
    if not ok.size:
        return 0.5, 10.0
    ok = ok[:: max(1, ok.size // 50000)]
    near, far = (float(v) for v in np.percentile(ok, [2, 98]))
    return max(near, 1e-3), max(far, 1.001 * max(near, 1e-3))


def colorize_depth(depth_m: np.ndarray, max_m: float | None = None, min_m: float | None = None) -> np.ndarray:
    """A turbo colour map of depth, near red to far blue, invalid black; ``(H, W, 3)`` RGB.

    Colours are linear in inverse depth between ``min_m`` (red) and ``max_m`` (blue), by default
    :func:`depth_range`: inverse depth spreads the near field, where a robot acts, over most of
    the colours, and the percentiles make sure both ends of the scale are used.
    """
    d = np.asarray(depth_m, dtype=np.float32)
    ok = np.isfinite(d) & (d > 0)
    if not (min_m and max_m):  # the live viewer passes both (its range adapts once a second): no percentiles per frame
        near, far = depth_range(d)
    near = float(min_m) if min_m else near
    far = float(max_m) if max_m else far
    far = max(far, 1.001 * near)
    inv = np.where(ok, 1.0 / np.where(ok, d, 1.0), 0.0)
    x = np.clip((inv - 1.0 / far) / (1.0 / near - 1.0 / far), 0, 1)
    bgr = cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~ok] = 0
    return rgb


def depth_with_scale(depth_m: np.ndarray, unit: str = "m") -> np.ndarray:
    """:func:`colorize_depth` with its colour scale and tick labels under the image (RGB uint8).

    ``unit`` labels the ticks (``"m"``; a relative-depth model's units are not metres).
    """
    d = np.asarray(depth_m, dtype=np.float32)
    near, far = depth_range(d)
    img = colorize_depth(d, max_m=far, min_m=near)
    h, w = img.shape[:2]
    bar_h, text_h = max(8, h // 40), max(18, h // 20)
    ticks = np.linspace(0, 1, w, dtype=np.float32)
    inv = 1.0 / far + ticks * (1.0 / near - 1.0 / far)
    bar = colorize_depth(np.repeat((1.0 / inv)[::-1][None], bar_h, axis=0), max_m=far, min_m=near)
    panel = np.full((bar_h + text_h, w, 3), 24, np.uint8)
    panel[:bar_h] = bar
    scale = max(0.35, text_h / 40.0)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = 1.0 / (1.0 / far + (1.0 - frac) * (1.0 / near - 1.0 / far))
        label = f"{v:.2f} {unit}" if far - near < 1 else (f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}")
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = int(np.clip(frac * (w - 1) - tw / 2, 0, w - tw))
        cv2.putText(panel, label, (x, bar_h + int(text_h * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 1,
                    cv2.LINE_AA)
    return np.concatenate([img, panel], axis=0)
