"""One ``predict(rgb) -> (labels, depth)`` contract over students, ONNX exports and teachers.

``MODEL`` strings, as the ``eval`` and ``predict`` commands take them:

=============================  ===============================================================
``student.pt`` or a run folder  a student checkpoint, run in torch
``model.onnx``                 a student export (``models/export.py``): preprocessing and size
                               from its ``metadata_props``, run on ONNX Runtime
``KIND:PATH_OR_ID``            a teacher spec (``builtin:``, ``onnx:``, ``hf:`` ...), run on the
                               whole ERP image (``mode="erp"``) or on tangent patches fused to
                               ERP (``mode="tangent"``)
=============================  ===============================================================

Every predictor takes an ERP frame ``(H, W, 3)`` uint8 RGB with ``W == 2 H`` and returns, at
that size, ``labels`` ``(H, W)`` uint8 class ids (``None`` without a segmentation head) and
``depth`` ``(H, W)`` float32 range (``None`` without depth; 0 = invalid). ``depth_kind`` is
``"metric"`` (metres) or ``"relative"`` (up to scale and shift). A teacher in ``erp`` mode
reads its z-depth output as range as-is: the naive use whose error the tangent mode removes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from panoedge.errors import DataError, UsageError

MODES = ("erp", "tangent")


def check_erp_rgb(rgb, what: str = "image") -> np.ndarray:
    """``rgb`` as ``(H, W, 3)`` uint8 with ``W == 2 H``; else ``UsageError`` naming ``what``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise UsageError(f"{what}: expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if w != 2 * h:
        raise UsageError(f"{what}: {w}x{h} is not an equirectangular panorama (width must be 2 x height)")
    return rgb


RESIZE_CHANNELS = 64
"""Channels handed to ``cv2.resize`` at once: it takes a bounded channel count, class scores can have hundreds."""
STUDENT_STRIDE = 32
"""Output stride of the students: a student input's sides are multiples of it."""
FUSION_ROW_MULTIPLE = 8
"""The fused ERP's rows are a multiple of this (and at least this many)."""


def _resize(img: np.ndarray, h: int, w: int, interp=cv2.INTER_LINEAR) -> np.ndarray:
    """Resize ``(h', w'[, C])`` to ``(h, w[, C])`` (channels last, any count: cv2 in chunks of
    :data:`RESIZE_CHANNELS`)."""
    if img.shape[:2] == (h, w):
        return img
    if img.ndim == 3 and img.shape[2] > RESIZE_CHANNELS:
        return np.concatenate([_resize(img[..., k:k + RESIZE_CHANNELS], h=h, w=w, interp=interp)
                               for k in range(0, img.shape[2], RESIZE_CHANNELS)], -1)
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


UPSAMPLE_BLOCK_BYTES = 64 << 20
"""Scratch memory for upsampling class scores to the output size: rows are done in blocks of at
most this many bytes of ``(K, rows, W)`` float32, so a 150-class map at 5.7K stays bounded."""


def _erp_upsample_rows(scores: np.ndarray, h: int, w: int, rows: slice) -> np.ndarray:
    """Bilinear ERP upsampling of ``scores`` ``(K, h', w')`` to rows ``rows`` of an ``h x w`` grid:
    ``(K, len(rows), w)``; pixel centres as CONVENTIONS.md, columns wrap across the seam."""
    k, sh, sw = scores.shape
    y = (np.arange(rows.start, rows.stop) + 0.5) * sh / h - 0.5
    y = np.clip(y, 0, sh - 1)
    r0 = np.floor(y).astype(np.int64)
    r1, fy = np.minimum(r0 + 1, sh - 1), (y - r0).astype(np.float32)
    x = (np.arange(w) + 0.5) * sw / w - 0.5
    c0 = np.floor(x).astype(np.int64)
    fx = (x - c0).astype(np.float32)
    c0, c1 = c0 % sw, (c0 + 1) % sw
    band = scores[:, r0] * (1 - fy)[None, :, None] + scores[:, r1] * fy[None, :, None]
    return band[:, :, c0] * (1 - fx) + band[:, :, c1] * fx


def _labels(seg: np.ndarray, h: int, w: int) -> np.ndarray:
    """Class ids ``(h, w)`` uint8 from scores ``(K, h', w')``, upsampled block by block (bounded memory)."""
    if seg.shape[1:] == (h, w):
        return seg.argmax(0).astype(np.uint8)
    step = max(1, UPSAMPLE_BLOCK_BYTES // (4 * seg.shape[0] * w))
    out = np.empty((h, w), np.uint8)
    for r in range(0, h, step):
        out[r:r + step] = _erp_upsample_rows(seg, h=h, w=w, rows=slice(r, min(h, r + step))).argmax(0)
    return out


def _finish(seg: np.ndarray | None, depth: np.ndarray | None, h: int, w: int):
    """Model outputs ``seg (K, h', w')``, ``depth (h', w')`` -> ``(labels, depth)`` at ``h x w``."""
    labels = None
    if seg is not None:
        labels = _labels(np.ascontiguousarray(seg, dtype=np.float32), h, w)
    if depth is not None:
        depth = _resize(np.ascontiguousarray(depth, dtype=np.float32), h=h, w=w)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    return labels, depth


FUSION_BYTES = 256 << 20
"""Bound on the fused ERP class-probability accumulator (``K x H x 2H`` float32) in tangent mode."""


def fusion_hw(layout, h: int, n_classes: int = 1) -> tuple[int, int]:
    """The ERP size tangent patches are fused at for an ``h``-row panorama: the input's, or smaller
    where the patches see coarser than the panorama (their pixel pitch, ``fov / patch width``),
    which is where the teacher's detail ends, and no larger than :data:`FUSION_BYTES` allows for
    ``n_classes``; labels are then upsampled to ``h x 2h`` in blocks."""
    pitch_deg = layout.fov_deg / layout.patch_hw[1]
    m = FUSION_ROW_MULTIPLE
    rows = int(np.ceil(180.0 / pitch_deg / m)) * m
    budget = int(np.sqrt(FUSION_BYTES / (4 * 2 * max(1, n_classes))) // m) * m
    rows = max(m, min(rows, budget))
    return (h, 2 * h) if rows >= h else (rows, 2 * rows)


def _depth_kind(meta: dict, has_head: bool) -> str | None:
    """A student's depth kind: ``metric``/``relative`` as it was trained (``meta["depth_kind"]``),
    ``None`` without a depth head; students from before depth kinds were recorded are metric."""
    if not has_head:
        return None
    kind = meta.get("depth_kind") or "metric"
    return kind if kind in ("metric", "relative") else "metric"


class Predictor(ABC):
    """Common attributes: ``name``, ``classes`` (tuple or ``None`` where the model does not name
    them), ``num_classes``, ``colors`` ``(K, 3)`` uint8 or ``None``, ``depth_kind``, ``backend``."""

    name: str
    classes: tuple[str, ...] | None = None
    num_classes: int = 0
    colors: np.ndarray | None = None
    depth_kind: str | None = None
    backend: str = "torch"

    @abstractmethod
    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``rgb`` ``(H, W, 3)`` uint8 ERP -> ``(labels (H, W) uint8, depth (H, W) float32 range)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, classes={self.num_classes}, depth_kind={self.depth_kind!r})"


def _meta_json(meta: dict, key: str, path):
    """One ``panoedge.*`` ONNX metadata value through the strict JSON loader (a ``DataError`` naming it)."""
    from panoedge.errors import ConfigError
    from panoedge.safe_load import loads_json

    try:
        return loads_json(meta[key], f"{path}: metadata {key}")
    except ConfigError as e:
        raise DataError(str(e)) from None


def _student_hw(h: int) -> tuple[int, int]:
    hh = max(STUDENT_STRIDE, int(round(h / STUDENT_STRIDE)) * STUDENT_STRIDE)
    return hh, 2 * hh


class StudentPredictor(Predictor):
    """A ``student.pt`` (or run folder) in torch, at the size it was trained at (``meta.erp_hw``, as a
    bundle runs at its build size), else the input's nearest 2:1 size with sides multiples of 32."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch

        from panoedge.models.checkpoint import load_student

        self.device = torch.device(device)
        self.model, info = load_student(path, map_location="cpu")
        self.model.to(self.device)
        self.name, self.classes = str(path), tuple(info["classes"])
        self.num_classes = len(self.classes)
        self.colors = np.asarray(info["colors"], np.uint8) if info.get("colors") else None
        self.depth_kind = _depth_kind(info.get("meta") or {}, "depth" in self.model.config.heads)
        pre = self.model.preprocess
        self.mean, self.std, self.scale = np.float32(pre["mean"]), np.float32(pre["std"]), np.float32(pre["scale"])
        trained = (info.get("meta") or {}).get("erp_hw")
        self.hw = tuple(int(v) for v in trained) if trained else None

    def predict(self, rgb):
        import torch

        rgb = check_erp_rgb(rgb)
        h, w = rgb.shape[:2]
        mh, mw = self.hw or _student_hw(h)
        interp = cv2.INTER_AREA if mh < h else cv2.INTER_LINEAR
        x = (_resize(rgb, h=mh, w=mw, interp=interp) * self.scale - self.mean) / self.std
        with torch.no_grad():
            out = self.model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).to(self.device))
        seg = out["seg"][0].cpu().numpy() if "seg" in out else None
        depth = out["depth"][0, 0].cpu().numpy() if "depth" in out else None
        return _finish(seg, depth, h=h, w=w)


class OnnxPredictor(Predictor):
    """A student ONNX export on ONNX Runtime (CPU, or CUDA when ``device`` asks and ORT has it).

    Reads ``panoedge.preprocess``, ``panoedge.config`` and ``panoedge.export`` from the model's
    ``metadata_props``; class names from ``panoedge.classes`` when the export carries them
    (else ``classes`` is ``None`` and evaluation matches classes by index).
    """

    backend = "ort-cpu"

    def __init__(self, path: str | Path, device: str = "cpu"):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such ONNX file")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
            self.backend = "ort-cuda"
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as err:  # ORT raises its own types for unreadable models
            raise DataError(f"{path}: ONNX Runtime cannot load it: {err}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in ("panoedge.preprocess", "panoedge.config", "panoedge.export") if k not in meta]
        if missing:
            raise DataError(f"{path}: not a panoedge student export (metadata {', '.join(missing)} missing); "
                            "for another ONNX model use the teacher spec onnx:FILE with its YAML sidecar")
        pre, cfg, exp = (_meta_json(meta, k, path) for k in ("panoedge.preprocess", "panoedge.config", "panoedge.export"))
        self.mean, self.std, self.scale = np.float32(pre["mean"]), np.float32(pre["std"]), np.float32(pre["scale"])
        self.hw = tuple(int(v) for v in exp["hw"])
        self.heads = tuple(cfg["heads"])
        self.name, self.num_classes = str(path), int(cfg["num_classes"])
        self.classes = tuple(_meta_json(meta, "panoedge.classes", path)) if "panoedge.classes" in meta else None
        self.colors = np.asarray(_meta_json(meta, "panoedge.colors", path), np.uint8) if "panoedge.colors" in meta else None
        self.depth_kind = _depth_kind({"depth_kind": _meta_json(meta, "panoedge.depth_kind", path)}
                                      if "panoedge.depth_kind" in meta else {}, "depth" in self.heads)
        self.input = self.session.get_inputs()[0].name

    def predict(self, rgb):
        rgb = check_erp_rgb(rgb)
        h, w = rgb.shape[:2]
        mh, mw = self.hw
        interp = cv2.INTER_AREA if mh < h else cv2.INTER_LINEAR
        x = (_resize(rgb, h=mh, w=mw, interp=interp) * self.scale - self.mean) / self.std
        outs = self.session.run(list(self.heads), {self.input: x.transpose(2, 0, 1)[None].astype(np.float32)})
        got = dict(zip(self.heads, outs))
        seg = got["seg"][0] if "seg" in got else None
        depth = got["depth"][0, 0] if "depth" in got else None
        return _finish(seg, depth, h=h, w=w)


class TeacherPredictor(Predictor):
    """A teacher spec on the whole ERP image (``erp``) or on fused tangent patches (``tangent``).

    ``spec``: a spec string or a :class:`~panoedge.models.teachers.ResolvedTeacher` (whose loaded
    model is shared with whoever loaded it first)."""

    def __init__(self, spec, mode: str = "erp", device: str = "cpu", layout=None):
        from panoedge.distill.tangent import default_layout, make_layout
        from panoedge.models.teachers import resolve_teacher_spec

        resolved = resolve_teacher_spec(spec)
        self.teacher = resolved.load(_torch_device(device))
        self.mode, self.name = mode, resolved.spec
        if isinstance(layout, dict):  # make_layout options; the patch size defaults to the teacher's input
            layout = make_layout(**{"patch_hw": self.teacher.input_hw, **layout})
        self.layout = (layout or default_layout(self.teacher.input_hw)) if mode == "tangent" else None
        self.classes = self.teacher.classes
        self.num_classes = len(self.classes) if self.classes else 0
        self.colors = _family_colors(self.classes)
        kind = self.teacher.depth_kind
        self.depth_kind = None if kind is None else ("metric" if kind == "metric" else "relative")
        self.class_map = None

    def map_classes(self, cmap) -> None:
        """Report on ``cmap``'s target classes: probabilities of the teacher's classes are summed
        into them before the argmax (so ``windowpane`` counts as ``window`` under an ADE20K map)."""
        self.class_map, self.classes = cmap, tuple(cmap.target)
        self.num_classes, self.colors = len(self.classes), _family_colors(self.classes)

    def predict(self, rgb):
        import torch

        rgb = check_erp_rgb(rgb)
        h, w = rgb.shape[:2]
        x = torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()).to(self.teacher.device, torch.float32) / 255.0
        if self.mode == "tangent":
            from panoedge.distill.tangent import tangent_predict

            k = len(self.class_map.target) if self.class_map is not None else len(self.teacher.classes or ())
            out = tangent_predict(self.teacher, x, self.layout, self.class_map, out_hw=fusion_hw(self.layout, h, k))
        else:
            import torch.nn.functional as F

            ih = max(self.teacher.input_hw)  # the model shrinks the image to its input anyway
            if h > ih:
                x = F.interpolate(x, size=(ih, 2 * ih), mode="bilinear", align_corners=False, antialias=True)
            out = self.teacher.predict(x)
            if out.probs is not None and self.class_map is not None:
                from panoedge.models.teachers import apply_class_map

                out.probs = apply_class_map(out.probs, self.class_map)[0]
            if out.depth is not None and self.teacher.depth_kind == "inverse-relative":
                out.depth = torch.where(out.depth > 0, 1.0 / out.depth.clamp_min(1e-12), torch.zeros_like(out.depth))
        seg = out.probs[0].cpu().numpy() if out.probs is not None else None
        depth = out.depth[0, 0].cpu().numpy() if out.depth is not None else None
        return _finish(seg, depth, h=h, w=w)


class MappedPredictor(Predictor):
    """Another predictor's class ids through a class map (ids of ignored classes become 255)."""

    def __init__(self, inner: Predictor, cmap):
        self.inner, self.lut = inner, np.full(256, 255, np.uint8)
        self.lut[:len(cmap.index)] = cmap.label_lut()
        self.name, self.backend, self.depth_kind = inner.name, inner.backend, inner.depth_kind
        self.classes = tuple(cmap.target)
        self.num_classes, self.colors = len(self.classes), _family_colors(self.classes)
        self.mode, self.layout = getattr(inner, "mode", "erp"), getattr(inner, "layout", None)

    def predict(self, rgb):
        labels, depth = self.inner.predict(rgb)
        return (None if labels is None else self.lut[labels]), depth


def _family_colors(classes) -> np.ndarray | None:
    """The synthetic world's palette when ``classes`` are one of its families' class lists."""
    if not classes:
        return None
    from panoedge.synth.world import FAMILIES, class_colors, class_names

    for fam in FAMILIES:
        if tuple(class_names(fam)) == tuple(classes):
            return class_colors(fam)
    return None


def with_class_map(predictor: Predictor, cmap) -> Predictor:
    """``predictor`` reporting on ``cmap``'s target classes (a teacher sums probabilities first)."""
    if isinstance(predictor, TeacherPredictor):
        predictor.map_classes(cmap)
        return predictor
    return MappedPredictor(predictor, cmap)


def bundle_model(bundle: str | Path, precision: str | None = None) -> Path:
    """The ONNX model a bundle runs (its target's precision, or ``precision``), after checking its hashes."""
    from panoedge.runtime.bundle import verify_bundle
    from panoedge.runtime.manifest import inspect_bundle

    bundle = Path(bundle)
    rep = verify_bundle(bundle)
    if not rep.ok:
        raise DataError(f"{bundle}: bundle does not verify: " + "; ".join(rep.problems))
    m = inspect_bundle(bundle)
    rel = m.model_for(precision)
    if not rel:
        want = precision or m.target.precision or "fp32"
        raise DataError(f"{bundle}/manifest.json: models: no {want} or fp32 model listed "
                        f"(has {', '.join(m.models) or 'none'})")
    return bundle / rel


def _torch_device(device: str) -> str:
    """``auto``: the first CUDA GPU when torch sees one, else the CPU (the default of every --device)."""
    if str(device) != "auto":
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _onnx_device(device: str) -> str:
    if str(device) != "auto":
        return str(device)
    import onnxruntime as ort

    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def load_predictor(model: str, mode: str = "erp", device: str = "auto", layout=None) -> Predictor:
    """The :class:`Predictor` for ``model`` (see the module docstring).

    ``layout`` (``mode="tangent"`` only): a :class:`~panoedge.distill.tangent.PatchLayout`, or a
    dict of :func:`~panoedge.distill.tangent.make_layout` options whose ``patch_hw`` defaults to
    the teacher's ``input_hw``; ``None`` is the default layout at that patch size.
    """
    from panoedge.models.teachers import TEACHER_KINDS, ResolvedTeacher

    if mode not in MODES:
        raise UsageError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if isinstance(model, ResolvedTeacher):  # a teacher resolved once by the caller (a distillation run)
        return TeacherPredictor(model, mode, device, layout)
    text = str(model)
    kind, sep, _ = text.partition(":")
    if sep and kind in TEACHER_KINDS:
        return TeacherPredictor(text, mode, device, layout)
    path = Path(text).expanduser()
    if mode == "tangent":
        raise UsageError(f"{text}: --mode tangent runs a teacher spec on tangent patches; a student runs on ERP")
    if path.suffix.lower() == ".onnx":
        return OnnxPredictor(path, _onnx_device(device))
    if path.is_dir() and (path / "manifest.json").is_file():
        return OnnxPredictor(bundle_model(path), _onnx_device(device))
    if path.is_dir() and (path / "teacher.json").is_file() and not (path / "student.pt").is_file():
        raise UsageError(f"{text}: a builtin teacher folder; use builtin:{text}")
    if path.exists():
        return StudentPredictor(path, _torch_device(device))
    raise DataError(f"{text}: no such file; MODEL is a student.pt, a run folder, a student .onnx, a bundle folder or a teacher spec "
                    f"KIND:PATH_OR_ID (kinds: {', '.join(sorted(TEACHER_KINDS))})")
