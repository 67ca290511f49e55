"""Refuse decompression bombs: image dimensions read from the header, checked against a pixel
budget *before* anything is decoded.

A 2 MB PNG can declare 20000x40000 pixels and make a decoder allocate gigabytes. Every image
panoedge reads (datasets, ``predict``, ``stitch``, folder sources, calibration sets) goes
through :func:`check_image_file` or :func:`check_image_bytes` first; video sources check the
frame size the container declares (:func:`check_frame_size`).

The budget is :data:`MAX_PIXELS` pixels per image, or ``$PANOEDGE_MAX_IMAGE_PIXELS``. Headers are
read with Pillow (``Image.open`` parses the header only; no pixel data is decoded), which knows
PNG, JPEG, BMP, TIFF and WebP.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from panoedge.errors import DataError

MAX_PIXELS = 120_000_000
"""Default pixel budget per image: an 8K ERP (4096x8192) is 34 MP, the largest dual-fisheye photo we
know (GoPro Fusion, two 18 MP lens files) far below; 120 MP of RGB is 360 MB decoded. Raise it with
``$PANOEDGE_MAX_IMAGE_PIXELS`` for larger panoramas."""
ENV_MAX_PIXELS = "PANOEDGE_MAX_IMAGE_PIXELS"


def max_pixels() -> int:
    """:data:`MAX_PIXELS`, or ``$PANOEDGE_MAX_IMAGE_PIXELS`` when set to a positive integer."""
    env = os.environ.get(ENV_MAX_PIXELS, "").replace("_", "")
    return int(env) if env.isdigit() and int(env) > 0 else MAX_PIXELS


def _too_big(source, w: int, h: int) -> DataError:
    return DataError(f"{source}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is above the pixel budget of "
                     f"{max_pixels() / 1e6:.0f} MP; refusing to decode it (${ENV_MAX_PIXELS} raises the budget)")


def _header_size(fp, source) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(fp) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError:
            raise DataError(f"{source}: declares more pixels than even Pillow's own limit; refusing to decode it") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{source}: not a readable image (corrupt, or not PNG/JPEG): {e}") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding it."""
    return _header_size(Path(path), path)


def check_image_file(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, a ``DataError`` if above the pixel budget (or unreadable)."""
    w, h = image_size(path)
    if w * h > max_pixels():
        raise _too_big(path, w, h)
    return w, h


def check_image_bytes(blob: bytes, source: str | Path) -> tuple[int, int]:
    """:func:`check_image_file` for an encoded image in memory (``source`` names it in errors)."""
    w, h = _header_size(io.BytesIO(blob), source)
    if w * h > max_pixels():
        raise _too_big(source, w, h)
    return w, h


def check_frame_size(w: float, h: float, source) -> None:
    """Refuse a video whose declared frame size is above the pixel budget (0 = unknown passes)."""
    w, h = int(w or 0), int(h or 0)
    if w * h > max_pixels():
        raise _too_big(source, w, h)
