"""``panoedge bench model``: FP32 and INT8 latency side by side in one run, and their ratio.

The subject is a bundle folder (its ``model.fp32.onnx`` and ``model.int8.onnx``, or its engines
for ``--backend trt``), an FP32 ONNX file (INT8 from ``--int8`` or the sibling ``X.int8.onnx``),
or a ``student.pt`` for ``--backend torch`` (FP32 only). Same input and threads for both; the
cases are timed interleaved after a warm-up (one FP32 run, one INT8 run, repeat), so a machine
whose load changes during the run slows both alike and the ratio stays fair. The report follows
CONVENTIONS.md (``cases.fp32``, ``cases.int8``, ``ratios.int8_speedup``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError

BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt", "torch")


def _models(subject: Path, backend: str, int8: Path | None) -> dict[str, Path]:
    if subject.is_dir() and (subject / "manifest.json").is_file():
        from panoedge.runtime.bundle import read_manifest

        m = read_manifest(subject)
        if backend == "trt":
            from panoedge.runtime.trt_runner import pick_engine

            out = {}
            for prec in ("fp32", "int8"):
                eng = list((subject / "engines").glob(f"*.{prec}.*.engine"))
                if eng:
                    out[prec] = pick_engine(eng, prec)  # this TensorRT and GPU's, not the last by name
            if not out:
                raise UsageError(f"{subject}: no TensorRT engines; build them with `panoedge engine {subject} --precision ...`")
            return out
        return {p: subject / m["models"][p] for p in ("fp32", "int8") if p in m["models"]}
    if backend == "torch":
        return {"fp32": subject}
    if subject.suffix.lower() != ".onnx" or not subject.is_file():
        raise DataError(f"{subject}: expected a bundle folder or an .onnx file")
    out = {"fp32": subject}
    sibling = subject.with_name(subject.name[:-5] + ".int8.onnx")
    if int8 is not None or sibling.is_file():
        out["int8"] = Path(int8) if int8 is not None else sibling
    return out


def _runner(path: Path, backend: str, threads: int | None, hw):
    if backend == "trt":
        from panoedge.runtime.trt_runner import TrtRunner

        return TrtRunner(path)
    if backend == "torch":
        from panoedge.deploy.torch_runner import TorchRunner

        if hw is None:
            raise UsageError("--backend torch needs --size HxW")
        return TorchRunner(path, hw, threads=threads)
    from panoedge.runtime.ort_runner import OrtRunner

    return OrtRunner(path, backend, threads=threads)


def time_interleaved(fns: dict, warmup: int, repeat: int) -> dict:
    """Time several callables in alternation: ``{name: case block}`` as :func:`panoedge.timing.time_callable`."""
    import time

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    cases = {}
    for name, ts in times.items():
        ms = np.asarray(ts) * 1000.0
        med = float(np.median(ms))
        cases[name] = {"fps": 1000.0 / med if med > 0 else float("inf"),
                       "latency_ms": {"min": float(ms.min()), "median": med, "p99": float(np.percentile(ms, 99))},
                       "warmup": warmup, "repeat": repeat}
    return cases


def bench_model(subject: str | Path, backend: str = "ort-cpu", threads: int | None = None, warmup: int = 5,
                repeat: int = 50, int8: str | Path | None = None, hw: tuple[int, int] | None = None) -> dict:
    """Time FP32 and INT8 of ``subject`` on ``backend``; the ``panoedge.bench/1`` report."""
    from panoedge.env import machine_info

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    subject = Path(subject)
    models = _models(subject, backend, Path(int8) if int8 else None)
    runners = {p: _runner(path, backend, threads, hw) for p, path in models.items()}
    spec = next(iter(runners.values())).inputs[0]
    shape = tuple(d if d is not None else 1 for d in spec.shape)
    feed = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)}
    cases = time_interleaved({p: (lambda r=r: r.infer(feed)) for p, r in runners.items()}, warmup, repeat)
    ratios = {}
    if "fp32" in cases and "int8" in cases:
        ratios["int8_speedup"] = cases["fp32"]["latency_ms"]["median"] / cases["int8"]["latency_ms"]["median"]
    return {
        "schema": "panoedge.bench/1",
        "machine": machine_info(backends_used=[backend]),
        "backend": backend,
        "threads": {"intra_op": threads, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "input": {"name": spec.name, "shape": list(shape), "dtype": np.dtype(spec.dtype).name},
        "models": {p: str(path) for p, path in models.items()},
        "warmup": warmup,
        "repeat": repeat,
        "timing": "interleaved",
        "cases": cases,
        "ratios": ratios,
        "note": None if ratios else "only FP32 measured: no INT8 model found (pass --int8 PATH)",
    }
