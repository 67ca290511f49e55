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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.results import Record, Result, json_field

SCHEMA = "panoedge.bench/1"
#: Percentile of the latencies a case reports as its tail (``p99``).
TAIL_PERCENTILE = 99
#: Precisions a bench compares, in the order the report lists them.
PRECISIONS = ("fp32", "int8")
#: Untimed runs per case before timing (allocation, lazy initialisation and caches settle).
DEFAULT_WARMUP = 5
#: Timed runs per case: enough for a stable median and a meaningful p99 in seconds of wall time.
DEFAULT_REPEAT = 50


@dataclass(frozen=True)
class LatencyMs(Record):
    """Latency over the timed runs, milliseconds."""

    min: float
    median: float
    p99: float


@dataclass(frozen=True)
class Case(Record):
    """One timed case (CONVENTIONS.md): frames per second from the median, latencies, runs."""

    fps: float
    latency_ms: LatencyMs
    warmup: int
    repeat: int

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(fps=d["fps"], latency_ms=LatencyMs(**d["latency_ms"]), warmup=d["warmup"], repeat=d["repeat"])


@dataclass(frozen=True)
class Cases(Record):
    """The FP32 and INT8 cases of one run (either may be absent: no INT8 model, or only engines of one)."""

    fp32: Case | None = json_field(default=None, omit_none=True)
    int8: Case | None = json_field(default=None, omit_none=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Cases":
        return cls(**{p: Case.from_dict(d[p]) for p in PRECISIONS if p in d})

    def int8_speedup(self) -> float | None:
        """FP32 median latency over INT8's; ``None`` unless both were measured."""
        if self.fp32 is None or self.int8 is None:
            return None
        return self.fp32.latency_ms.median / self.int8.latency_ms.median

    def format(self) -> str:
        """The table of :func:`panoedge.timing.format_cases`."""
        from panoedge.timing import format_cases

        return format_cases(self.to_dict())


def time_interleaved(fns: dict, warmup: int, repeat: int) -> Cases:
    """Time the callables ``fns`` (keyed ``fp32``/``int8``) in alternation, each case as
    :func:`panoedge.timing.time_callable` reports one."""
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
        cases[name] = Case(fps=1000.0 / med if med > 0 else float("inf"),
                           latency_ms=LatencyMs(min=float(ms.min()), median=med,
                                                p99=float(np.percentile(ms, TAIL_PERCENTILE))),
                           warmup=warmup, repeat=repeat)
    return Cases(**cases)


def _models(subject: Path, backend: str, int8: Path | None) -> dict[str, Path]:
    if subject.is_dir() and (subject / "manifest.json").is_file():
        from panoedge.runtime.manifest import inspect_bundle

        m = inspect_bundle(subject)
        if backend == "trt":
            from panoedge.runtime.trt_runner import pick_engine

            out = {}
            for prec in PRECISIONS:
                eng = list((subject / "engines").glob(f"*.{prec}.*.engine"))
                if eng:
                    out[prec] = pick_engine(eng, prec)  # this TensorRT and GPU's, not the last by name
            if not out:
                raise UsageError(f"{subject}: no TensorRT engines; build them with `panoedge engine {subject} --precision ...`")
            return out
        return {p: subject / m.models[p] for p in PRECISIONS if p in m.models}
    if backend == "torch":
        return {"fp32": subject}
    if subject.suffix.lower() != ".onnx" or not subject.is_file():
        raise DataError(f"{subject}: expected a bundle folder or an .onnx file")
    out = {"fp32": subject}
    sibling = subject.with_name(subject.name[:-5] + ".int8.onnx")
    if int8 is not None or sibling.is_file():
        out["int8"] = Path(int8) if int8 is not None else sibling
    return out


@dataclass(frozen=True)
class BenchThreads(Record):
    """The threads the run asked for, and the OpenMP setting it ran under."""

    intra_op: int | None
    omp_num_threads: str | None = json_field(key="OMP_NUM_THREADS")


@dataclass(frozen=True)
class BenchInput(Record):
    """The input fed to every case."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class BenchRatios(Record):
    """Ratios between cases (CONVENTIONS.md ``ratios``)."""

    int8_speedup: float | None = json_field(default=None, omit_none=True)


@dataclass(frozen=True)
class BenchResult(Result):
    """``panoedge bench model``: FP32 and INT8 of one subject on one backend, timed interleaved."""

    SCHEMA = SCHEMA
    machine: dict  # panoedge.env.machine_info()
    backend: str
    threads: BenchThreads
    input: BenchInput
    models: dict[str, str]
    warmup: int
    repeat: int
    timing: str
    cases: Cases
    ratios: BenchRatios
    note: str | None

    def format(self) -> str:
        from panoedge.env import MachineInfo

        m = MachineInfo.from_dict(self.machine)
        lines = [f"{m.cpu}, {m.cores} cores; {self.backend} (onnxruntime {m.version('onnxruntime')}), "
                 f"threads {self.threads.intra_op or 'default'}; input {list(self.input.shape)}; "
                 f"warm-up {self.warmup}, repeat {self.repeat}",
                 self.cases.format()]
        if self.ratios.int8_speedup is not None:
            lines.append(f"int8_speedup: {self.ratios.int8_speedup:.2f}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def bench_model(subject: str | Path, backend: str = "ort-cpu", threads: int | None = None,
                warmup: int = DEFAULT_WARMUP, repeat: int = DEFAULT_REPEAT, int8: str | Path | None = None,
                hw: tuple[int, int] | None = None) -> BenchResult:
    """Time FP32 and INT8 of ``subject`` on ``backend`` (a registered runtime backend, or ``torch``)."""
    from contextlib import ExitStack

    import panoedge.deploy.torch_runner  # noqa: F401 - registers the torch backend
    from panoedge.env import machine_info
    from panoedge.runtime.registry import backend_available, create_runner

    backend_available(backend)  # an unknown name fails before any work, listing the valid ones
    subject = Path(subject)
    models = _models(subject, backend, Path(int8) if int8 else None)
    options = {"hw": hw} if backend == "torch" else {}
    with ExitStack() as stack:
        runners = {p: stack.enter_context(create_runner(backend, path, threads=threads, **options))
                   for p, path in models.items()}
        spec = next(iter(runners.values())).inputs[0]
        shape = tuple(d if d is not None else 1 for d in spec.shape)
        feed = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)}
        cases = time_interleaved({p: (lambda r=r: r.infer(feed)) for p, r in runners.items()}, warmup, repeat)
    speedup = cases.int8_speedup()
    return BenchResult(
        machine=machine_info(backends_used=[backend]),
        backend=backend,
        threads=BenchThreads(intra_op=threads, omp_num_threads=os.environ.get("OMP_NUM_THREADS")),
        input=BenchInput(name=spec.name, shape=shape, dtype=np.dtype(spec.dtype).name),
        models={p: str(path) for p, path in models.items()},
        warmup=warmup,
        repeat=repeat,
        timing="interleaved",
        cases=cases,
        ratios=BenchRatios(int8_speedup=speedup),
        note=None if speedup is not None else "only FP32 measured: no INT8 model found (pass --int8 PATH)",
    )
