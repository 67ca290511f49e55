"""What the pipeline runs: a bundle (or a bare panoedge ONNX) behind three calls.

:class:`LiveModel` turns an ERP frame into a feed (:meth:`~LiveModel.preprocess`), runs it on
a :class:`panoedge.runtime.Runner` (:meth:`~LiveModel.infer`) and turns the outputs into class
ids and depth (:meth:`~LiveModel.postprocess`). The pipeline stitches straight to
:attr:`~LiveModel.input_hw`, so preprocessing never resizes.

- :meth:`LiveModel.from_bundle`: a ``panoedge build`` folder; backend and precision default to
  the bundle's target where that backend is usable here (else ``ort-cpu``).
- :meth:`LiveModel.from_onnx`: an ONNX exported by panoedge (its ``panoedge.preprocess`` and
  ``panoedge.config`` metadata give the normalisation and the class count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from panoedge.errors import ConfigError, DataError
from panoedge.safe_load import loads_json

__all__ = ["LiveModel", "default_threads", "load_model", "palette"]


def default_threads() -> int:
    """ONNX Runtime intra-op threads for a live pipeline: all cores but one (1 to 8).

    The spare core runs capture and stitching beside inference; on a 2-core machine one
    inference thread is also what keeps ORT's spinning workers from starving the stitcher.
    """
    import os

    return max(1, min((os.cpu_count() or 2) - 1, 8))


def palette(k: int) -> np.ndarray:
    """``k`` distinct display colours ``(k, 3)`` uint8 (golden-angle hues), for models without colours."""
    import cv2

    hues = (np.arange(k) * 137.508) % 180
    hsv = np.stack([hues, np.full(k, 200), np.full(k, 230)], 1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


@dataclass
class LiveModel:
    """A model ready for the pipeline (see the module docstring)."""

    name: str
    input_hw: tuple[int, int]
    classes: list[str]
    colors: np.ndarray
    runner: object
    to_feed: Callable[[np.ndarray], dict]
    from_outputs: Callable[[dict], dict]
    info: dict = field(default_factory=dict)
    depth_kind: str = "metric"
    """``metric`` (metres), ``relative`` (range up to scale and shift) or ``none``."""

    @property
    def backend(self) -> str:
        return getattr(self.runner, "backend", "")

    def preprocess(self, erp: np.ndarray) -> dict:
        """``(H, W, 3)`` uint8 RGB ERP at :attr:`input_hw` -> the runner's feed."""
        return self.to_feed(erp)

    def infer(self, feed: dict) -> dict:
        return self.runner.infer(feed)

    def postprocess(self, outputs: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Outputs -> ``(labels (H, W) uint8 or None, depth (H, W) float32 metres or None)``."""
        out = self.from_outputs(outputs)
        return out.get("labels"), out.get("depth")

    def close(self) -> None:
        """Release the runner (its session or engine); idempotent."""
        close = getattr(self.runner, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> "LiveModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        return {"name": self.name, "backend": self.backend, "input_hw": list(self.input_hw),
                "classes": len(self.classes), "depth_kind": self.depth_kind, **self.info}

    @classmethod
    def from_bundle(cls, path: str | Path, backend: str | None = None, precision: str | None = None,
                    threads: int | None = None, trusted_key: str | Path | None = None) -> "LiveModel":
        """A bundle folder on ``backend``/``precision`` (defaults: the bundle target's), verified
        (and, with ``trusted_key``, its signature checked) by :func:`panoedge.runtime.load_bundle`."""
        from panoedge.runtime import load_bundle
        from panoedge.runtime.manifest import BundleManifest

        b = load_bundle(path, trusted_key=trusted_key)
        runner = b.runner(backend, precision, threads=threads)
        target = BundleManifest.from_dict(b.manifest).target
        used_precision = precision or ("int8" if target.precision == "int8" else "fp32")
        return cls(name=Path(path).name, input_hw=tuple(b.hw), classes=list(b.classes), colors=b.colors,
                   runner=runner, to_feed=lambda rgb: {b.input_name: b.preprocess(rgb)},
                   from_outputs=b.postprocess, depth_kind=b.depth_kind,
                   info={"bundle": str(path), "precision": used_precision, "target": target.name,
                         "threads": threads})

    @classmethod
    def from_onnx(cls, path: str | Path, backend: str = "ort-cpu", threads: int | None = None,
                  classes: list[str] | None = None, colors=None) -> "LiveModel":
        """A panoedge-exported ONNX file (fixed input size, ``panoedge.*`` metadata)."""
        from panoedge.runtime.ort_runner import OrtRunner
        from panoedge.runtime.processing import check_preprocess, postprocess, preprocess

        runner = OrtRunner(path, backend, threads=threads)
        meta = runner.metadata()
        try:
            spec = check_preprocess(loads_json(meta["panoedge.preprocess"], f"{path}: panoedge.preprocess"))
            config = loads_json(meta.get("panoedge.config", "{}"), f"{path}: panoedge.config")
            if not isinstance(config, dict):
                raise ConfigError(path, "panoedge.config", "expected a JSON object")
        except (KeyError, ConfigError) as e:
            raise DataError(f"{path}: not a panoedge ONNX (metadata panoedge.preprocess missing or bad: {e})") from None
        inp = runner.inputs[0]
        if len(inp.shape) != 4 or inp.shape[2] is None or inp.shape[3] is None:
            raise DataError(f"{path}: input {inp.describe()} has no fixed height and width")
        hw = (int(inp.shape[2]), int(inp.shape[3]))
        k = int(config.get("num_classes", 0)) or next((s.shape[1] for s in runner.outputs if s.name == "seg"), 0)
        classes = list(classes) if classes is not None else [f"class {i}" for i in range(k)]
        colors = np.asarray(colors, dtype=np.uint8) if colors is not None else palette(len(classes))
        name = config.get("name") or Path(path).stem
        precision = "int8" if any(t in Path(path).name for t in ("int8", ".u8.", ".s8.")) else "fp32"
        has_depth = any(s.name == "depth" for s in runner.outputs)
        try:
            kind = (loads_json(meta["panoedge.depth_kind"], f"{path}: panoedge.depth_kind")
                    if "panoedge.depth_kind" in meta else ("metric" if has_depth else "none"))
        except ConfigError as e:
            raise DataError(str(e)) from None
        return cls(name=name, input_hw=hw, classes=classes, colors=colors, runner=runner,
                   to_feed=lambda rgb: {inp.name: preprocess(rgb, hw, spec)},
                   from_outputs=postprocess, depth_kind=kind, info={"onnx": str(path), "precision": precision, "threads": threads})


def load_model(spec: str | Path, backend: str | None = None, precision: str | None = None,
               threads: int | None = None, trusted_key: str | Path | None = None) -> LiveModel:
    """A bundle folder (has ``manifest.json``) or a panoedge ``.onnx`` file as a :class:`LiveModel`.

    ``threads``: ONNX Runtime intra-op threads (default :func:`default_threads`).
    """
    threads = default_threads() if threads is None else threads
    p = Path(spec)
    if p.is_dir():
        return LiveModel.from_bundle(p, backend, precision, threads, trusted_key=trusted_key)
    if trusted_key is not None:
        raise DataError(f"{spec}: --trusted-key checks a signed bundle folder; a bare .onnx file carries no signature")
    if p.is_file() and p.suffix.lower() == ".onnx":
        return LiveModel.from_onnx(p, backend or "ort-cpu", threads)
    raise DataError(f"{spec}: expected a bundle folder (panoedge build) or a panoedge .onnx file")
