"""Pseudo labels: a teacher's tangent-patch predictions on a dataset, fused to ERP, cached on disk.

Computed once per (teacher files, dataset files, :class:`PseudoLabelSpec`, student classes) and
kept under ``$PANOEDGE_HOME/pseudo/<content_key>/``::

    meta.json            classes, depth kind, stems, shard size, the resolved spec (written first)
    shard_00000.npz      images 0..S-1 of the sorted stems: "stems", and per image j
                         "probs_j" (K, H, W) float16, "depth_j" (H, W) float32, "conf_j" (H, W) float16
    index.json           written with ``complete`` once every shard exists
    complete             marker: the set is whole and will be reused as is

Each shard is written atomically, so an interrupted build resumes where it stopped. With
``world_size`` ranks, rank ``r`` builds shards ``r, r + W, ...``; the rank that finds every shard
present writes ``index.json`` and ``complete`` (so call again on one rank after a barrier).

``probs`` are on the student's classes (through the class map; not renormalised, so they sum
to 1 minus the mass of ignored teacher classes); ``depth`` is range, metric or relative (see
:func:`panoedge.distill.tangent.fuse_depth`; ``depth_kind`` says which); ``conf`` is the largest
class probability (or depth validity for a depth-only teacher).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from panoedge.progress import tqdm

from panoedge.data.folder import DatasetFolder
from panoedge.distill.config import PSEUDO_FUSIONS
from panoedge.distill.pseudo_set import SCHEMA, PseudoLabelSet, shard_name
from panoedge.distill.tangent import PatchLayout, make_layout, tangent_predict
from panoedge.errors import DataError, UsageError
from panoedge.home import atomic_write_bytes, atomic_write_text, cache_dir, content_key, sha256_file, write_json
from panoedge.models.teachers import ClassMap, ResolvedTeacher, load_class_map, resolve_teacher_spec, shipped_class_maps
from panoedge.models.teachers.classmap import normalise_name

__all__ = ["PseudoLabelSet", "PseudoLabelSpec", "build_pseudo_labels", "check_teacher_classes", "pseudo_key",
           "teacher_fingerprint"]

VERSION = 1
FUSIONS = PSEUDO_FUSIONS
"""How class probabilities are made: tangent patches only, or also the teacher on the whole ERP
image, mixed by latitude (projection fusion: ``cos(lat)`` weight for the whole image, which is
undistorted at the equator and useless at the poles, 1 for the patches)."""


@dataclass(frozen=True)
class PseudoLabelSpec:
    """How pseudo labels are made; every field is part of the cache key.

    ``patch_hw`` ``None`` uses the teacher's ``input_hw``; the patches are sampled from each
    panorama at ``source_hw`` (``None``: its own size: the sharpest the teacher can see) and
    fused at ``erp_hw`` (``None``: the source size); ``fusion`` one of :data:`FUSIONS`; ``class_map`` is a shipped
    map's name or a YAML file (``None``: the teacher's class names must be the student's).
    """

    teacher: str
    n_patches: int = 0
    fov_deg: float = PatchLayout.fov_deg
    patch_hw: tuple[int, int] | None = None
    min_cover: int = PatchLayout.min_cover
    class_map: str | None = None
    erp_hw: tuple[int, int] | None = None
    source_hw: tuple[int, int] | None = None
    fusion: str = "tangent"
    shard_size: int = 16
    version: int = VERSION

    def __post_init__(self):
        if not isinstance(self.teacher, str) or not self.teacher.strip():
            raise UsageError("pseudo labels: teacher spec missing (e.g. builtin:PATH)")
        if int(self.shard_size) < 1:
            raise UsageError(f"pseudo labels: shard_size {self.shard_size}: must be >= 1")
        from panoedge.geometry import check_erp_size

        for key, what in (("erp_hw", "pseudo-label ERP size"), ("source_hw", "pseudo-label source size")):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, check_erp_size(*getattr(self, key), what=what))
        if self.fusion not in FUSIONS:
            raise UsageError(f"pseudo labels: fusion {self.fusion!r}: choose one of {', '.join(FUSIONS)}")
        if self.patch_hw is not None:
            object.__setattr__(self, "patch_hw", tuple(int(v) for v in self.patch_hw))

    def layout(self, teacher_input_hw):
        """The validated :class:`~panoedge.distill.tangent.PatchLayout` for a teacher of that input size.

        ``n_patches`` 0 (the default) is the fewest patches that cover the sphere at this patch
        size (:func:`~panoedge.distill.tangent_layout.default_layout`: 20 for 4:3 patches, more for
        wider ones such as a 64x96 teacher's), as the teacher's report and evaluation use.
        """
        hw = self.patch_hw or tuple(teacher_input_hw)
        if not self.n_patches and self.fov_deg == PatchLayout.fov_deg and self.min_cover == PatchLayout.min_cover:
            from panoedge.distill.tangent_layout import default_layout

            return default_layout(hw)
        return make_layout(self.n_patches or PatchLayout.n_patches, self.fov_deg, hw, self.min_cover)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def check_teacher_classes(teacher, student_classes, class_map: str | None) -> ClassMap | None:
    """How the teacher's classes become the student's; raises before any work if they do not map.

    Returns ``None`` when no mapping is needed (same names in the same order, or a depth-only
    teacher), else a :class:`ClassMap`: the loaded ``class_map`` or, for the same names in
    another order, a by-name map. Different names without a class map are a ``UsageError``.
    """
    student = [str(c) for c in student_classes]
    if teacher.classes is None:
        if class_map is not None:
            raise UsageError(f"teacher {teacher.name} has no classes (depth only); drop the class map {class_map!r}")
        return None
    if class_map is not None:
        cmap = load_class_map(class_map, teacher.classes, student)
        if all(i < 0 for i in cmap.index):
            raise UsageError(f"class map {class_map!r} sends every class of {teacher.name} to ignore")
        return cmap
    t, s = [normalise_name(c) for c in teacher.classes], [normalise_name(c) for c in student]
    if t == s:
        return None
    if sorted(t) == sorted(s):
        return ClassMap.by_name(teacher.classes, student)
    missing = [c for c in student if normalise_name(c) not in set(t)]
    raise UsageError(f"teacher {teacher.name} classes ({_short(teacher.classes)}) are not the student's "
                     f"({_short(student)}); the teacher lacks {_short(missing)}. Give a class map "
                     f"(shipped: {', '.join(shipped_class_maps()) or 'none'}; or a YAML file)")


def _short(names, n: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "") if names else "-"


def teacher_fingerprint(spec: str) -> list:
    """``[part, [(file, sha256), ...]]`` per part of a teacher spec (:meth:`ResolvedTeacher.fingerprint`)."""
    return resolve_teacher_spec(spec).fingerprint()


def _class_map_fingerprint(class_map: str | None) -> str | None:
    if class_map is None:
        return None
    path = Path(class_map).expanduser()
    path = path if path.is_file() else shipped_class_maps().get(class_map)
    return sha256_file(path) if path is not None else class_map


def pseudo_key(data: DatasetFolder, spec: PseudoLabelSpec, student_classes, teacher: ResolvedTeacher | None = None) -> str:
    """The cache key: teacher files, class map, dataset files (names, sizes, mtimes), spec, student classes.

    ``teacher``: ``spec.teacher`` already resolved (else it is resolved here)."""
    rgb = data.files["rgb"]
    if not rgb:
        raise DataError(f"{data.root}: no panoramas in rgb/; pseudo labels need ERP images")
    files = [(s, p.stat().st_size, p.stat().st_mtime_ns) for s, p in sorted(rgb.items())]
    return content_key("pseudo", VERSION, spec.to_dict(), resolve_teacher_spec(teacher or spec.teacher).fingerprint(),
                       _class_map_fingerprint(spec.class_map), str(data.root.resolve()), files,
                       [str(c) for c in student_classes])


def _load_erp(data: DatasetFolder, stem: str, erp_hw) -> np.ndarray:
    import cv2

    path = data.files["rgb"][stem]
    rgb = data.load(stem, ["rgb"])["rgb"]
    h, w = rgb.shape[:2]
    if w != 2 * h:
        raise UsageError(f"{path}: {w}x{h} is not an equirectangular panorama (width must be 2 x height)")
    if erp_hw is not None and (h, w) != tuple(erp_hw):
        interp = cv2.INTER_AREA if erp_hw[0] < h else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (erp_hw[1], erp_hw[0]), interpolation=interp)
    return rgb


def _erp_mix(teacher, x: torch.Tensor, cmap, probs: torch.Tensor) -> torch.Tensor:
    """``probs`` (tangent, ``(K, h, w)``) mixed with the teacher on the whole image ``x`` by latitude."""
    import torch.nn.functional as F

    from panoedge.models.teachers import apply_class_map

    whole = teacher.predict(x).probs
    if cmap is not None:
        whole = apply_class_map(whole, cmap)[0]
    h, w = probs.shape[-2:]
    whole = F.interpolate(whole.float(), size=(h, w), mode="area" if h < x.shape[-2] else "bilinear")[0].cpu()
    lat = (0.5 - (torch.arange(h, dtype=torch.float32) + 0.5) / h) * torch.pi
    wt = torch.cos(lat).view(1, h, 1)
    return (probs * 1.0 + whole * wt) / (1.0 + wt)


def _label_one(teacher, layout, cmap, rgb: np.ndarray, device, out_hw=None, fusion: str = "tangent") -> dict[str, np.ndarray]:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0
    out = tangent_predict(teacher, x, layout, cmap, out_hw=out_hw)
    res = {}
    if out.probs is not None:
        probs = out.probs[0].cpu()
        if fusion == "tangent+erp":
            probs = _erp_mix(teacher, x, cmap, probs)
        res["probs"] = probs.numpy().astype(np.float16)
        res["conf"] = probs.max(0).values.numpy().astype(np.float16)
    if out.depth is not None:
        depth = out.depth[0, 0].cpu().numpy().astype(np.float32)
        res["depth"] = depth
        res.setdefault("conf", (depth > 0).astype(np.float16))
    return res


def build_pseudo_labels(data: DatasetFolder, teacher: ResolvedTeacher | str | None, spec: PseudoLabelSpec,
                        student_classes, rank: int = 0, world_size: int = 1, progress: bool = True,
                        device: str = "cpu") -> PseudoLabelSet:
    """Build (or reuse, or resume) the pseudo labels of ``data`` for ``spec``; see the module docstring.

    ``teacher`` is the resolved teacher (or its spec) and must be ``spec.teacher`` (or ``None``:
    resolved from ``spec.teacher``). The teacher is loaded only
    if this rank has shards to build (or ``meta.json`` is not written yet); its classes are
    checked against ``student_classes`` (:func:`check_teacher_classes`) before any image is
    processed. ``device`` is where the teacher runs (e.g. ``f"cuda:{rank}"``). A panorama that is not 2:1
    is a ``UsageError`` naming its file; an empty or unreadable folder a ``DataError``.
    """
    if teacher is not None and str(teacher) != spec.teacher.strip():
        raise UsageError(f"teacher {str(teacher)!r} differs from the pseudo-label spec's {spec.teacher!r}")
    resolved = resolve_teacher_spec(spec.teacher if teacher is None else teacher)
    if not 0 <= int(rank) < int(world_size):
        raise UsageError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
    stems = data.stems
    root = cache_dir("pseudo", pseudo_key(data, spec, student_classes, resolved))
    if (root / "complete").is_file():
        return PseudoLabelSet(root)
    n_shards = math.ceil(len(stems) / spec.shard_size)
    todo = [i for i in range(rank, n_shards, world_size) if not (root / shard_name(i)).is_file()]
    if todo or not (root / "meta.json").is_file():
        teacher = resolved.load(device)
        cmap = check_teacher_classes(teacher, student_classes, spec.class_map)
        layout = spec.layout(teacher.input_hw)
        classes = list(cmap.target) if cmap is not None else (list(teacher.classes) if teacher.classes else None)
        depth_kind = None if teacher.depth_kind is None else ("metric" if teacher.depth_kind == "metric" else "relative")
        write_json(root / "meta.json", {
            "schema": SCHEMA, "spec": spec.to_dict(), "layout": layout.to_dict(), "teacher": teacher.name,
            "teacher_depth_kind": teacher.depth_kind, "classes": classes, "depth_kind": depth_kind,
            "class_map": cmap.describe() if cmap is not None else None, "data": str(data.root),
            "stems": list(stems), "shard_size": spec.shard_size})
        bar = tqdm(todo, desc=f"pseudo labels (rank {rank}/{world_size})", unit="shard", disable=not progress)
        for i in bar:
            part = stems[i * spec.shard_size:(i + 1) * spec.shard_size]
            arrays = {"stems": np.array(part)}
            for j, stem in enumerate(part):
                for k, v in _label_one(teacher, layout=layout, cmap=cmap,
                                       rgb=_load_erp(data, stem, spec.source_hw), device=device,
                                       out_hw=spec.erp_hw, fusion=spec.fusion).items():
                    arrays[f"{k}_{j}"] = v
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic_write_bytes(root / shard_name(i), buf.getvalue())
    labels = PseudoLabelSet(root)
    if not labels.missing_shards():
        write_json(root / "index.json", {"schema": SCHEMA, "stems": labels.stems, "shards": [
            {"file": shard_name(i), "stems": labels.stems[i * spec.shard_size:(i + 1) * spec.shard_size]}
            for i in range(n_shards)], "classes": labels.meta["classes"], "depth_kind": labels.depth_kind})
        atomic_write_text(root / "complete", "complete\n")
    return labels
