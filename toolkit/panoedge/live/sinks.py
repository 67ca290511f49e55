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
from pathlib import Path

from panoedge.errors import UsageError
from panoedge.live import publisher as _publisher  # noqa: F401 - registers zmq://
from panoedge.live import web as _web  # noqa: F401 - registers web://
from panoedge.live.stream import FrameResult, Result, Sink, StreamInfo
from panoedge.live.uri import SINKS, check_params, create, param_float, register_sink, split_uri
from panoedge.live.views import DepthColors, composite, label_lut

__all__ = ["DisplaySink", "FileSink", "FrameResult", "Result", "SINKS", "Sink", "StreamInfo", "open_sink"]


FALLBACK_FPS = 30.0
"""Frame rate of the video file when neither ``fps=`` nor the source gives one (the commonest camera rate)."""


@register_sink("file")
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
        self.fps_option = param_float(uri, params, "fps", default=0.0, lo=0.0, hi=1000.0) if "fps" in params else None
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        self._writer = None
        self._lut = None
        self._depth = DepthColors()

    def setup(self, info: StreamInfo) -> None:
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fps = self.fps_option or info.fps or FALLBACK_FPS
        h, w = info.erp_hw
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()]),
                                       float(fps), (3 * w, h))
        if not self._writer.isOpened():
            raise UsageError(f"{self.uri}: OpenCV cannot write {self.path.suffix} video here")
        self._lut = label_lut(info.colors)

    def process(self, result: FrameResult) -> None:
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


@register_sink("display")
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

    def process(self, result: FrameResult) -> None:
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


def open_sink(uri: str | Sink) -> Sink:
    """The :class:`Sink` for ``uri`` (a ``Sink`` passes through); ``UsageError`` for unknown schemes."""
    if isinstance(uri, Sink):
        return uri
    if "://" not in str(uri):
        raise UsageError(f"sink {uri!r}: expected a URI such as file://out.mp4, web://127.0.0.1:8080, "
                         "zmq://127.0.0.1:5555 or display://")
    return create(SINKS, "sink", uri)
