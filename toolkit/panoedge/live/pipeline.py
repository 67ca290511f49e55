"""The camera pipeline: capture -> stitch -> infer -> post-process -> sinks.

Concurrent mode runs each stage in its own thread, handing frames over through bounded
:class:`~panoedge.live.stream.StageQueue` s, with at most ``max_in_flight`` frames (default 2)
between the stitcher and the sinks, so stitching frame ``k + 1`` overlaps inferring frame
``k`` and no frame waits behind others. With a live source (a camera, or a paced replay) the
camera is read at its own rate into a queue that drops the oldest frame, and the stitcher takes
the newest one whenever a slot frees: when a stage is slow, frames are dropped before any work
is spent on them and latency stays bounded. With an unpaced source (``fps=0``) the capture
stage reads the next frame only when a slot frees, so nothing is lost and no frame waits long.
OpenCV and ONNX Runtime release the GIL, so the stages overlap on the cores.
Sequential mode runs the same stages one after another in one thread (the baseline of
``panoedge bench pipeline``).

Every frame carries its sequence number and capture timestamp. The stats
(:class:`~panoedge.live.stats.PipelineStats`) record per-stage times, end-to-end latency
(capture -> handed to the sinks), fps, drops per queue, corrupt frames, disconnects and
reconnects, and any frame delivered out of order.

Faults: a source that stops delivering (``read`` returns None or raises) is closed and
reopened with exponential back-off (``backoff_s`` doubling up to ``backoff_max_s``), and the
pipeline says so in its event log; a frame that is not a valid image of the rig's size, or
that the stitcher rejects, is skipped and counted as corrupt. :meth:`Pipeline.run` returns on
its duration, at the end of a finite source, on :meth:`Pipeline.stop`, or on Ctrl-C
(``KeyboardInterrupt``), and always stops the stages and closes the sinks (files are flushed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from queue import Empty
from typing import Callable

import numpy as np

from panoedge.errors import UsageError
from panoedge.live.report import AccuracyFigures
from panoedge.live.stats import Case, PipelineStats, format_live
from panoedge.live.sinks import open_sink
from panoedge.live.sources import open_source
from panoedge.live.stream import (Closed, CorruptFrame, FrameResult, Sink, Source, SourceEnded, SourceFailed,
                                  StageQueue, StreamInfo)

log = logging.getLogger("panoedge.live")

__all__ = ["Frame", "Pipeline", "PipelineConfig"]

EMA_ALPHA = 0.2
"""Weight of the newest stage time in the running average just-in-time stitching plans with (1/5:
follows a change within a few frames, ignores one slow frame)."""
JIT_MARGIN_S = 0.002
"""Seconds of slack just-in-time stitching leaves before inference frees up (thread wake-up jitter),
so the stitched frame is ready a little early rather than late."""
JIT_MAX_WAIT_S = 1.0
"""Longest single just-in-time wait, seconds: a stale estimate (a model that got faster) never holds
the stitcher back for longer."""
SLOT_POLL_S = 0.1
"""Seconds a stage waits for an in-flight slot before checking for a stop or a failed stage."""
QUEUE_POLL_S = 0.2
"""Seconds a stage waits on its input queue before checking again (bounds how late it sees a stop)."""
RUN_TICK_S = 0.05
"""Seconds between the run loop's checks of duration, warm-up and status in concurrent mode."""
MIN_JOIN_S = 0.1
"""Each stage thread gets at least this long to finish at stop, even past ``join_timeout_s``."""
BACKOFF_FACTOR = 2.0
"""Reconnect delays double after each failed attempt, up to ``backoff_max_s``."""
EVENT_LOG_KEEP = 200
"""Events kept in memory and in the report (the oldest go first; every event is logged anyway)."""


@dataclass(frozen=True)
class PipelineConfig:
    """Knobs of a pipeline run (defaults live here and nowhere else).

    ``queue_size``: camera frames waiting for the stitcher (a live source's queue, which drops
    the oldest; 1 keeps only the newest, so latency stays one frame). ``max_in_flight``: frames
    being stitched, inferred or post-processed at once (2 overlaps stitching one frame with
    inferring the previous; more only adds latency: ``panoedge bench pipeline`` shows both).
    ``just_in_time``: while inference is busy, start the next frame only about one stitch
    before inference frees up, so it is the freshest frame and waits in no queue.
    ``antialias``: the stitcher's pre-blur where the frame is much denser than the ERP (see
    :class:`~panoedge.stitch.Stitcher`). Off for live: it blurs the whole camera frame every
    frame, a large share of a small CPU's stitch budget, and live accuracy barely moves without
    it (``panoedge bench pipeline --antialias`` against ``--no-antialias`` measures the cost;
    ``panoedge run`` on ``synth://`` reports live against offline mIoU).
    ``malloc_arenas``: cap glibc's malloc arenas for the process (a couple keeps resident memory flat
    over long runs, :func:`~panoedge.live.stats.limit_malloc_arenas`; ``panoedge bench soak``
    reports the growth; None leaves malloc alone). ``backoff_s``/``backoff_max_s``: reconnect
    delays (a replugged camera is back within the first retries; the cap keeps a returning
    camera from waiting long while not spinning on an absent one). ``stitch_device``: the
    :class:`~panoedge.stitch.Stitcher` device (``cpu`` keeps the process torch-free).
    ``exposure_smoothing``: temporal smoothing of the stitcher's per-lens gains (at camera rates the
    gains follow a lighting change within about a second and do not flicker with noise).
    ``accuracy``: score frames that carry ground truth, at most ``accuracy_fps`` a second (0: every
    frame; scoring costs a few milliseconds a frame, and a few a second still cover a looping
    source over a run). ``status_every_s``: how often ``on_status`` gets the live figures (0:
    never). ``join_timeout_s``: how long stopping waits for the stage threads (a stage stuck in a
    driver call must not hold the exit for ever). ``cv_threads``: OpenCV's worker threads for this
    process (``cv2.setNumThreads``; None leaves OpenCV's default).
    """

    queue_size: int = 1
    backoff_s: float = 0.1
    backoff_max_s: float = 5.0
    stitch_device: str = "cpu"
    blend: str = "feather"
    exposure_smoothing: float = 0.9
    accuracy: bool = True
    accuracy_fps: float = 5.0
    status_every_s: float = 1.0
    join_timeout_s: float = 10.0
    cv_threads: int | None = None
    max_in_flight: int = 2
    just_in_time: bool = True
    malloc_arenas: int | None = 2
    antialias: bool = False


@dataclass
class Frame:
    """A frame on its way through the stages."""

    seq: int
    t_capture: float
    t_wall: float
    image: np.ndarray
    index: int = 0
    truth: dict | None = None
    erp: np.ndarray | None = None
    outputs: dict | None = None


@dataclass
class _Events:
    """The pipeline's event log (connections, losses, files written): kept, logged and passed on."""

    keep: int = EVENT_LOG_KEEP
    on_event: Callable[[str], None] | None = None
    items: deque = field(default_factory=deque)

    def __call__(self, msg: str) -> None:
        self.items.append({"t": round(time.time(), 3), "event": msg})
        while len(self.items) > self.keep:
            self.items.popleft()
        log.info(msg)
        if self.on_event is not None:
            self.on_event(msg)


class Pipeline:
    """A source, a model, the stitcher between them, and sinks (see the module docstring).

    ``source``: a URI or :class:`~panoedge.live.stream.Source`; ``model``: a
    :class:`~panoedge.live.model.LiveModel`; ``sinks``: URIs or :class:`~panoedge.live.stream.Sink` s;
    ``rig``: the camera's :class:`~panoedge.stitch.Rig` (sources that know theirs, such as
    ``synth://``, need none). ``on_event(msg)`` and ``on_status(snapshot)`` are called from
    the pipeline's threads.
    """

    def __init__(self, source, model, sinks=(), rig=None, config: PipelineConfig | None = None,
                 on_event: Callable[[str], None] | None = None,
                 on_status: Callable[[dict], None] | None = None, gravity=None, owns_model: bool = False):
        self.config = config or PipelineConfig()
        self.owns_model = owns_model  # loaded for this pipeline: released when its ``with`` block ends
        # Levelling: a :class:`panoedge.stitch.level_hooks.GravityHook` the robot's IMU driver updates, or an
        # ImageLevelHook (``--level auto``) fed with the stitched frames; each frame is stitched with
        # the latest rotation (tables built in the background).
        self.gravity = gravity
        self.source: Source = open_source(source)
        self.model = model
        self.rig = rig if rig is not None else self.source.rig
        if self.rig is None:
            raise UsageError(f"{self.source.uri}: this source needs the camera's rig file (--rig RIG.yaml)")
        self.sinks: list[Sink] = [open_sink(s) for s in sinks]
        self.events = _Events(on_event=on_event)
        self.on_status = on_status
        self.stats = PipelineStats()
        self.accuracy = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._queues: dict[str, StageQueue] = {}
        self._durations: dict[str, float] = {}  # stage -> EMA seconds; stage threads write, stitch reads
        self._lock = threading.Lock()  # guards _durations and _error, shared by the stage threads
        self._infer_started: float | None = None
        self._slots = threading.BoundedSemaphore(self.config.max_in_flight)
        self._stitcher = None
        self._connected = False
        self._was_lost = False
        self._opened = False
        self._got_frame = False
        self._last_problem: str | None = None
        self._seq = 0
        self.ended = False

    # -- setup ----------------------------------------------------------------------------------

    @property
    def erp_hw(self) -> tuple[int, int]:
        return tuple(self.model.input_hw)

    def _stream_info(self) -> StreamInfo:
        return StreamInfo(erp_hw=self.erp_hw, classes=list(self.model.classes), colors=self.model.colors,
                          fps=float(self.source.fps or 0.0), source=self.source.describe(),
                          model=self.model.describe(), depth_kind=getattr(self.model, "depth_kind", "metric"),
                          stats=lambda: self.stats.snapshot(), log=self.events,
                          request_stop=self.stop)

    def open(self) -> None:
        """Prepare the source, build the stitch tables, open the sinks (once; :meth:`run` calls it)."""
        if self._opened:
            return
        from panoedge.stitch import Stitcher

        self.source.stop_event = self._stop
        self.source.prepare()
        if self.config.malloc_arenas:
            from panoedge.live.stats import limit_malloc_arenas

            limit_malloc_arenas(self.config.malloc_arenas)
        if self.config.cv_threads is not None:
            import cv2

            cv2.setNumThreads(int(self.config.cv_threads))
        self._stitcher = Stitcher(self.rig, self.erp_hw, blend=self.config.blend, device=self.config.stitch_device,
                                  smoothing=self.config.exposure_smoothing, antialias=self.config.antialias,
                                  async_tables=self.gravity is not None)
        if self.config.accuracy and callable(getattr(self.source, "meta", None)):
            from panoedge.live.accuracy import AccuracySink, comparable_classes

            why = comparable_classes(list(self.model.classes), self.source.meta()["classes"])
            if why:
                self.events(f"live accuracy not measured: {why}")
            else:
                self.accuracy = AccuracySink(len(self.model.classes), self.config.accuracy_fps)
        info = self._stream_info()
        opened = []
        try:
            for sink in self.sinks + ([self.accuracy] if self.accuracy else []):
                sink.open(info)
                opened.append(sink)
        except BaseException:
            for sink in opened:
                sink.close()
            raise
        self._opened = True

    def close(self) -> None:
        """Close the sinks (flushing files) and the source; idempotent."""
        if not self._opened:
            return
        for sink in self.sinks + ([self.accuracy] if self.accuracy else []):
            try:
                sink.close()
            except Exception as e:  # one sink failing to close must not keep the others open
                self.events(f"sink {sink.uri}: close failed: {type(e).__name__}: {e}")
        self.source.close()
        if self._stitcher is not None:
            self._stitcher.close()
        self._opened = False

    @property
    def delivered_any(self) -> bool:
        """Whether the source delivered at least one frame in the last :meth:`run`."""
        return self._got_frame

    @property
    def last_source_problem(self) -> str | None:
        """The last reason the source could not be opened or was lost (None: none)."""
        return self._last_problem

    def stop(self) -> None:
        """Ask every stage to stop (thread-safe; :meth:`run` returns soon after)."""
        self._stop.set()

    # -- the stages -----------------------------------------------------------------------------

    def _connect(self) -> bool:
        """Open the source, retrying with back-off until it opens or the pipeline stops."""
        delay = self.config.backoff_s
        attempt = 0
        while not self._stop.is_set():
            try:
                self.source.open()
            except (UsageError, SourceFailed):
                raise
            except Exception as e:  # a device that is not there now: SourceError, OSError, cv2.error
                attempt += 1
                self._last_problem = f"cannot open: {e}"
                self.events(f"source {self.source.uri}: cannot open ({e}); retry {attempt} in {delay:.1f} s")
                self._stop.wait(delay)
                delay = min(delay * BACKOFF_FACTOR, self.config.backoff_max_s)
                continue
            if self._was_lost or attempt:
                self.stats.count("reconnects")
                self.events(f"source {self.source.uri}: reconnected after {attempt + 1} attempt(s)")
            self._connected = True
            self._was_lost = False
            return True
        return False

    def _lost(self, why: str) -> None:
        self.stats.count("disconnects")
        self._last_problem = f"lost: {why}"
        self.events(f"source {self.source.uri}: lost ({why}); reconnecting")
        self.source.close()
        self._connected = False
        self._was_lost = True
        self._stop.wait(self.config.backoff_s)

    def capture_one(self) -> Frame | None:
        """Read and check one frame; None when there is none this time (lost, corrupt, reconnecting)."""
        if not self._connected and not self._connect():
            return None
        t_read = time.perf_counter()
        try:
            got = self.source.read()
        except SourceEnded:
            raise
        except CorruptFrame as e:
            self.stats.count("corrupt")
            self.events(f"corrupt frame skipped: {e}")
            return None
        except (UsageError, SourceFailed):
            raise
        except Exception as e:  # the device failed mid-stream
            self._lost(f"{type(e).__name__}: {e}")
            return None
        if got is None:
            self._lost("no frame")
            return None
        now = time.perf_counter()
        if got.missed:
            self.stats.drop("camera", got.missed)
        img = got.image
        if (not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3
                or img.shape[:2] != tuple(self.rig.frame_hw)):
            self.stats.count("corrupt")
            desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            self.events(f"corrupt frame skipped: {desc}, the rig expects {self.rig.frame_hw[0]}x{self.rig.frame_hw[1]}x3 uint8")
            return None
        self._got_frame = True
        frame = Frame(seq=self._seq, t_capture=got.t_capture, t_wall=time.time() - (now - got.t_capture), image=img,
                      index=got.index, truth=got.truth)
        self._seq += 1
        self.stats.count("captured")
        self.stats.stage("capture", (now - got.t_capture) * 1000.0)
        self._ema("capture", now - t_read)
        return frame

    def stitch_one(self, frame: Frame) -> bool:
        t0 = time.perf_counter()
        try:
            level = self.gravity.rotation() if self.gravity is not None else None
            frame.erp = self._stitcher.stitch(frame.image, level)
            if self.gravity is not None and hasattr(self.gravity, "offer"):
                self.gravity.offer(frame.erp, level)
        except (UsageError, ValueError) as e:
            self.stats.count("corrupt")
            self.events(f"corrupt frame {frame.seq} skipped by the stitcher: {e}")
            return False
        frame.image = None  # the camera buffer is not needed any more
        dt = time.perf_counter() - t0
        self.stats.stage("stitch", dt * 1000.0)
        self._ema("stitch", dt)
        return True

    def infer_one(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        self._infer_started = t0
        try:
            frame.outputs = self.model.infer(self.model.preprocess(frame.erp))
        finally:
            self._infer_started = None
        dt = time.perf_counter() - t0
        self.stats.stage("infer", dt * 1000.0)
        self._ema("infer", dt)

    def _ema(self, stage: str, seconds: float, alpha: float = EMA_ALPHA) -> None:
        with self._lock:
            old = self._durations.get(stage)
            self._durations[stage] = seconds if old is None else old + alpha * (seconds - old)

    def _wait_for_inference(self, unpaced: bool) -> None:
        """Just-in-time stitching: while inference is busy, wait until it is about one stitch (plus
        one read, for unpaced sources) from done, so the frame taken next is the freshest and does
        not sit stitched in a queue. Costs no throughput: stitching still overlaps inference."""
        started = self._infer_started
        with self._lock:
            infer_s = self._durations.get("infer")
            stitch_s, capture_s = self._durations.get("stitch", 0.0), self._durations.get("capture", 0.0)
        if started is None or infer_s is None:
            return
        lead = stitch_s + (capture_s if unpaced else 0.0) + JIT_MARGIN_S
        delay = started + infer_s - lead - time.perf_counter()
        if delay > 0:
            self._stop.wait(min(delay, JIT_MAX_WAIT_S))

    def post_one(self, frame: Frame, concurrent: bool) -> None:
        t0 = time.perf_counter()
        labels, depth = self.model.postprocess(frame.outputs)
        frame.outputs = None
        t1 = time.perf_counter()
        self.stats.stage("post", (t1 - t0) * 1000.0)
        latency = self.stats.delivered(frame.seq, frame.t_capture)
        result = FrameResult(seq=frame.seq, t_capture=frame.t_capture, t_wall=frame.t_wall, erp=frame.erp, labels=labels,
                             depth=depth, truth=frame.truth, index=frame.index, latency_ms=latency)
        for sink in self.sinks:
            sink.deliver(result, concurrent)
        if self.accuracy is not None and frame.truth is not None:
            self.accuracy.deliver(result, concurrent)
        self.stats.stage("sinks", (time.perf_counter() - t1) * 1000.0)

    # -- concurrent -----------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], None], name: str) -> Callable[[], None]:
        def run():
            try:
                fn()
            except BaseException as e:  # surfaced in run(): a stage crashing stops the pipeline
                with self._lock:
                    if self._error is None:
                        self._error = e
                self.events(f"stage {name} failed: {type(e).__name__}: {e}")
                self._stop.set()
                for q in self._queues.values():
                    q.close()
        return run

    def _acquire_slot(self, inp: StageQueue | None = None) -> bool:
        """Wait until fewer than ``max_in_flight`` frames are between commitment and delivery.

        False when there is nothing left to wait for: the pipeline stops (capture), or the
        input queue is closed and drained (stitch), or a stage failed.
        """
        while True:
            if self._slots.acquire(timeout=SLOT_POLL_S):
                return True
            if self._error is not None:
                return False
            if inp is None and self._stop.is_set():
                return False
            if inp is not None and inp.closed and not len(inp):
                return False

    def _capture_loop(self, out: StageQueue) -> None:
        """Read frames. Unpaced sources are read only when a slot is free (nothing waits in a queue);
        a live camera is read at its own rate and the first queue keeps only the newest frames."""
        committed = not self.source.live
        try:
            while not self._stop.is_set():
                if committed:
                    if not self._acquire_slot():
                        break
                    if self.config.just_in_time:
                        self._wait_for_inference(unpaced=True)
                try:
                    frame = self.capture_one()
                except SourceEnded:
                    if committed:
                        self._slots.release()
                    self.ended = True
                    self.events(f"source {self.source.uri}: end of stream")
                    self._stop.set()
                    break
                if frame is None:
                    if committed:
                        self._slots.release()
                    continue
                out.put(frame)
        finally:
            out.close()

    def _stage_loop(self, inp: StageQueue, out: StageQueue | None, work: Callable[[Frame], bool | None],
                    commit: bool = False, last: bool = False) -> None:
        """Move frames from ``inp`` through ``work`` to ``out``. ``commit``: take a slot before taking a
        frame (the stitcher, for live sources); ``last``: the frame's slot is freed after ``work``."""
        try:
            while True:
                if commit:
                    if not self._acquire_slot(inp):
                        return
                    if self.config.just_in_time:
                        self._wait_for_inference(unpaced=False)
                try:
                    frame = inp.get(timeout=QUEUE_POLL_S)
                except (Empty, Closed) as e:
                    if commit:
                        self._slots.release()
                    if isinstance(e, Closed):
                        return
                    continue
                ok = work(frame) is not False
                if not ok or last:
                    self._slots.release()
                if ok and out is not None:
                    out.put(frame)
        finally:
            if out is not None:
                out.close()

    def _start_threads(self) -> None:
        live = bool(self.source.live)
        k = self.config.max_in_flight
        self._slots = threading.BoundedSemaphore(k)
        self._queues = {"stitch": StageQueue(self.config.queue_size if live else k, drop_oldest=live, name="stitch"),
                        "infer": StageQueue(k, drop_oldest=False, name="infer"),
                        "post": StageQueue(k, drop_oldest=False, name="post")}
        q = self._queues
        specs = [
            ("capture", lambda: self._capture_loop(q["stitch"])),
            ("stitch", lambda: self._stage_loop(q["stitch"], q["infer"], self.stitch_one, commit=live)),
            ("infer", lambda: self._stage_loop(q["infer"], q["post"], self.infer_one)),
            ("post", lambda: self._stage_loop(q["post"], None, lambda f: self.post_one(f, True), last=True)),
        ]
        self._threads = [threading.Thread(target=self._guard(fn, name), name=f"panoedge {name}", daemon=True)
                         for name, fn in specs]
        for t in self._threads:
            t.start()

    def _collect_drops(self) -> dict[str, int]:
        out = {f"queue:{k}": q.dropped for k, q in self._queues.items()}
        for s in self.sinks:
            out[f"sink:{s.uri}"] = s.dropped
        return out

    def _join(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + self.config.join_timeout_s
        for t in self._threads:
            t.join(timeout=max(MIN_JOIN_S, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self.events(f"threads still running at stop: {', '.join(stuck)}")

    # -- running --------------------------------------------------------------------------------

    def run(self, duration_s: float | None = None, warmup_s: float = 0.0, concurrent: bool = True) -> Case:
        """Run until ``duration_s`` (None: until stopped, the source ends, or Ctrl-C); returns the measured :class:`Case`.

        The first ``warmup_s`` seconds are not measured. Sinks stay open (call :meth:`close`,
        or use the pipeline as a context manager) so a benchmark can run both modes on one setup.
        """
        self.open()
        self._stop.clear()
        if self._connected:  # a second run starts the source's clock afresh
            self.source.close()
            self._connected = False
        self.ended = False
        self.stats = PipelineStats()
        if self.accuracy is not None:
            self.accuracy.reset()
        interrupted = False
        t_start = t_begin = time.perf_counter()
        self._got_frame = False
        no_frame_s = getattr(self.source, "first_frame_timeout_s", None)
        measuring = warmup_s <= 0
        if concurrent:
            self._start_threads()
        drops_before = self._collect_drops()  # sinks count across runs; this run starts from here
        last_status = time.perf_counter()
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if not measuring and now - t_start >= warmup_s:
                    drops_before = self._collect_drops()
                    self.stats.begin_measurement()
                    if self.accuracy is not None:
                        self.accuracy.reset()
                    measuring = True
                    t_start = now
                elif measuring and duration_s is not None and now - t_start >= duration_s:
                    break
                if no_frame_s and not self._got_frame and now - t_begin > no_frame_s and self._error is None:
                    self._error = SourceFailed(f"{self.source.uri}: no frame in {no_frame_s:g} s "
                                               f"({self._last_problem or 'the source delivered nothing'})")
                    break
                if concurrent:
                    self._stop.wait(RUN_TICK_S)
                else:
                    self._sequential_step()
                if self.config.status_every_s and now - last_status >= self.config.status_every_s:
                    last_status = now
                    self.stats.sample_memory()
                    self._publish_drops(drops_before)
                    if self.on_status is not None:
                        self.on_status(self.stats.snapshot())
        except KeyboardInterrupt:
            interrupted = True
            self.events("interrupted (Ctrl-C): stopping")
        finally:
            self.stats.end_measurement()
            if concurrent:
                self._join()
            self._publish_drops(drops_before)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        return replace(self.stats.case(), interrupted=interrupted, ended=self.ended,
                       mode="concurrent" if concurrent else "sequential")

    def _publish_drops(self, before: dict[str, int]) -> None:
        for k, v in self._collect_drops().items():
            n = v - before.get(k, 0)
            cur = self.stats.dropped.get(k, 0)
            if n > cur:
                self.stats.drop(k, n - cur)

    def _sequential_step(self) -> None:
        try:
            frame = self.capture_one()
        except SourceEnded:
            self.ended = True
            self.events(f"source {self.source.uri}: end of stream")
            self._stop.set()
            return
        if frame is None or not self.stitch_one(frame):
            return
        self.infer_one(frame)
        self.post_one(frame, concurrent=False)

    def accuracy_result(self) -> AccuracyFigures | None:
        """The live accuracy of the last run (None where the source has no truth or the classes differ)."""
        if self.accuracy is None:
            return None
        self.accuracy.flush()
        return self.accuracy.meter.result()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
        if self.owns_model:
            self.model.close()

    def status_line(self) -> str:
        return format_live(self.stats.snapshot())
