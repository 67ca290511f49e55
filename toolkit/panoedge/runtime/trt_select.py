"""Which of a bundle's TensorRT engines this machine can run: by TensorRT version and GPU, not by file name.

A TensorRT plan runs only on the TensorRT release (major.minor.patch) and GPU compute capability
that built it. Each engine's JSON sidecar (written by ``panoedge engine``) records both; an
engine without one (built by the bundle's ``build_engine.sh``) is read from its name,
``<model>.<precision>.trt<version>.sm<cc>.<H>x<W>.b<batch>[.dla<core>].engine``. Versions are
compared numerically, so ``trt10.3.0`` and ``trt8.6.2`` never sort as text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from panoedge.errors import UsageError

_NAME = re.compile(r"^(?P<model>[^.]+)\.(?P<precision>int8|fp16|fp32)\.trt(?P<trt>\d+(?:\.\d+)*)\.sm(?P<cc>\d+)"
                   r"\.(?P<h>\d+)x(?P<w>\d+)\.b(?P<batch>\d+)(?:\.dla(?P<dla>\d+))?\.engine$")
#: Version fields that must match for a plan to deserialize: TensorRT's major.minor.patch.
TRT_MATCH_FIELDS = 3


def version_key(version: str) -> tuple[int, ...]:
    """``"10.3.0"`` -> ``(10, 3, 0)``: versions compare numerically, never as text."""
    parts = re.findall(r"\d+", str(version))
    if not parts:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(p) for p in parts)


def release(version: str) -> str:
    """TensorRT's release, ``major.minor.patch``: ``"10.3"`` -> ``"10.3.0"``, ``"8.6.2.3"`` -> ``"8.6.2"``."""
    key = (version_key(version) + (0, 0))[:TRT_MATCH_FIELDS]
    return ".".join(str(v) for v in key)


def _cc_key(cc: str) -> tuple[int, int]:
    s = str(cc).replace(".", "")
    return (int(s[:-1]), int(s[-1])) if s.isdigit() and len(s) >= 2 else (-1, -1)


@dataclass(frozen=True)
class EngineInfo:
    """One engine file and what it was built for."""

    path: Path
    precision: str
    tensorrt: str
    compute_capability: str
    dla_core: int | None

    def matches(self, tensorrt: str, cc: str) -> bool:
        return release(self.tensorrt) == release(tensorrt) and _cc_key(self.compute_capability) == _cc_key(cc)

    def describe(self) -> str:
        dla = f", DLA core {self.dla_core}" if self.dla_core is not None else ""
        return f"{self.path.name} (TensorRT {self.tensorrt}, sm {self.compute_capability}{dla})"


def engine_info(path: str | Path) -> EngineInfo | None:
    """What ``path`` was built for: from its sidecar ``<engine>.json``, else its name; None if neither says."""
    path = Path(path)
    sidecar = Path(str(path) + ".json")
    if sidecar.is_file():
        try:
            key = json.loads(sidecar.read_text())
            return EngineInfo(path=path, precision=str(key["precision"]), tensorrt=str(key["tensorrt"]),
                              compute_capability=str(key["compute_capability"]),
                              dla_core=None if key.get("dla_core") is None else int(key["dla_core"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a broken sidecar: the name still says what the engine is
    m = _NAME.match(path.name)
    if m is None:
        return None
    cc = m["cc"]
    return EngineInfo(path=path, precision=m["precision"], tensorrt=m["trt"], compute_capability=f"{cc[:-1]}.{cc[-1]}",
                      dla_core=None if m["dla"] is None else int(m["dla"]))


def select_engine(engines, tensorrt: str, cc: str | None, precision: str, prefer_dla: bool | None = None) -> EngineInfo:
    """The engine for this TensorRT (major.minor.patch) and compute capability ``cc`` (None: any).

    Where several fit (a DLA and a GPU build), ``prefer_dla`` picks (None: the newest file).
    A ``UsageError`` lists what exists when none fits.
    """
    infos = [i for i in (engine_info(p) for p in engines) if i is not None and i.precision == precision]
    fits = [i for i in infos if i.matches(tensorrt, cc if cc is not None else i.compute_capability)]
    if not fits:
        have = "; ".join(i.describe() for i in infos) or "none"
        raise UsageError(f"no {precision} TensorRT engine for TensorRT {tensorrt}"
                         + (f", sm {cc}" if cc else "") + f" (the bundle has: {have}); run `panoedge engine BUNDLE` here")
    if prefer_dla is not None:
        fits.sort(key=lambda i: (i.dla_core is not None) == prefer_dla, reverse=True)
        best = [i for i in fits if (i.dla_core is not None) == ((fits[0].dla_core is not None))]
    else:
        best = fits
    return max(best, key=lambda i: i.path.stat().st_mtime if i.path.exists() else 0.0)
