"""Where results go, by URI: a window, a video file, the web viewer, robot software.

=====================  ==========================================================================
``display://``         a window (needs a screen and an OpenCV built with a GUI); ``q``/Esc stops
``file://out.mp4``     side by side: ERP | segmentation overlay | depth colour map (``.mp4``:
                       mp4v, ``.avi``: MJPG); written to a temporary file and moved into place on
                       close, so a stopped run leaves a complete file; ``fps=`` overrides the rate
``web://HOST:PORT``    the web viewer (:mod:`panoedge.live.web`)
``zmq://HOST:PORT``    the publisher for robot software (:mod:`panoedge.live.publisher`)
=====================  ==========================================================================

Every sink runs in its own thread behind a small drop-oldest queue, so a slow sink loses its
own frames (counted) and never slows the pipeline. :meth:`Sink.deliver` is what the pipeline
calls: it queues the result (concurrent mode) or processes it on the spot (sequential mode).
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Callable

import numpy as np

from panoedge.errors import UsageError
from panoedge.live.queues import Closed, StageQueue
from panoedge.live.sources import check_params, open_by_scheme, param_float, split_uri
from panoedge.live.views import DepthColors, composite, label_lut

__all__ = ["DisplaySink", "FileSink", "Result", "SINKS", "Sink", "StreamInfo", "open_sink"]


@dataclass
class Result:
    """One frame's output. ``t_capture``: ``perf_counter`` at capture; ``t_wall``: UNIX time at capture.

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


class Sink(ABC):
    """Base sink: a worker thread feeding :meth:`process` from a drop-oldest queue of ``queue_size``."""

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

    def deliver(self, result: Result, concurrent: bool = True) -> None:
        """Queue ``result`` for the worker (concurrent) or process it now (sequential)."""
        if concurrent:
            self._q.put(result)
        else:
            self._process_safely(result)

    def _process_safely(self, result: Result) -> None:
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
                result = self._q.get(timeout=0.5)
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
            time.sleep(0.005)
        return True

    @abstractmethod
    def process(self, result: Result) -> None:
        """Handle one result (in the sink's thread)."""

    def close(self) -> None:
        """Drain what is queued, then release (subclasses extend :meth:`teardown`)."""
        if self._q is not None:
            self._q.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.teardown()

    def teardown(self) -> None:
        """Release resources; flush files."""

    def describe(self) -> dict:
        return {"uri": self.uri, "processed": self.processed, "dropped": self.dropped, "errors": self.errors}


class FileSink(Sink):
    """``file://out.mp4``: the side-by-side video (see the module docstring)."""

    scheme = "file"
    queue_size = 8
    FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}

    def __init__(self, uri: str):
        super().__init__(uri)
        _, path, params = split_uri(uri)
        check_params(uri, params, ("fps",))
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise UsageError(f"{uri}: the video file must end in {' or '.join(self.FOURCC)}")
        self.fps_option = param_float(uri, params, "fps", 0.0, 0.0, 1000.0) if "fps" in params else None
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        self._writer = None
        self._lut = None
        self._depth = DepthColors()

    def setup(self, info: StreamInfo) -> None:
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fps = self.fps_option or info.fps or 30.0
        h, w = info.erp_hw
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()]),
                                       float(fps), (3 * w, h))
        if not self._writer.isOpened():
            raise UsageError(f"{self.uri}: OpenCV cannot write {self.path.suffix} video here")
        self._lut = label_lut(info.colors)

    def process(self, result: Result) -> None:
        import cv2

        img = composite(result.erp, result.labels, result.depth, self._lut, self._depth)
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    def teardown(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if self.processed:
            os.replace(self.tmp, self.path)
            if self.info is not None:
                self.info.log(f"wrote {self.path} ({self.processed} frames)")
        else:
            self.tmp.unlink(missing_ok=True)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path)}


def display_problem() -> str | None:
    """Why ``display://`` cannot work here, or None when it can."""
    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no screen ($DISPLAY and $WAYLAND_DISPLAY are unset)"
    gui = next((ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")), "")
    if "NONE" in gui.upper():
        return "this OpenCV has no GUI (opencv-python-headless); pip install opencv-python"
    return None


class DisplaySink(Sink):
    """``display://``: a window with the side-by-side view; ``q`` or Esc asks the pipeline to stop."""

    scheme = "display"
    queue_size = 1

    def __init__(self, uri: str):
        super().__init__(uri)
        _, _, params = split_uri(uri)
        check_params(uri, params, ())
        self._lut = None
        self._depth = DepthColors()
        self.window = "panoedge"

    def setup(self, info: StreamInfo) -> None:
        why = display_problem()
        if why:
            raise UsageError(f"display:// cannot open a window: {why}; use web://127.0.0.1:8080 instead")
        self._lut = label_lut(info.colors)

    def process(self, result: Result) -> None:
        import cv2

        img = composite(result.erp, result.labels, result.depth, self._lut, self._depth)
        cv2.imshow(self.window, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.info.request_stop()

    def teardown(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.window)
        except cv2.error:  # the window was never created (no frame arrived)
            pass


def _web_sink(uri: str) -> Sink:
    from panoedge.live.web import WebSink

    return WebSink(uri)


def _zmq_sink(uri: str) -> Sink:
    from panoedge.live.publisher import ZmqPublisher

    return ZmqPublisher(uri)


SINKS = {"display": DisplaySink, "file": FileSink, "web": _web_sink, "zmq": _zmq_sink}
"""URI scheme -> constructor; :func:`open_sink` looks schemes up here."""


def open_sink(uri: str | Sink) -> Sink:
    """The :class:`Sink` for ``uri`` (a ``Sink`` passes through); ``UsageError`` for unknown schemes."""
    if isinstance(uri, Sink):
        return uri
    if "://" not in str(uri):
        raise UsageError(f"sink {uri!r}: expected a URI such as file://out.mp4, web://127.0.0.1:8080, "
                         "zmq://127.0.0.1:5555 or display://")
    return open_by_scheme(uri, SINKS, "sink")
