"""The shared stream types of :mod:`panoedge.live`: what sources deliver, what sinks receive.

A leaf: it imports nothing else of ``live``, so sources, sinks, the pipeline, the web viewer and
the publisher all stand on it and never on each other.

- :class:`Captured`: one camera frame as a :class:`Source` delivers it;
- :class:`FrameResult`: one frame's output as the pipeline hands it to every :class:`Sink`
  (``Result`` is its old name, kept as an alias; it is not :class:`panoedge.results.Result`,
  the typed report of a command);
- :class:`StreamInfo`: what sinks learn about the stream when they open;
- :class:`Source` and :class:`Sink`: the base classes (context managers; ``close()`` releases);
- :class:`StageQueue`: the bounded hand-over queue between stages and in front of each sink. A
  live camera must never queue up: when a stage is slow, the frame waiting for it is replaced by
  the newer one (*drop oldest*), so latency stays bounded by the queue length. A file replayed as
  fast as possible must not lose frames: there the producer waits for room instead;
- :class:`Pacer`: a source's fixed-rate clock;
- the source errors: :class:`SourceError` (retry), :class:`SourceFailed` (stop),
  :class:`SourceEnded`, :class:`CorruptFrame`.

URIs and the scheme registries live in :mod:`panoedge.live.uri`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from queue import Empty
from typing import Callable

import numpy as np

from panoedge.errors import PanoedgeError

__all__ = ["Captured", "Closed", "CorruptFrame", "DAMAGED_TOLERANCE", "Empty", "FrameResult", "NO_FRAME_TIMEOUT_S",
           "Pacer", "Result", "Sink", "Source", "SourceEnded", "SourceError", "SourceFailed", "StageQueue",
           "StreamInfo"]


class Closed(Exception):
    """The queue was closed and is empty: the producer has stopped."""


class StageQueue:
    """A FIFO of at most ``maxsize`` items.

    ``drop_oldest=True``: :meth:`put` never blocks; when full, the oldest item is discarded and
    counted in :attr:`dropped`. ``drop_oldest=False``: :meth:`put` waits for room (back-pressure).
    Items are never reordered. Thread-safe for any number of producers and consumers.
    """

    def __init__(self, maxsize: int = 1, drop_oldest: bool = True, name: str = ""):
        if maxsize < 1:
            raise ValueError(f"maxsize {maxsize}: need at least 1")
        self.maxsize = int(maxsize)
        self.drop_oldest = bool(drop_oldest)
        self.name = name
        self.dropped = 0
        self._items: deque = deque()
        self._cv = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item, timeout: float | None = None) -> bool:
        """Append ``item``; False if the queue is closed (or, when blocking, ``timeout`` ran out)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._closed and len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            if self._closed:
                return False
            self._items.append(item)
            self._cv.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest item; raises ``queue.Empty`` after ``timeout`` s, :class:`Closed` once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._items:
                if self._closed:
                    raise Closed(self.name)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Empty
                self._cv.wait(left)
            item = self._items.popleft()
            self._cv.notify_all()
            return item

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until a put would not drop or wait (True), or the queue closes / ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while len(self._items) >= self.maxsize and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return not self._closed

    def close(self) -> None:
        """No more puts; waiting consumers drain the remaining items and then get :class:`Closed`."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()


class SourceError(PanoedgeError):
    """The device is not there (unplugged, stream down): the pipeline retries with back-off."""


class SourceFailed(PanoedgeError):
    """The source cannot go on (a damaged video, a device that never delivers): the run stops with this error."""


NO_FRAME_TIMEOUT_S = 20.0
"""A source that has delivered no frame this long after the pipeline started (after ``prepare``,
where the synthetic source renders its loop) is an error: a FIFO without a writer, a camera node
that never streams, a device that is not there. A source may set its own
``first_frame_timeout_s`` (None: wait for ever)."""
DAMAGED_TOLERANCE = 0.01
"""A video that stops decoding more than this fraction (and 2 frames) before its declared frame
count is damaged, not ended (containers' counts can be estimates, so the last few may be missing)."""


class SourceEnded(Exception):
    """A finite source (file, folder) has no more frames."""


class CorruptFrame(Exception):
    """One frame could not be decoded; the source itself is fine."""


@dataclass
class Captured:
    """One frame as a source delivers it.

    ``image`` ``(H, W, 3) uint8`` RGB; ``t_capture`` ``time.perf_counter()`` when it was
    exposed (or arrived, where the device does not say); ``index`` the source's frame number;
    ``truth`` ground truth where the source knows it (``labels`` uint8 and ``depth_mm`` uint16
    ERP maps); ``missed`` frames the camera produced since the previous read that nobody read.
    """

    image: np.ndarray
    t_capture: float
    index: int = 0
    truth: dict | None = None
    missed: int = 0


class Pacer:
    """A fixed-rate clock: :meth:`wait` sleeps until the next tick, like a camera's shutter.

    When the reader comes late by more than a period, the ticks it missed are skipped (a real
    camera does not wait either) and reported, so the pipeline counts them as dropped.
    """

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.t0: float | None = None
        self.k = 0

    def reset(self) -> None:
        self.t0 = None

    def wait(self, stop: threading.Event | None = None) -> tuple[float, int, int]:
        """Sleep to the next tick; returns ``(tick_time, tick_number, ticks_missed)``."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.k = now, 0
            return now, 0, 0
        self.k += 1
        tick = self.t0 + self.k * self.period
        missed = 0
        if now > tick + self.period:
            k_now = int((now - self.t0) / self.period)
            missed, self.k = k_now - self.k, k_now
            tick = self.t0 + self.k * self.period
        else:
            while now < tick and not (stop is not None and stop.is_set()):  # timed waits may wake early
                if stop is not None:
                    stop.wait(tick - now)
                else:
                    time.sleep(tick - now)
                now = time.perf_counter()
        return min(tick, now), self.k, missed


class Source(ABC):
    """A frame source. Subclasses set :attr:`live`, :attr:`fps` and implement open/read/close.
    A context manager: leaving the block closes it.

    ``live``: frames come at the device's pace whether or not anyone is ready (the pipeline
    drops the oldest when it falls behind); otherwise the pipeline takes frames as it is ready
    (nothing dropped). ``rig``: the true rig where the source knows it (``synth://``).
    """

    scheme = ""
    live = True
    fps = 0.0
    rig = None
    first_frame_timeout_s: float | None = NO_FRAME_TIMEOUT_S

    def __init__(self, uri: str):
        self.uri = str(uri)
        self.stop_event: threading.Event | None = None

    def prepare(self) -> None:
        """One-time work before the pipeline's threads start (rendering, loading); default none."""

    @abstractmethod
    def open(self) -> None:
        """Connect; ``SourceError`` when the device is not available now."""

    @abstractmethod
    def read(self) -> Captured | None:
        """The next frame, ``None`` if the device failed to deliver one (see the module docstring)."""

    def close(self) -> None:
        """Release the device (idempotent)."""

    def describe(self) -> dict:
        return {"uri": self.uri, "kind": self.scheme, "live": self.live, "fps": self.fps}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class FrameResult:
    """One frame's output, what sinks receive (not :class:`panoedge.results.Result`, a command's report).

    ``t_capture``: ``perf_counter`` at capture; ``t_wall``: UNIX time at capture.

    ``erp`` ``(H, W, 3)`` uint8 RGB; ``labels`` ``(H, W)`` uint8 class ids; ``depth`` ``(H, W)``
    float32 range in metres (either may be None for a single-head model); ``truth`` the source's
    ground truth, if any; ``index`` the source's frame number.
    """

    seq: int
    t_capture: float
    t_wall: float
    erp: np.ndarray
    labels: np.ndarray | None
    depth: np.ndarray | None
    truth: dict | None = None
    index: int = 0
    latency_ms: float = 0.0


Result = FrameResult
"""The old name of :class:`FrameResult` (kept for scripts and sinks written against it)."""


@dataclass
class StreamInfo:
    """What sinks learn about the stream when they open."""

    erp_hw: tuple[int, int]
    classes: list[str]
    colors: np.ndarray
    fps: float
    source: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    depth_kind: str = "metric"
    stats: Callable[[], dict] = dict
    log: Callable[[str], None] = print
    request_stop: Callable[[], None] = lambda: None


SINK_POLL_S = 0.5
"""Seconds a sink's worker waits for a result before looking again (bounds how late it sees a close)."""
SINK_JOIN_S = 30.0
"""Seconds :meth:`Sink.close` waits for the worker to drain its queue (a video file may still be encoding)."""
FLUSH_POLL_S = 0.005
"""Seconds between checks in :meth:`Sink.flush` (short: a flush waits for one frame's processing)."""


class Sink(ABC):
    """Base sink: a worker thread feeding :meth:`process` from a drop-oldest queue of ``queue_size``.

    A context manager: leaving the block closes it (drains the queue, then :meth:`teardown`).
    """

    scheme = ""
    queue_size = 2

    def __init__(self, uri: str):
        self.uri = str(uri)
        self.info: StreamInfo | None = None
        self.processed = 0
        self.errors = 0
        self._q: StageQueue | None = None
        self._thread: threading.Thread | None = None
        self._busy = False

    @property
    def dropped(self) -> int:
        return self._q.dropped if self._q is not None else 0

    def open(self, info: StreamInfo) -> None:
        """Start the sink for a stream (subclasses extend :meth:`setup`)."""
        self.info = info
        self.setup(info)
        self._q = StageQueue(self.queue_size, drop_oldest=True, name=self.uri)
        self._thread = threading.Thread(target=self._work, name=f"sink {self.uri}", daemon=True)
        self._thread.start()

    def setup(self, info: StreamInfo) -> None:
        """Acquire resources (files, sockets, windows); errors here stop the run before it starts."""

    def deliver(self, result: FrameResult, concurrent: bool = True) -> None:
        """Queue ``result`` for the worker (concurrent) or process it now (sequential)."""
        if concurrent:
            self._q.put(result)
        else:
            self._process_safely(result)

    def _process_safely(self, result: FrameResult) -> None:
        try:
            self.process(result)
            self.processed += 1
        except Exception as e:  # a sink failing must not take the pipeline down; it is counted and said
            self.errors += 1
            if self.errors <= 3 and self.info is not None:
                self.info.log(f"sink {self.uri}: {type(e).__name__}: {e}")

    def _work(self) -> None:
        while True:
            try:
                result = self._q.get(timeout=SINK_POLL_S)
            except Empty:
                continue
            except Closed:
                return
            self._busy = True
            try:
                self._process_safely(result)
            finally:
                self._busy = False

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is processed (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self._q is not None and (len(self._q) or self._busy):
            if time.monotonic() > deadline:
                return False
            time.sleep(FLUSH_POLL_S)
        return True

    @abstractmethod
    def process(self, result: FrameResult) -> None:
        """Handle one result (in the sink's thread)."""

    def close(self) -> None:
        """Drain what is queued, then release (subclasses extend :meth:`teardown`)."""
        if self._q is not None:
            self._q.close()
        if self._thread is not None:
            self._thread.join(timeout=SINK_JOIN_S)
        self.teardown()

    def teardown(self) -> None:
        """Release resources; flush files."""

    def describe(self) -> dict:
        return {"uri": self.uri, "processed": self.processed, "dropped": self.dropped, "errors": self.errors}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
