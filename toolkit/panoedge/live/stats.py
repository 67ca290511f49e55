"""Live statistics of a running pipeline (CONVENTIONS.md benchmark shape).

:class:`PipelineStats` is shared by the stage threads. It keeps, per stage, every timing since
the measurement began (a growing float32 array, so percentiles are exact and memory grows by a
few bytes a frame), plus a short window of recent deliveries for the live figures (fps, latency
p50/p99) the CLI prints each second (:func:`format_live`) and the web viewer shows.
:meth:`PipelineStats.case` turns a run into the ``cases.<name>`` block of a report, a :class:`Case`
(``{"fps", "latency_ms": {"min", "median", "p99"}, "stages_ms", "frames", "dropped", ...}``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.results import Record, json_field

__all__ = ["Case", "FrameCounts", "Latency", "Memory", "PipelineStats", "STAGES", "Series", "format_live",
           "limit_malloc_arenas", "pipeline_drops", "rss_mb", "trim_memory"]

STAGES = ("capture", "stitch", "infer", "post", "sinks")
"""The pipeline's stages in frame order (``capture`` is frame exposure -> frame in memory)."""


class Series:
    """An append-only float series with exact percentiles (amortised doubling float32 storage)."""

    def __init__(self, capacity: int = 1024):
        self._a = np.empty(capacity, dtype=np.float32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, x: float) -> None:
        if self._n == len(self._a):
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self._n] = x
        self._n += 1

    def values(self) -> np.ndarray:
        return self._a[: self._n]

    def summary(self) -> dict:
        """``{"min", "median", "p99", "mean", "max", "n"}`` (NaN figures when empty)."""
        v = self.values().astype(np.float64)
        if not v.size:
            return {"min": float("nan"), "median": float("nan"), "p99": float("nan"), "mean": float("nan"),
                    "max": float("nan"), "n": 0}
        return {"min": float(v.min()), "median": float(np.median(v)), "p99": float(np.percentile(v, 99)),
                "mean": float(v.mean()), "max": float(v.max()), "n": int(v.size)}


def pipeline_drops(dropped: dict[str, int]) -> int:
    """Frames the pipeline lost (camera frames nobody read, queue drops); a slow sink skipping
    frames for itself (``sink:*``) does not count."""
    return sum(v for k, v in dropped.items() if not k.startswith("sink:"))


def rss_mb() -> float:
    """This process's resident memory in MiB (``/proc/self/status``; NaN where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


_LIBC = None
M_ARENA_MAX = -8  # glibc mallopt parameter


def _glibc():
    """glibc through ctypes, or False where the C library is another (macOS, musl)."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def trim_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere)."""
    lib = _glibc()
    if lib:
        lib.malloc_trim(0)


def limit_malloc_arenas(n: int) -> bool:
    """Cap glibc's malloc arenas for this process at ``n`` (True if set; False off glibc).

    By default glibc gives threads up to 8 arenas per core; stage and web threads allocating
    and freeing frame-sized buffers across many arenas keep freed pages resident, and resident
    memory creeps up for hours. A couple of arenas keeps it flat at no measurable speed cost.
    """
    lib = _glibc()
    return bool(lib) and lib.mallopt(M_ARENA_MAX, int(n)) == 1


class PipelineStats:
    """Counters and timings of one pipeline run; every method is thread-safe."""

    COUNTERS = ("captured", "delivered", "corrupt", "disconnects", "reconnects", "out_of_order", "sink_errors")

    def __init__(self, window_s: float = 2.0):
        self._lock = threading.Lock()
        self.window_s = float(window_s)
        self.t_begin = time.perf_counter()
        self.begin_measurement()

    def begin_measurement(self) -> None:
        """Forget everything so far (warm-up): the report covers from now on."""
        trim_memory()
        with self._lock:
            self.t_start = time.perf_counter()
            self.t_end: float | None = None
            self.stages = {s: Series() for s in STAGES}
            self.latency = Series()
            self.counts = dict.fromkeys(self.COUNTERS, 0)
            self.dropped: dict[str, int] = {}
            self._recent: deque = deque()  # (t_delivered, latency_ms)
            self.last_seq = -1
            self.rss = {"start_mb": rss_mb(), "end_mb": float("nan"), "max_mb": rss_mb()}
            self.rss_samples: list[tuple[float, float]] = []

    def end_measurement(self) -> None:
        trim_memory()
        with self._lock:
            self.t_end = time.perf_counter()
            self.rss["end_mb"] = rss_mb()
            self.rss["max_mb"] = max(self.rss["max_mb"], self.rss["end_mb"])

    # -- recording ----------------------------------------------------------------------------

    def stage(self, name: str, ms: float) -> None:
        with self._lock:
            self.stages[name].add(ms)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def drop(self, where: str, n: int = 1) -> None:
        """``n`` frames lost at ``where`` (a queue, a sink, or ``camera`` for frames nobody read)."""
        if n:
            with self._lock:
                self.dropped[where] = self.dropped.get(where, 0) + n

    def delivered(self, seq: int, t_capture: float) -> float:
        """A frame reached the sinks: records its end-to-end latency (ms, returned) and its order."""
        now = time.perf_counter()
        ms = (now - t_capture) * 1000.0
        with self._lock:
            self.latency.add(ms)
            self.counts["delivered"] += 1
            if seq <= self.last_seq:
                self.counts["out_of_order"] += 1
            self.last_seq = max(self.last_seq, seq)
            self._recent.append((now, ms))
            while self._recent and now - self._recent[0][0] > self.window_s:
                self._recent.popleft()
        return ms

    def sample_memory(self, every_s: float = 10.0, keep: int = 512) -> None:
        """Note the resident memory: the maximum always; every ``every_s`` a sample (the series is
        thinned to ``keep``) after handing freed heap pages back (:func:`trim_memory`)."""
        mb = rss_mb()
        now = time.perf_counter() - self.t_start
        with self._lock:
            self.rss["max_mb"] = max(self.rss["max_mb"], mb)
            sample = not self.rss_samples or now - self.rss_samples[-1][0] >= every_s
            if sample:
                self.rss_samples.append((round(now, 1), round(mb, 1)))
                if len(self.rss_samples) > keep:
                    self.rss_samples = self.rss_samples[::2]
        if sample:
            trim_memory()

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Live figures over the last ``window_s`` seconds, plus the totals so far (JSON-ready)."""
        now = time.perf_counter()
        with self._lock:
            recent = [(t, ms) for t, ms in self._recent if now - t <= self.window_s]
            lat = np.array([ms for _, ms in recent], dtype=np.float64)
            span = min(self.window_s, now - self.t_start)
            stages = {}
            for s, ser in self.stages.items():
                tail = ser.values()[-60:]
                if tail.size:
                    stages[s] = round(float(np.median(tail)), 2)
            return {
                "elapsed_s": round(now - self.t_begin, 2),
                "fps": round(len(recent) / span, 2) if span > 0 else 0.0,
                "latency_ms": {"p50": round(float(np.median(lat)), 1) if lat.size else None,
                               "p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None},
                "stages_ms": stages,
                **{k: v for k, v in self.counts.items()},
                "dropped": dict(self.dropped),
                "dropped_total": pipeline_drops(self.dropped),
            }

    def case(self) -> Case:
        """The report's case block for the measured span (call after :meth:`end_measurement`)."""
        with self._lock:
            t_end = self.t_end if self.t_end is not None else time.perf_counter()
            duration = max(t_end - self.t_start, 1e-9)
            lat = self.latency.summary()
            start, end = self.rss["start_mb"], self.rss["end_mb"]
            return Case(
                fps=self.counts["delivered"] / duration,
                latency_ms=Latency(min=lat["min"], median=lat["median"], p99=lat["p99"], mean=lat["mean"],
                                   max=lat["max"]),
                stages_ms={s: ser.summary() for s, ser in self.stages.items() if len(ser)},
                duration_s=duration,
                frames=FrameCounts(**self.counts),
                dropped=dict(self.dropped),
                dropped_total=pipeline_drops(self.dropped),
                memory=Memory(rss_start_mb=start, rss_end_mb=end, rss_max_mb=self.rss["max_mb"],
                              rss_growth_pct=(end - start) / start * 100.0 if start == start and start > 0 else None,
                              samples_s_mb=[list(x) for x in self.rss_samples]),
            )


@dataclass(frozen=True)
class Latency(Record):
    """End-to-end latency of the measured frames, ms (capture -> handed to the sinks)."""

    min: float
    median: float
    p99: float
    mean: float
    max: float


@dataclass(frozen=True)
class FrameCounts(Record):
    """The pipeline's counters over the measured span (:attr:`PipelineStats.COUNTERS`)."""

    captured: int = 0
    delivered: int = 0
    corrupt: int = 0
    disconnects: int = 0
    reconnects: int = 0
    out_of_order: int = 0
    sink_errors: int = 0


@dataclass(frozen=True)
class Memory(Record):
    """Resident memory, MiB, at the start and end of the measured span, its maximum and samples."""

    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    rss_growth_pct: float | None
    samples_s_mb: list


@dataclass(frozen=True)
class Case(Record):
    """One measured run of the pipeline (a report's ``cases.<name>``).

    ``stages_ms``: per stage ``{"min", "median", "p99", "mean", "max", "n"}``; ``dropped``: frames
    lost per place (``camera``, ``queue:*``, ``sink:*``); ``dropped_total``: the pipeline's own
    losses (a slow sink skipping frames for itself is not one); ``mode``: ``concurrent`` or
    ``sequential``; ``warmup_s`` and ``wall_s`` where the benchmark adds them.
    """

    fps: float
    latency_ms: Latency
    stages_ms: dict
    duration_s: float
    frames: FrameCounts
    dropped: dict
    dropped_total: int
    memory: Memory
    interrupted: bool = False
    ended: bool = False
    mode: str = "concurrent"
    warmup_s: float | None = json_field(omit_none=True, default=None)
    wall_s: float | None = json_field(omit_none=True, default=None)

    def stage_medians(self) -> str:
        """``capture 1.2 stitch 8.0 ...``: each stage's median, ms."""
        return " ".join(f"{k} {v['median']:.1f}" for k, v in self.stages_ms.items())


def format_live(s: dict) -> str:
    """One status line from :meth:`PipelineStats.snapshot`."""
    lat = s["latency_ms"]
    p50 = f"{lat['p50']:.0f}" if lat["p50"] is not None else "-"
    p99 = f"{lat['p99']:.0f}" if lat["p99"] is not None else "-"
    stages = " ".join(f"{k} {v:.1f}" for k, v in s["stages_ms"].items())
    return (f"[{s['elapsed_s']:7.1f} s] {s['fps']:5.1f} fps  latency p50 {p50} / p99 {p99} ms  "
            f"frames {s['delivered']}  dropped {s['dropped_total']}  corrupt {s['corrupt']}  "
            f"reconnects {s['reconnects']}  | ms: {stages}")
