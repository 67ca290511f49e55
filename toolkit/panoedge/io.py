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


def colorize_depth(depth_m: np.ndarray, max_m: float | None = None) -> np.ndarray:
    """A turbo colour map of depth (near = red, far = blue), invalid black; ``(H, W, 3)`` RGB."""
    d = np.asarray(depth_m, dtype=np.float32)
    ok = np.isfinite(d) & (d > 0)
    top = float(max_m) if max_m else (float(np.percentile(d[ok], 98)) if ok.any() else 1.0)
    x = np.clip(1.0 - np.log1p(np.where(ok, d, 0)) / np.log1p(max(top, 1e-3)), 0, 1)
    bgr = cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~ok] = 0
    return rgb
