"""``panoedge export``: student.pt -> plain, simplified, verified ONNX.

On top of :func:`panoedge.models.export_student_onnx` (batch-norm folding, static shapes,
checker, op whitelist, metadata), this simplifies the graph with onnxslim where installed
(constant folding; the op whitelist is checked again afterwards) and verifies the file: ONNX
Runtime against torch on real ERP frames (rendered from the synthetic world unless images are
given), reporting the largest absolute difference per output and failing above the bound
``atol + rtol * max|torch output|``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.results import Record, Result, json_field

SCHEMA = "panoedge.export/1"
#: Verification bound ``ATOL + RTOL * max|torch output|``: float32 kernels of ONNX Runtime and torch
#: differ in summation order, far below what changes a label or a depth.
ATOL, RTOL = 1e-3, 1e-4
#: Synthetic frames rendered for the ORT vs torch check (one per world family, indoor then outdoor).
VERIFY_FRAMES = 2
#: First seed of the synthetic worlds the verification frames are rendered from.
VERIFY_SEED = 1000
#: ONNX opset ``panoedge export`` writes unless ``--opset`` says otherwise (every target's parser reads it).
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class SimplifyReport(Record):
    """What onnxslim did (``tool`` None: it did not run, ``note`` says why)."""

    tool: str | None
    version: str | None = json_field(default=None, omit_none=True)
    note: str | None = json_field(default=None, omit_none=True)
    nodes_before: int | None = json_field(default=None, omit_none=True)
    nodes_after: int | None = json_field(default=None, omit_none=True)

    def format(self) -> str:
        if not self.tool:
            return f"simplified: no ({self.note})"
        return f"simplified: {self.tool} {self.version or ''} {self.nodes_before} -> {self.nodes_after} nodes"


@dataclass(frozen=True)
class OutputCheck(Record):
    """One output's largest ORT vs torch difference over the frames, and its bound."""

    max_abs_diff: float
    bound: float


@dataclass(frozen=True)
class VerifyReport(Record):
    """ONNX Runtime against torch on real frames."""

    backend: str
    n_frames: int
    outputs: dict[str, OutputCheck]
    ok: bool

    def format(self) -> str:
        return "\n".join(f"verify {name}: ORT vs torch max |diff| {v.max_abs_diff:.2e} (bound {v.bound:.1e}) "
                         f"on {self.n_frames} real frames" for name, v in self.outputs.items())


@dataclass(frozen=True)
class ExportResult(Result):
    """What :func:`export_model` wrote and checked."""

    SCHEMA = SCHEMA
    student: str
    name: str
    out: str
    hw: tuple[int, int]
    opset: int
    dynamic_batch: bool
    op_types: tuple[str, ...]
    classes: list | None
    colors: list | None
    depth_kind: str
    simplify: SimplifyReport
    verify: VerifyReport

    def format(self) -> str:
        return "\n".join([f"wrote {self.out} ({self.name}, {self.hw[0]}x{self.hw[1]}, opset {self.opset}, "
                          f"ops: {', '.join(self.op_types)})", self.simplify.format(), self.verify.format()])


def simplify(path: Path) -> SimplifyReport:
    """Simplify ``path`` in place with onnxslim.

    Without onnxslim the file is left as is and the report says so (``tool`` None).
    """
    import onnx

    from panoedge.models.export import ALLOWED_ONNX_OPS, graph_op_types

    proto = onnx.load(str(path))
    before = len(proto.graph.node)
    try:
        import onnxslim
    except ImportError:
        return SimplifyReport(tool=None, note="onnxslim not installed (pip install onnxslim)", nodes_before=before)
    slim = onnxslim.slim(proto)
    onnx.checker.check_model(slim)
    bad = graph_op_types(slim) - ALLOWED_ONNX_OPS
    if bad:
        raise DataError(f"{path}: onnxslim introduced op types outside the deployable set: {', '.join(sorted(bad))}")
    tmp = path.with_name(f".{path.name}.slim-{os.getpid()}")
    try:
        onnx.save(slim, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return SimplifyReport(tool="onnxslim", version=onnxslim.__version__, nodes_before=before,
                          nodes_after=len(slim.graph.node))


def verification_frames(hw: tuple[int, int], n: int = VERIFY_FRAMES, images=None) -> list[np.ndarray]:
    """``n`` real 8-bit RGB ERP frames: the given ``images`` or renders of synthetic worlds."""
    if images is not None:
        return [np.asarray(im, np.uint8) for im in images][:n]
    from panoedge.synth.render import render_erp
    from panoedge.synth.world import make_world

    fams = ("indoor", "outdoor")
    return [render_erp(make_world(fams[i % len(fams)], VERIFY_SEED + i), *hw).rgb for i in range(n)]


def verify(onnx_path: str | Path, model, hw: tuple[int, int], frames, threads: int | None = None) -> VerifyReport:
    """ONNX Runtime vs torch on ``frames``: the largest difference per output against its bound."""
    import torch

    from panoedge.runtime.ort_runner import OrtRunner
    from panoedge.runtime.processing import preprocess

    worst: dict[str, OutputCheck] = {}
    with OrtRunner(onnx_path, threads=threads) as runner:
        for rgb in frames:
            x = preprocess(rgb, hw, model.preprocess)
            with torch.inference_mode():
                ref = {k: v.numpy() for k, v in model.eval()(torch.from_numpy(x)).items()}
            got = runner.infer({"image": x})
            for name, r in ref.items():
                diff = float(np.abs(got[name] - r).max())
                bound = ATOL + RTOL * float(np.abs(r).max())
                w = worst.get(name, OutputCheck(max_abs_diff=0.0, bound=bound))
                worst[name] = OutputCheck(max_abs_diff=max(w.max_abs_diff, diff), bound=min(w.bound, bound))
    ok = all(w.max_abs_diff <= w.bound for w in worst.values())
    return VerifyReport(backend=runner.backend, n_frames=len(frames), outputs=worst, ok=ok)


def export_model(student: str | Path, out: str | Path, hw: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET,
                 dynamic_batch: bool = False, simplify_graph: bool = True, n_verify: int = VERIFY_FRAMES,
                 images=None) -> ExportResult:
    """Export ``student`` (``student.pt`` or a run folder) to ``out``; returns the export report.

    ``hw`` defaults to the size the student was trained at (``meta.size`` in the checkpoint);
    without one it is a ``UsageError``. A failed verification is a ``DataError`` and leaves no file.
    """
    from panoedge.geometry import check_erp_size
    from panoedge.models import export_student_onnx, load_student
    from panoedge.models.export import graph_op_types

    model, info = load_student(student)
    if hw is None:
        size = (info.get("meta") or {}).get("size") or (info.get("meta") or {}).get("erp_hw")
        if not size:
            raise UsageError(f"{student}: no training size recorded; pass --size HxW")
        hw = tuple(size)
    hw = check_erp_size(*hw, what="--size", multiple=32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".panoedge-export-", dir=out.parent) as tmp:
        depth_kind = (info.get("meta") or {}).get("depth_kind")
        path = export_student_onnx(model, Path(tmp) / out.name, hw, opset=opset, dynamic_batch=dynamic_batch,
                                   depth_kind=depth_kind)
        simp = simplify(path) if simplify_graph else SimplifyReport(tool=None, note="--no-simplify")
        ver = verify(path, model, hw=hw, frames=verification_frames(hw, n_verify, images))
        if not ver.ok:
            bad = {k: v.to_dict() for k, v in ver.outputs.items() if v.max_abs_diff > v.bound}
            raise DataError(f"{student}: ONNX Runtime and torch disagree beyond the bound: {bad}")
        import onnx

        ops = sorted(graph_op_types(onnx.load(str(path))))
        os.replace(path, out)
    return ExportResult(student=str(student), name=model.config.name, out=str(out), hw=tuple(hw), opset=opset,
                        dynamic_batch=dynamic_batch, op_types=tuple(ops), classes=info.get("classes"),
                        colors=info.get("colors"),
                        depth_kind=(depth_kind or "metric") if "depth" in model.config.heads else "none",
                        simplify=simp, verify=ver)
