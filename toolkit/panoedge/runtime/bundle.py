"""Load and run a bundle (``panoedge build`` output) with NumPy, OpenCV and ONNX Runtime only.

A bundle is a folder::

    manifest.json        schema, sha256 of every file, versions, I/O names and shapes, target, accuracy
    model.fp32.onnx      plain ONNX, batch-norm folded
    model.int8.onnx      QDQ INT8 (per-channel weights)
    model.int8.calib.cache / model.int8.ranges.json   TensorRT calibration cache / ORT ranges
    classes.json  preprocess.json  target.toml  lint.json  quantize.json  build_engine.sh  [rig.yaml]
    engines/             TensorRT engines built on the device (not hashed)

Example::

    b = load_bundle("bundle/")               # checks every hash
    with b.runner() as runner:               # the manifest's backend and precision, where available
        out = b.postprocess(runner.infer({b.input_name: b.preprocess(rgb)}))
    out["labels"], out["depth"]              # (H, W) uint8 class ids, (H, W) float32 metres
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.errors import ConfigError, DataError, UsageError
from panoedge.results import Result
from panoedge.runtime.manifest import (MANIFEST, SCHEMA, SIGNATURE, UNHASHED_DIRS, VerifyResult, bundle_files, member,
                                       read_manifest, verify_bundle)
from panoedge.runtime.processing import check_preprocess, postprocess, preprocess

__all__ = ["MANIFEST", "SCHEMA", "SIGNATURE", "UNHASHED_DIRS", "Bundle", "bundle_files", "load_bundle",
           "read_manifest", "verify_bundle"]


@dataclass
class Bundle:
    """A loaded bundle: manifest, classes, colours and the pre/post-processing of its model."""

    path: Path
    manifest: dict
    classes: list[str]
    colors: np.ndarray
    preprocess_spec: dict
    input_name: str
    hw: tuple[int, int]
    verified: VerifyResult | None = None

    @property
    def depth_kind(self) -> str:
        """``metric`` (metres), ``relative`` (range up to scale and shift) or ``none``: the manifest's
        top-level ``depth_kind``; bundles from before it was recorded are metric where they have depth."""
        kind = self.manifest.get("depth_kind")
        if kind in ("metric", "relative", "none"):
            return kind
        return "metric" if any(o.get("name") == "depth" for o in self.manifest.get("outputs", [])) else "none"

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """An ``(H', W', 3)`` uint8 RGB ERP frame -> the model input ``(1, 3, H, W)`` float32."""
        return preprocess(rgb, self.hw, self.preprocess_spec)

    def postprocess(self, outputs: dict[str, np.ndarray], out_hw: tuple[int, int] | None = None) -> dict:
        """Outputs -> ``{"labels": (H, W) uint8, "depth": (H, W) float32 metres}``."""
        return postprocess(outputs, out_hw)

    def model_path(self, precision: str) -> Path:
        models = self.manifest["models"]
        if precision not in models:
            raise UsageError(f"{self.path}: no {precision!r} model; the bundle has {', '.join(models)}")
        return member(self.path, models[precision], f"models.{precision}")

    def engines(self) -> list[Path]:
        """TensorRT engines built for this bundle (``engines/*.engine``)."""
        folder = self.path / "engines"
        if folder.is_symlink():
            return []
        return sorted(p for p in folder.glob("*.engine") if p.is_file() and not p.is_symlink())

    def runner(self, backend: str | None = None, precision: str | None = None, threads: int | None = None):
        """A runner for this bundle (close it, or use it in ``with``): ``backend`` (default: the
        target's, else ``ort-cpu`` where that is not available here) and ``precision`` (``int8`` or
        ``fp32``; default the target's)."""
        from panoedge.runtime.registry import backend_available, create_runner

        target = self.manifest["target"]
        precision = precision or ("int8" if target.get("precision") == "int8" else "fp32")
        if backend is None:
            backend = target.get("backend", "ort-cpu")
            if not _usable(backend):
                backend = "ort-cpu"
        if backend == "torch":
            raise UsageError("a bundle runs without torch: choose ort-cpu, ort-cuda, ort-trt or trt")
        backend_available(backend)  # an unknown name fails here, listing the valid ones
        if backend == "trt":  # the model is one of the engines built on the device, not an ONNX file
            from panoedge.runtime.trt_runner import open_bundle_engine

            if not any(f".{precision}." in e.name for e in self.engines()):
                raise UsageError(f"{self.path}: no {precision} TensorRT engine yet; run `panoedge engine {self.path}`")
            return open_bundle_engine(self.engines(), precision)
        return create_runner(backend, self.model_path(precision), threads=threads)


def _usable(backend: str) -> bool:
    from panoedge.runtime.registry import backend_available, backend_names

    return backend in backend_names() and backend_available(backend)[0]


def load_bundle(path: str | Path, verify: bool = True, trusted_key: str | Path | None = None) -> Bundle:
    """Load a bundle folder. With ``verify`` (default) it goes through :func:`verify_bundle` first
    (the same check as ``panoedge bundle verify``) and any problem is a ``DataError``; with
    ``trusted_key`` the bundle must also carry a valid signature by that key."""
    from panoedge.safe_load import load_json

    path = Path(path)
    checked = None
    if verify or trusted_key is not None:
        checked = verify_bundle(path, trusted_key=trusted_key)
        if not checked.ok:
            raise DataError(checked.refusal("refusing the bundle"))
    manifest = read_manifest(path)
    try:
        classes = load_json(member(path, manifest["classes"], "classes"))
        pre = check_preprocess(load_json(member(path, manifest["preprocess"], "preprocess")))
    except ConfigError as e:
        raise DataError(f"{path}: unreadable classes or preprocessing ({e})") from None
    names, colors = classes.get("classes"), classes.get("colors")
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names) or not isinstance(colors, list) \
            or np.shape(colors) != (len(names), 3):
        raise DataError(f"{path}: {manifest['classes']}: expected {{classes: [names], colors: [[r, g, b] per class]}}")
    inp = manifest["input"]
    return Bundle(path=path, manifest=manifest, classes=list(names),
                  colors=np.asarray(colors, dtype=np.uint8), preprocess_spec=pre,
                  input_name=inp["name"], hw=(int(inp["shape"][2]), int(inp["shape"][3])), verified=checked)


@dataclass(frozen=True)
class SignResult(Result):
    """A bundle signed by :func:`sign_bundle`: which bundle, and the id of the key that signed it."""

    SCHEMA = "panoedge.bundle_sign/1"
    bundle: str
    key_id: str

    def format(self) -> str:
        return f"{self.bundle}: signed with key {self.key_id}"


def sign_bundle(path: str | Path, private_key: str | Path) -> SignResult:
    """Sign an existing bundle (``manifest.sig``) after :func:`verify_bundle` found nothing wrong."""
    from panoedge.runtime.signing import require_crypto, sign_manifest

    require_crypto("bundle sign")
    path = Path(path)
    checked = verify_bundle(path)
    if not checked.ok:
        raise DataError(checked.refusal("refusing to sign a bundle with problems"))
    return SignResult(bundle=str(path), key_id=sign_manifest(path / MANIFEST, private_key, path / SIGNATURE))
