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
    runner = b.runner()                      # the manifest's backend and precision, where available
    out = b.postprocess(runner.infer({b.input_name: b.preprocess(rgb)}))
    out["labels"], out["depth"]              # (H, W) uint8 class ids, (H, W) float32 metres
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.runtime.processing import check_preprocess, postprocess, preprocess

SCHEMA = "panoedge.bundle/1"
MANIFEST = "manifest.json"
UNHASHED_DIRS = ("engines",)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(bundle: str | Path) -> dict:
    """The bundle's ``manifest.json``; a missing or foreign manifest is a ``DataError``."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise DataError(f"{bundle}: not a panoedge bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else None
        raise DataError(f"{path}: schema: expected {SCHEMA!r}, got {got!r}")
    return manifest


def bundle_files(bundle: Path) -> list[str]:
    """Relative paths of every file the manifest must hash (all but itself and ``engines/``)."""
    out = []
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if p.is_file() and rel != MANIFEST and rel.split("/")[0] not in UNHASHED_DIRS:
            out.append(rel)
    return out


def verify_bundle(bundle: str | Path) -> dict:
    """Check every hash: ``{"ok", "n_files", "problems": [...]}``; changed, missing and unlisted files are problems."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    listed = manifest.get("files", {})
    problems = []
    for rel, entry in listed.items():
        p = bundle / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != entry.get("bytes"):
            problems.append(f"{rel}: size {p.stat().st_size} != {entry.get('bytes')} in the manifest")
        elif _sha256(p) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest (the file was changed)")
    for rel in bundle_files(bundle):
        if rel not in listed:
            problems.append(f"{rel}: not listed in the manifest (added after the build)")
    return {"bundle": str(bundle), "ok": not problems, "n_files": len(listed), "problems": problems}


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
    verified: dict = field(default_factory=dict)

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
        return self.path / models[precision]

    def engines(self) -> list[Path]:
        """TensorRT engines built for this bundle (``engines/*.engine``)."""
        return sorted((self.path / "engines").glob("*.engine"))

    def runner(self, backend: str | None = None, precision: str | None = None, threads: int | None = None):
        """A runner for this bundle: ``backend`` (default: the target's, else ``ort-cpu`` where that is
        not available here) and ``precision`` (``int8`` or ``fp32``; default the target's)."""
        target = self.manifest["target"]
        precision = precision or ("int8" if target.get("precision") == "int8" else "fp32")
        if backend is None:
            backend = target.get("backend", "ort-cpu")
            if not _usable(backend):
                backend = "ort-cpu"
        if backend == "trt":
            from panoedge.runtime.trt_runner import TrtRunner

            tag = f".{precision}."
            engines = [e for e in self.engines() if tag in e.name]
            if not engines:
                raise UsageError(f"{self.path}: no {precision} TensorRT engine yet; run `panoedge engine {self.path}`")
            return TrtRunner(engines[-1])
        if backend == "torch":
            raise UsageError("a bundle runs without torch: choose ort-cpu, ort-cuda, ort-trt or trt")
        from panoedge.runtime.ort_runner import OrtRunner

        return OrtRunner(self.model_path(precision), backend, threads=threads)


def _usable(backend: str) -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    needs = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
             "ort-trt": "TensorrtExecutionProvider"}
    if backend in needs:
        return needs[backend] in ort.get_available_providers()
    if backend == "trt":
        import importlib.util

        return importlib.util.find_spec("tensorrt") is not None
    return False


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Load a bundle folder; with ``verify`` (default) a changed file is a ``DataError``."""
    path = Path(path)
    manifest = read_manifest(path)
    checked = {}
    if verify:
        checked = verify_bundle(path)
        if not checked["ok"]:
            raise DataError(f"{path}: bundle was changed after it was built: {'; '.join(checked['problems'][:5])}")
    try:
        classes = json.loads((path / manifest["classes"]).read_text())
        pre = check_preprocess(json.loads((path / manifest["preprocess"]).read_text()))
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise DataError(f"{path}: unreadable classes or preprocessing ({e})") from None
    inp = manifest["input"]
    return Bundle(path=path, manifest=manifest, classes=list(classes["classes"]),
                  colors=np.asarray(classes["colors"], dtype=np.uint8), preprocess_spec=pre,
                  input_name=inp["name"], hw=(int(inp["shape"][2]), int(inp["shape"][3])), verified=checked)
