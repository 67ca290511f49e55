"""``hf:ID_OR_DIR``: a Hugging Face transformers segmenter or depth model as a teacher.

``ID_OR_DIR`` is a folder written by ``save_pretrained`` (``config.json``, weights and the
image processor's ``preprocessor_config.json``) or a hub id such as
``nvidia/segformer-b2-finetuned-cityscapes-1024-1024`` or
``depth-anything/Depth-Anything-V2-Small-hf``, fetched through the hub's own cache (so
``HF_HUB_OFFLINE=1`` works once it is cached). Needs the ``transformers`` package.

The task comes from the config's architecture (``...ForSemanticSegmentation``,
``...ForUniversalSegmentation`` (Mask2Former) or ``...ForDepthEstimation``);
``hf-seg:`` and ``hf-depth:`` force one (DPT does both). A universal (mask-classification)
segmenter's per-pixel class scores are formed as its own semantic post-processing forms them,
``sum_q softmax(class_q)[c] * sigmoid(mask_q)``, then normalised over the classes.
Preprocessing follows the image processor's settings (size, ``ensure_multiple_of``,
``keep_aspect_ratio``, rescale, mean/std) but runs in torch on the whole batch.

Depth kinds: Depth Anything's metric variants (``depth_estimation_type: metric``), ZoeDepth,
GLPN and Depth Pro give ``metric`` depth; every other depth model (DPT/MiDaS, relative Depth
Anything) predicts relative inverse depth, ``inverse-relative``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from panoedge.errors import DataError, UsageError
from panoedge.models.teachers.base import ModelTeacher, as_depth, check_seg, register_teacher_kind

TASKS = ("seg", "depth")
METRIC_DEPTH_MODELS = frozenset({"zoedepth", "glpn", "depth_pro"})
UNIVERSAL_MODELS = frozenset({"mask2former"})
"""Mask-classification segmenters whose outputs are ``class_queries_logits`` + ``masks_queries_logits``."""
_SUFFIX = {"seg": "ForSemanticSegmentation", "universal": "ForUniversalSegmentation", "depth": "ForDepthEstimation"}


def hf_depth_kind(config) -> str:
    """The depth kind of a transformers depth model's ``config`` (see the module docstring)."""
    if getattr(config, "depth_estimation_type", None) == "metric" or config.model_type in METRIC_DEPTH_MODELS:
        return "metric"
    return "inverse-relative"


def _source(target: str) -> str:
    """A local folder, or a hub id; a path that clearly is local but missing raises ``DataError``."""
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{path}: a Hugging Face model is a folder (config.json, weights, "
                            "preprocessor_config.json), not a file")
        if not (path / "config.json").is_file():
            raise DataError(f"{path}: no config.json; save the model with save_pretrained(folder)")
        return str(path)
    if target.startswith(("/", ".", "~")) or target.count("/") > 1 or "\\" in target:
        raise DataError(f"{target}: no such model folder")
    return target


def _size_field(size, key: str):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _multiple(v: float, m: int) -> int:
    """``v`` rounded to the nearest multiple of ``m`` (at least ``m``)."""
    return max(m, int(round(v / m)) * m)


class HFTeacher(ModelTeacher):
    """A transformers ``AutoModelForSemanticSegmentation`` or ``AutoModelForDepthEstimation``."""

    def __init__(self, target: str, device: torch.device, task: str | None = None, kind: str = "hf"):
        try:
            import transformers
        except ImportError:
            raise UsageError("hf: teachers need the transformers package (pip install transformers)") from None
        src = _source(target)
        try:
            config = transformers.AutoConfig.from_pretrained(src)
        except (OSError, ValueError) as err:
            raise DataError(f"{target}: not a local model folder and not loadable from the Hugging Face hub "
                            f"(offline, or a wrong id?): {str(err).splitlines()[0]}") from None
        self.task = task or self._task_of(target, config)
        if self.task == "universal" and config.model_type not in UNIVERSAL_MODELS:
            raise DataError(f"{target}: {config.model_type} universal segmentation is not supported "
                            f"(supported: {', '.join(sorted(UNIVERSAL_MODELS))}; OneFormer also needs text task inputs)")
        auto = {"seg": transformers.AutoModelForSemanticSegmentation,
                "universal": transformers.AutoModelForUniversalSegmentation,
                "depth": transformers.AutoModelForDepthEstimation}[self.task]
        try:
            model = auto.from_pretrained(src)
            processor = transformers.AutoImageProcessor.from_pretrained(src)
        except (OSError, ValueError) as err:
            raise DataError(f"{target}: cannot load it as a {self.task} model with its image processor "
                            f"(is preprocessor_config.json there?): {str(err).splitlines()[0]}") from None
        self.model = model.to(device).eval()
        self.name, self.device, self.config = f"{kind}:{target}", device, config
        if self.task in ("seg", "universal"):
            labels = config.id2label
            self.classes = tuple(str(labels[i]).strip() for i in sorted(labels, key=int))
            self.seg_is_probs = self.task == "universal"
        else:
            self.depth_kind = hf_depth_kind(config)
        self._read_processor(target, processor)

    @staticmethod
    def _task_of(target: str, config) -> str:
        found = {t for arch in (config.architectures or []) for t, s in _SUFFIX.items() if arch.endswith(s)}
        if len(found) != 1:
            archs = ", ".join(config.architectures or []) or "none"
            raise DataError(f"{target}: cannot tell segmentation from depth (architectures: {archs}); "
                            "use hf-seg:... or hf-depth:...")
        return found.pop()

    def _read_processor(self, target: str, proc) -> None:
        """Input size, rescale and normalisation from the image processor's settings."""
        size = getattr(proc, "size", None) or {}
        h, w = _size_field(size, "height"), _size_field(size, "width")
        if h is None or w is None:
            edge = _size_field(size, "shortest_edge")
            if edge is None:
                raise DataError(f"{target}: the image processor's size {size!r} gives no height/width or shortest_edge")
            h = w = edge
        self.multiple = int(getattr(proc, "ensure_multiple_of", None) or 1)
        self.keep_aspect = bool(getattr(proc, "keep_aspect_ratio", False))
        self.input_hw = (_multiple(h, self.multiple), _multiple(w, self.multiple))
        self.pixel_scale = 255.0 * float(proc.rescale_factor) if getattr(proc, "do_rescale", True) else 255.0
        if getattr(proc, "do_normalize", False):
            self.mean = tuple(float(v) for v in proc.image_mean)
            self.std = tuple(float(v) for v in proc.image_std)

    def model_hw(self, h: int, w: int) -> tuple[int, int]:
        """``input_hw``, or with ``keep_aspect_ratio`` the DPT rule: scale by the factor nearer 1."""
        if not self.keep_aspect:
            return self.input_hw
        sh, sw = self.input_hw[0] / h, self.input_hw[1] / w
        s = sw if abs(1 - sw) < abs(1 - sh) else sh
        return _multiple(s * h, self.multiple), _multiple(s * w, self.multiple)

    def run(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """``x`` ``(B, 3, h, w)`` -> ``{"seg": logits}`` or ``{"depth": (B, 1, h', w')}`` (+ ``"features"``)."""
        if self.task == "universal":
            return self._run_universal(x, features)
        res = self.model(pixel_values=x, output_hidden_states=features)
        out = {}
        if self.task == "seg":
            out["seg"] = res.logits
            check_seg(self.name, out["seg"], self.classes, x.shape[0])
        else:
            out["depth"] = as_depth(self.name, res.predicted_depth, x.shape[0])
        hidden = getattr(res, "hidden_states", None)
        if features and hidden:
            fmap = self._feature_map(hidden[-1], x.shape[-2:])
            if fmap is not None:
                out["features"] = fmap
        return out

    def _run_universal(self, x: torch.Tensor, features: bool) -> dict[str, torch.Tensor]:
        """Mask2Former/OneFormer: class probabilities ``(B, K, h/4, w/4)`` from queries and masks."""
        res = self.model(pixel_values=x)
        cls = torch.softmax(res.class_queries_logits.float(), -1)[..., :-1]  # the last class is "no object"
        masks = torch.sigmoid(res.masks_queries_logits.float())
        seg = torch.einsum("bqc,bqhw->bchw", cls, masks)
        seg = seg / seg.sum(1, keepdim=True).clamp_min(1e-6)
        check_seg(self.name, seg, self.classes, x.shape[0])
        out = {"seg": seg}
        if features:
            out["features"] = masks  # per-query mask logits as features: (B, Q, h/4, w/4)
        return out

    def _feature_map(self, last: torch.Tensor, hw) -> torch.Tensor | None:
        """The last hidden state as ``(B, C, h, w)``: as is if 4-D, ViT tokens laid on their patch grid."""
        if last.ndim == 4:
            return last
        cfg = self.config
        patch = getattr(cfg, "patch_size", None) or getattr(getattr(cfg, "backbone_config", None), "patch_size", None)
        if last.ndim != 3 or not patch:
            return None
        gh, gw = int(hw[0]) // int(patch), int(hw[1]) // int(patch)
        extra = last.shape[1] - gh * gw
        if extra < 0:
            return None
        return last[:, extra:].transpose(1, 2).reshape(last.shape[0], last.shape[2], gh, gw)


@register_teacher_kind("hf")
def load_hf_teacher(target: str, device: torch.device) -> HFTeacher:
    """``hf:ID_OR_DIR`` -> :class:`HFTeacher`, task from the config's architecture."""
    return HFTeacher(target, device)


@register_teacher_kind("hf-seg")
def load_hf_seg_teacher(target: str, device: torch.device) -> HFTeacher:
    """``hf-seg:ID_OR_DIR`` -> :class:`HFTeacher` loaded with ``AutoModelForSemanticSegmentation``."""
    return HFTeacher(target, device, task="seg", kind="hf-seg")


@register_teacher_kind("hf-depth")
def load_hf_depth_teacher(target: str, device: torch.device) -> HFTeacher:
    """``hf-depth:ID_OR_DIR`` -> :class:`HFTeacher` loaded with ``AutoModelForDepthEstimation``."""
    return HFTeacher(target, device, task="depth", kind="hf-depth")
