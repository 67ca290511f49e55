"""Frame sources by URI: cameras, GStreamer pipelines, video files, folders of frames, synthetic.

========================  =====================================================================
``v4l2:///dev/videoN``    a UVC camera (a 360° camera in dual-fisheye mode); query
                          ``size=HxW``, ``fps=``, ``fourcc=`` (default ``MJPG``)
``gst://PIPELINE``        anything GStreamer opens through OpenCV (Jetson CSI ``nvarguscamerasrc``,
                          RTSP, ...); the pipeline must end in ``appsink``; needs an OpenCV built
                          with GStreamer (JetPack's is; the pip wheels are not)
``file://video.mp4``      a video file, paced at its own frame rate (``fps=0``: as fast as taken;
                          ``loop=1``: start over at the end)
``file://FOLDER`` or      a folder of frames (PNG/JPEG/...) in name order; ``fps=`` (default 0,
a bare path               as fast as taken), ``loop=1``
``synth://FAMILY``        a camera moving through the synthetic world (:mod:`.synth_source`)
========================  =====================================================================

Every source delivers :class:`Captured` frames: ``(H, W, 3) uint8`` RGB dual-fisheye images
with the time they were captured. ``read`` returns ``None`` when the device failed to deliver
(the pipeline then closes the source and reopens it with back-off), raises
:class:`CorruptFrame` for a frame that could not be decoded (skipped and counted), and
:class:`SourceEnded` at the end of a file or folder. :class:`SourceError` from ``open`` means
"not there now, try again later"; ``UsageError`` means the URI itself is wrong.
"""

from __future__ import annotations

import time
from pathlib import Path

from panoedge.errors import PanoedgeError, UsageError
from panoedge.io import IMAGE_EXTS
from panoedge.live import synth_source as _synth_source  # noqa: F401 - registers synth://
from panoedge.live.stream import (DAMAGED_TOLERANCE, NO_FRAME_TIMEOUT_S, Captured, CorruptFrame, Pacer, Source,
                                  SourceEnded, SourceError, SourceFailed)
from panoedge.live.uri import SOURCES, check_params, create, param_bool, param_float, register_source, split_uri

__all__ = ["Captured", "CorruptFrame", "CvSource", "FolderSource", "NO_FRAME_TIMEOUT_S", "Pacer", "SOURCES", "Source",
           "SourceEnded", "SourceError", "SourceFailed", "open_source", "split_uri"]


def _check_device_node(uri: str, target: str) -> None:
    """A ``v4l2://`` path that exists must be a character device (a FIFO or a file would block or lie)."""
    import os
    import stat

    if target.isdigit():
        return
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return  # not there now: opening it fails and the pipeline retries, then times out
    if not stat.S_ISCHR(mode):
        raise UsageError(f"{uri}: {target!r} is not a camera device (a character device such as /dev/video0)")


@register_source("v4l2", "gst")
class CvSource(Source):
    """``v4l2://``, ``gst://`` and ``file://video`` through ``cv2.VideoCapture``."""

    V4L2_KEYS = ("size", "fps", "fourcc")
    FILE_KEYS = ("fps", "loop")

    def __init__(self, uri: str):
        super().__init__(uri)
        import cv2

        self.cv2 = cv2
        self.scheme, self.target, params = split_uri(uri)
        self.loop = False
        self.size: tuple[int, int] | None = None
        self.fourcc = "MJPG"
        self._cap = None
        self._pacer: Pacer | None = None
        if self.scheme == "v4l2":
            check_params(uri, params, self.V4L2_KEYS)
            if not self.target:
                raise UsageError(f"{uri}: expected v4l2:///dev/videoN")
            _check_device_node(uri, self.target)
            if "size" in params:
                from panoedge.geometry import parse_hw

                self.size = parse_hw(params["size"], f"{uri}: size")
            self.fps = param_float(uri, params, "fps", default=0.0, lo=0.0, hi=1000.0)
            self.fourcc = params.get("fourcc", "MJPG")
            if len(self.fourcc) != 4:
                raise UsageError(f"{uri}: fourcc={self.fourcc!r}: expected four characters, e.g. MJPG or YUYV")
        elif self.scheme == "gst":
            if "appsink" not in self.target:
                raise UsageError(f"{uri}: a GStreamer pipeline for OpenCV must end in appsink")
        elif self.scheme == "file":
            check_params(uri, params, self.FILE_KEYS)
            if not Path(self.target).is_file():
                what = "not a regular file (a FIFO or device? cameras are v4l2:// or gst://)" \
                    if Path(self.target).exists() else "no such video file"
                raise UsageError(f"{uri}: {what}: {self.target!r}")
            self.live = True
            self.loop = param_bool(uri, params, "loop", default=False)
            self._fps_option = param_float(uri, params, "fps", default=-1.0, lo=-1.0, hi=1000.0) if "fps" in params else None
        else:
            raise UsageError(f"{uri}: CvSource takes v4l2://, gst:// or file:// URIs")

    def _api(self) -> int:
        cv2 = self.cv2
        if self.scheme == "v4l2":
            return cv2.CAP_V4L2
        if self.scheme == "gst":
            info = cv2.getBuildInformation()
            line = next((ln for ln in info.splitlines() if "GStreamer" in ln), "")
            if "YES" not in line:
                raise UsageError(f"{self.uri}: this OpenCV ({cv2.__version__}) is built without GStreamer; "
                                 "use the system OpenCV (JetPack ships one with GStreamer) or a v4l2:// URI")
            return cv2.CAP_GSTREAMER
        return cv2.CAP_ANY

    def prepare(self) -> None:
        """For a video file: its frame rate (before the pipeline decides how to queue frames)."""
        if self.scheme != "file":
            return
        cap = self.cv2.VideoCapture(self.target)
        native = (cap.get(self.cv2.CAP_PROP_FPS) or 0.0) if cap.isOpened() else 0.0
        cap.release()
        self.fps = native if self._fps_option is None else self._fps_option
        self.live = self.fps > 0

    def open(self) -> None:
        cv2 = self.cv2
        self.close()
        target = int(self.target) if self.scheme == "v4l2" and self.target.isdigit() else self.target
        cap = cv2.VideoCapture(target, self._api())
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.uri}: cannot open {self.target!r}")
        if self.scheme == "v4l2":
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[1])
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        from panoedge.image_guard import check_frame_size

        try:  # the frame size the device or container declares, against the pixel budget, before decoding
            check_frame_size(cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), self.uri)
        except PanoedgeError as e:
            cap.release()
            raise SourceFailed(str(e)) from None
        if self.scheme == "file":
            if self._fps_option is None:
                self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
                self.live = self.fps > 0
            self._pacer = Pacer(self.fps) if self.fps > 0 else None
        self._cap = cap

    def read(self) -> Captured | None:
        cv2 = self.cv2
        if self._cap is None:
            return None
        missed = 0
        tick = None
        if self._pacer is not None:
            tick, _, missed = self._pacer.wait(self.stop_event)
        ok, bgr = self._cap.read()
        if not ok and self.scheme == "file":
            pos, total = self._cap.get(cv2.CAP_PROP_POS_FRAMES), self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if total > 0 and pos < total - max(2.0, DAMAGED_TOLERANCE * total):
                raise SourceFailed(f"{self.uri}: the video is damaged: decoding stopped at frame {int(pos)} "
                                   f"of the {int(total)} it declares")
            if not self.loop:
                raise SourceEnded(self.uri)
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        t = time.perf_counter() if tick is None else tick
        if not ok or bgr is None:
            return None
        index = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
        return Captured(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t_capture=t, index=index, missed=missed)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource(Source):
    """A folder of frames in name order; unreadable files are :class:`CorruptFrame`.

    The folder is scanned again at the end of each pass, so frames added during a run are
    delivered and deleted ones are skipped (never reported as corrupt); a looping source whose
    folder became empty is a :class:`SourceFailed`.
    """

    scheme = "folder"
    KEYS = ("fps", "loop")

    def __init__(self, uri: str):
        super().__init__(uri)
        _, target, params = split_uri(uri)
        check_params(uri, params, self.KEYS)
        self.folder = Path(target)
        if not self.folder.is_dir():
            raise UsageError(f"{uri}: no such folder {target!r}")
        self.fps = param_float(uri, params, "fps", default=0.0, lo=0.0, hi=1000.0)
        self.live = self.fps > 0
        self.loop = param_bool(uri, params, "loop", default=False)
        self.files: list[Path] = []
        self._i = 0
        self._n = 0
        self._done: set[str] = set()
        self._pacer = Pacer(self.fps) if self.fps > 0 else None

    def _scan(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())

    def open(self) -> None:
        self.files = self._scan()
        self._i, self._done = 0, set()
        if not self.files:
            raise UsageError(f"{self.uri}: no image files ({', '.join(IMAGE_EXTS)}) in {self.folder}")

    def _next_path(self) -> Path:
        """The next file still there; at the end of a pass the folder is scanned again."""
        while True:
            while self._i < len(self.files):
                path = self.files[self._i]
                self._i += 1
                if path.is_file():  # skip files deleted since the scan
                    return path
            fresh = self._scan()
            if self.loop:
                if not fresh:
                    raise SourceFailed(f"{self.uri}: no image files left in {self.folder}")
                self.files, self._i = fresh, 0
                continue
            self.files, self._i = [p for p in fresh if p.name not in self._done], 0  # frames added meanwhile
            if not self.files:
                raise SourceEnded(self.uri)

    def read(self) -> Captured | None:
        import cv2

        from panoedge.image_guard import check_image_file

        tick, missed = None, 0
        if self._pacer is not None:
            tick, _, missed = self._pacer.wait(self.stop_event)
        path = self._next_path()
        self._done.add(path.name)
        index, self._n = self._n, self._n + 1
        try:
            check_image_file(path)  # the pixel budget, from the header, before decoding
        except PanoedgeError as e:
            raise CorruptFrame(str(e)) from None
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            if not path.is_file():
                return self.read()  # deleted while we read it: not a corrupt frame
            raise CorruptFrame(f"{path}: not a readable image")
        t = time.perf_counter() if tick is None else tick
        return Captured(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t_capture=t, index=index, missed=missed)


@register_source("file")
def file_source(uri: str) -> Source:
    """``file://``: a :class:`FolderSource` for a folder, else a :class:`CvSource` (a video file)."""
    _, target, _ = split_uri(uri)
    return FolderSource(uri) if Path(target).is_dir() else CvSource(uri)


def open_source(uri: str | Source) -> Source:
    """The :class:`Source` for ``uri`` (a ``Source`` passes through); ``UsageError`` for unknown schemes."""
    if isinstance(uri, Source):
        return uri
    return create(SOURCES, "source", uri)
