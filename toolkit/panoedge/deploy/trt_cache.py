"""TensorRT INT8 calibration cache (the text form ``IInt8EntropyCalibrator2`` reads and writes).

For TensorRT versions that still quantize implicitly (JetPack 5 with TensorRT 8.5, JetPack 6.0
with 8.6), the engine is built from the FP32 ONNX with the INT8 flag and a calibrator whose
``read_calibration_cache`` hands TensorRT this file, so no calibration runs on the device.
Format: a header line ``TRT-<version>-EntropyCalibration2`` (``<version>`` is TensorRT's
``major*1000 + minor*100 + patch``, e.g. ``8602`` for 8.6.2), then one line per tensor::

    <onnx tensor name>: <8 hex digits: the big-endian IEEE float32 scale>

with ``scale = amax / 127`` (symmetric int8). The scales come from the same calibration
statistics as the QDQ model (:mod:`panoedge.deploy.calib`), so both paths quantize alike.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from panoedge.errors import DataError
from panoedge.home import atomic_write_text

ALGORITHM = "EntropyCalibration2"
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{8})$")


def version_tag(tensorrt: str) -> int:
    """TensorRT's integer version as the cache header writes it (``NV_TENSORRT_VERSION``).

    ``"8.6.2"`` -> ``8602`` (``major*1000 + minor*100 + patch`` up to TensorRT 8); from
    TensorRT 10 the major counts ten thousands (``"10.3.0"`` -> ``100300``).
    """
    major, minor, patch = ([int(p) for p in str(tensorrt).split(".")[:3]] + [0, 0])[:3]
    return (major * 10000 if major >= 10 else major * 1000) + minor * 100 + patch


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", float(scale)).hex()


def hex_to_scale(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text))[0]


def format_cache(amax: dict[str, float], tensorrt: str = "8.6.2") -> str:
    """The cache text for per-tensor ``amax`` (absolute maxima); tensors in the given order."""
    lines = [f"TRT-{version_tag(tensorrt)}-{ALGORITHM}"]
    for name, a in amax.items():
        if not a > 0:
            a = 1e-8  # a tensor that was always zero: any positive scale represents it exactly
        lines.append(f"{name}: {scale_to_hex(a / 127.0)}")
    return "\n".join(lines) + "\n"


def write_cache(path: str | Path, amax: dict[str, float], tensorrt: str = "8.6.2") -> Path:
    """Atomically write the calibration cache for ``amax`` (see :func:`format_cache`)."""
    return atomic_write_text(path, format_cache(amax, tensorrt))


def read_cache(path: str | Path) -> tuple[dict, dict[str, float]]:
    """``({"version": int, "algorithm": str}, {tensor: scale})`` from a cache file; malformed is a ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such calibration cache")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    m = _HEADER.match(lines[0].strip()) if lines else None
    if m is None:
        raise DataError(f"{path}: line 1: expected a header like TRT-8602-{ALGORITHM}")
    scales = {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        lm = _LINE.match(line.rstrip())
        if lm is None:
            raise DataError(f"{path}: line {i}: expected '<tensor>: <8 hex digits>', got {line[:60]!r}")
        scale = hex_to_scale(lm.group(2))
        if not scale > 0 or scale != scale:
            raise DataError(f"{path}: line {i}: scale {scale} of {lm.group(1)!r} is not a positive number")
        scales[lm.group(1)] = scale
    return {"version": int(m.group(1)), "algorithm": m.group(2)}, scales


def check_cache(path: str | Path, tensor_names, tensorrt: str | None = None) -> dict:
    """Check a cache against a model's tensor names (and a TensorRT version): a report dict.

    ``{"ok", "n_scales", "missing": [...], "unknown": [...], "version_matches"}``: ``unknown``
    scales name tensors the model no longer has (a stale cache), ``missing`` model tensors
    without a scale (TensorRT runs them in higher precision). ``ok`` is False for a stale cache
    or a header whose algorithm is not :data:`ALGORITHM`.
    """
    header, scales = read_cache(path)
    names = set(tensor_names)
    unknown = sorted(set(scales) - names)
    report = {"n_scales": len(scales), "missing": sorted(names - set(scales)), "unknown": unknown,
              "algorithm": header["algorithm"], "version": header["version"],
              "version_matches": None if tensorrt is None else header["version"] == version_tag(tensorrt)}
    report["ok"] = not unknown and header["algorithm"] == ALGORITHM
    return report


def retag(text: str, tensorrt: str) -> str:
    """The same cache with its header rewritten for another TensorRT version (scales untouched)."""
    lines = text.splitlines()
    if not lines or not _HEADER.match(lines[0].strip()):
        raise DataError("calibration cache: missing TRT-<version>-<algorithm> header")
    lines[0] = f"TRT-{version_tag(tensorrt)}-{ALGORITHM}"
    return "\n".join(lines) + "\n"
