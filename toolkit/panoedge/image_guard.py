"""Refuse decompression bombs: image dimensions read from the header, checked against a pixel
budget *before* anything is decoded.

A 2 MB PNG can declare 20000x40000 pixels and make a decoder allocate gigabytes. Every image
panoedge reads (datasets, ``predict``, ``stitch``, folder sources, calibration sets) goes
through :func:`check_image_file` or :func:`check_image_bytes` first; video sources check the
frame size the container declares (:func:`check_frame_size`).

The budget is :data:`MAX_PIXELS` pixels per image, or ``$PANOEDGE_MAX_IMAGE_PIXELS``. PNG (IHDR)
and JPEG (start-of-frame) headers are parsed here, exactly and whatever the size; BMP, TIFF and
WebP through Pillow (``Image.open`` parses the header only; no pixel data is decoded).
"""

from __future__ import annotations

import io
import os
import struct
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
    return DataError(f"{source}: {w}x{h} pixels ({w * h / 1e6:.3g} MP) is above the pixel budget of "
                     f"{max_pixels() / 1e6:.3g} MP; refusing to decode it (${ENV_MAX_PIXELS} raises the budget)")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
"""JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size."""


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR" or len(head) < 24:
        return None
    return struct.unpack(">II", head[16:24])


def _jpeg_size(f) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments up to its start-of-frame (a few hundred bytes, never the data)."""
    f.seek(2)
    for _ in range(10_000):
        b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in _JPEG_SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            h, w = struct.unpack(">HH", body[1:5])
            return w, h
        f.seek(length - 2, 1)
    return None


def _header_size(fp, source) -> tuple[int, int]:
    """``(width, height)`` from the header: PNG and JPEG parsed here (exact, any size); other
    formats through Pillow, whose ``Image.open`` reads the header only."""
    opened = open(fp, "rb") if not hasattr(fp, "read") else fp
    try:
        head = opened.read(32)
        size = _png_size(head) if head.startswith(_PNG_SIGNATURE) else \
            _jpeg_size(opened) if head[:2] == b"\xff\xd8" else None
        if size is not None:
            return int(size[0]), int(size[1])
        if head.startswith(_PNG_SIGNATURE) or head[:2] == b"\xff\xd8":
            raise DataError(f"{source}: not a readable image (its PNG/JPEG header is damaged)")
        opened.seek(0)
        return _pillow_size(opened, source)
    except OSError as e:
        raise DataError(f"{source}: not a readable image ({e})") from None
    finally:
        if opened is not fp:
            opened.close()


def _pillow_size(fp, source) -> tuple[int, int]:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(f"{source}: reading this format's header needs Pillow (pip install pillow)") from None

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
