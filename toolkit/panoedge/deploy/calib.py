"""Calibration and held-out evaluation data for INT8: real ERP images, streamed, hashed.

DATA is anything :func:`panoedge.data.resolve_data` reads (a dataset folder, a plain folder of
panoramas, ``structured3d:PATH`` ...) or ``synth:FAMILY[?n=..&seed=..]`` (the built-in world,
rendered once and cached, see :mod:`panoedge.data.source`). Images are resized to the
model's input size (``INTER_AREA``; labels and depth nearest) and preprocessed exactly as the
runtime does (:mod:`panoedge.runtime.processing`).

Held-out split: for a folder, the last fifth of the stems (at least one) is held out for
evaluation and calibration draws from the rest; for ``synth:`` data the evaluation scenes are
rendered from another seed, so no world is seen twice.

Statistics: ONNX Runtime's calibrator (entropy, min-max or percentile) collects per-tensor
ranges chunk by chunk (memory stays bounded however many images), and the exact calibration
set is hashed: sha256 over ``stem:sha256(file)`` lines and the input size.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from panoedge.data.folder import DatasetFolder
from panoedge.errors import DataError, UsageError, unknown_name
from panoedge.runtime.processing import preprocess, resize_nearest

METHODS = ("entropy", "minmax", "percentile")
EVAL_SEED_OFFSET = 7919
CHUNK = 8


@dataclass
class ImageSet:
    """Stems of one dataset folder used for calibration or evaluation."""

    folder: DatasetFolder
    stems: list[str]

    def __len__(self) -> int:
        return len(self.stems)


def _synth_folder(spec, progress: bool) -> DatasetFolder:
    from panoedge.home import cache_dir, content_key
    from panoedge.data.synth_folder import generate_dataset

    path = cache_dir("synth", content_key("dataset", spec.__dict__))  # shared with data.resolve_data
    if not path.exists():
        generate_dataset(path, spec, progress=progress)
    return DatasetFolder(path)


def split_data(data: str | Path, n_calib: int, n_eval: int, hw: tuple[int, int],
               progress: bool = True) -> tuple[ImageSet, ImageSet | None]:
    """``(calibration set, held-out evaluation set or None when n_eval == 0)`` for DATA."""
    if n_calib < 1:
        raise UsageError(f"--n {n_calib}: calibration needs at least one image")
    if data is None or str(data).strip() == "":
        raise UsageError("no calibration data: pass --calib DATA (a dataset folder or synth:FAMILY); "
                         "panoedge never invents INT8 scales")
    text = str(data)
    if text.startswith("synth:"):
        from panoedge.data.source import parse_synth

        spec = parse_synth(text, n=n_calib, size=tuple(hw))
        calib = _synth_folder(spec, progress)
        held = _synth_folder(replace(spec, n=n_eval, seed=spec.seed + EVAL_SEED_OFFSET), progress) if n_eval else None
        return ImageSet(calib, calib.stems[:n_calib]), (ImageSet(held, held.stems[:n_eval]) if held else None)
    from panoedge.data.layouts import LAYOUTS
    from panoedge.data.source import resolve_data

    if text.partition(":")[0] not in LAYOUTS and not Path(text).is_dir():
        raise DataError(f"{text}: no such calibration folder (expected a folder of panoramas, a dataset folder, "
                        f"synth:FAMILY or {', '.join(f'{k}:PATH' for k in LAYOUTS)})")
    folder = resolve_data(text, progress)  # a dataset folder, a folder of panoramas or a published layout
    path = folder.root
    stems = folder.stems
    if not stems:
        raise DataError(f"{path}: no images in rgb/; calibration needs real images")
    if not n_eval:
        return ImageSet(folder, stems[:n_calib]), None
    if len(stems) < 2:
        raise DataError(f"{path}: {len(stems)} image(s); need at least 2 to hold one out for evaluation "
                        "(or pass --no-eval)")
    k = max(1, len(stems) // 5)
    return ImageSet(folder, stems[:-k][:n_calib]), ImageSet(folder, stems[-k:][:n_eval])


def load_rgb(folder: DatasetFolder, stem: str) -> tuple[np.ndarray, bytes]:
    """``(rgb uint8 (H, W, 3), file bytes)``; unreadable or non-ERP (W != 2H) images are a ``DataError``."""
    import cv2

    path = folder.files["rgb"].get(stem)
    if path is None:
        raise DataError(f"{folder.root}/rgb: no image for {stem!r}")
    blob = path.read_bytes()
    from panoedge.image_guard import check_image_bytes

    check_image_bytes(blob, path)
    bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path}: not a readable image (corrupt, or not PNG/JPEG)")
    h, w = bgr.shape[:2]
    if w != 2 * h:
        raise DataError(f"{path}: {h}x{w} is not an equirectangular panorama (width must be twice the height)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), blob


class ImageStream:
    """Preprocessed model inputs from an :class:`ImageSet`, one image at a time, hashing as it goes."""

    def __init__(self, images: ImageSet, hw: tuple[int, int], pre: dict, input_name: str = "image"):
        self.images, self.hw, self.pre, self.input_name = images, tuple(hw), pre, input_name
        self._lines: list[str] = []

    def __iter__(self):
        self._lines = []
        for stem in self.images.stems:
            rgb, blob = load_rgb(self.images.folder, stem)
            self._lines.append(f"{stem}:{hashlib.sha256(blob).hexdigest()}")
            yield {self.input_name: preprocess(rgb, self.hw, self.pre)}

    def sha256(self) -> str:
        """Hash of the images streamed so far plus the input size (complete after one full pass)."""
        text = "\n".join(self._lines + [f"size:{self.hw[0]}x{self.hw[1]}"])
        return hashlib.sha256(text.encode()).hexdigest()


class _ListReader:
    """The smallest ``CalibrationDataReader``: hands ONNX Runtime a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def ort_method(method: str):
    """``onnxruntime.quantization.CalibrationMethod`` for ``entropy``/``minmax``/``percentile``."""
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise unknown_name("calibration method", method, METHODS)
    return {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile}[method]


def calibrate(onnx_path: str | Path, stream: ImageStream, method: str = "entropy", symmetric: bool = True,
              progress: bool = True):
    """Collect per-tensor ranges of ``onnx_path`` over ``stream``: an ORT ``TensorsData``.

    Runs the model (augmented to output every float tensor) on ``CHUNK`` images at a time, so
    memory does not grow with the number of images. An empty stream is a ``DataError``.
    """
    from onnxruntime.quantization.calibrate import create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from panoedge.progress import tqdm

    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    extra = {"symmetric": bool(symmetric)}
    with tempfile.TemporaryDirectory(prefix="panoedge-calib-") as tmp:
        calibrator = create_calibrator(Path(onnx_path), op_types, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=ort_method(method), extra_options=extra)
        bar = tqdm(total=len(stream.images), desc=f"calibrate ({method})", unit="img", disable=not progress)
        chunk: list[dict] = []
        n = 0
        for feed in stream:
            chunk.append(feed)
            if len(chunk) == CHUNK:
                n += _collect(calibrator, chunk, bar)
                chunk = []
        if chunk:
            n += _collect(calibrator, chunk, bar)
        bar.close()
        if n == 0:
            raise DataError("calibration set is empty: no images were read")
        with contextlib.redirect_stdout(io.StringIO()):
            return calibrator.compute_data()


def _collect(calibrator, feeds: list[dict], bar) -> int:
    with contextlib.redirect_stdout(io.StringIO()):  # ORT's histogram collector prints per call
        calibrator.collect_data(_ListReader(feeds))
    bar.update(len(feeds))
    return len(feeds)


def tensor_amax(tensors) -> dict[str, float]:
    """Per-tensor absolute maximum ``max(|lowest|, |highest|)`` from an ORT ``TensorsData``."""
    out = {}
    for name, td in tensors.items():
        lo, hi = td.range_value
        out[name] = float(max(np.abs(np.asarray(lo, np.float64)).max(), np.abs(np.asarray(hi, np.float64)).max()))
    return out


@dataclass
class EvalSet:
    """Held-out inputs and ground truth at the model's size, in memory (a few dozen images)."""

    inputs: list[np.ndarray]
    labels: np.ndarray | None
    depth: np.ndarray | None
    stems: list[str]


def load_eval_set(images: ImageSet, hw: tuple[int, int], pre: dict, num_classes: int) -> EvalSet:
    """Inputs, labels and depth of the held-out images; ground truth is required (``DataError``)."""
    folder = images.folder
    missing = [m for m in ("semantic", "depth") if m not in folder.modalities]
    if len(missing) == 2:
        raise DataError(f"{folder.root}: no semantic/ or depth/ ground truth to measure INT8 accuracy on "
                        "(pass --no-eval to skip the accuracy budget)")
    if "semantic" not in missing and len(folder.classes) != num_classes:
        raise DataError(f"{folder.root}/meta.json: {len(folder.classes)} classes, the model has {num_classes}")
    inputs, labels, depth = [], [], []
    for stem in images.stems:
        rgb, _ = load_rgb(folder, stem)
        inputs.append(preprocess(rgb, hw, pre))
        gt = folder.load(stem, [m for m in ("semantic", "depth") if m not in missing])
        for key, out in (("semantic", labels), ("depth", depth)):
            if key in gt:
                if gt[key].shape[:2] != rgb.shape[:2]:
                    raise DataError(f"{folder.root}/{key}/{stem}: size {gt[key].shape[:2]} differs from rgb {rgb.shape[:2]}")
                out.append(resize_nearest(gt[key], hw))
    return EvalSet(inputs=inputs, labels=np.stack(labels) if labels else None,
                   depth=np.stack(depth) if depth else None, stems=list(images.stems))
