"""Levelling frame by frame while stitching: ``--level auto`` and the live pipeline's hooks.

:class:`AutoLevel` (``stitch --level auto``) estimates the vertical of the frames being stitched;
:class:`GravityHook` takes an IMU's gravity vector; :class:`ImageLevelHook` (``run --level auto``)
estimates from the live stream in the background. All give the stitcher's ``level`` rotation
(rig-to-world); the estimation itself is :mod:`panoedge.stitch.level`.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from panoedge.geometry import rotation_aligning
from panoedge.stitch.level import MIN_CONFIDENCE, Gravity, downsized_for_estimate, gravity_from_image, level_rotation


class AutoLevel:
    """``--level auto`` for the stitcher: the frame's vertical from its own lines.

    :meth:`rotation` stitches the frame at the rig's fixed orientation, estimates gravity
    (:func:`gravity_from_image`) and returns the rig-to-world rotation for
    :meth:`~panoedge.stitch.stitcher.Stitcher.stitch`'s ``level``. ``per_frame``: estimate on every
    frame (a folder of stills); else once, on the first frame (a video from one mount).
    ``estimates`` keeps what was found, for the run's report.
    """

    def __init__(self, per_frame: bool, min_confidence: float = MIN_CONFIDENCE):
        self.per_frame = per_frame
        self.min_confidence = min_confidence
        self.estimates: list[Gravity] = []
        self._R: np.ndarray | None = None

    def rotation(self, stitcher, frame) -> np.ndarray:
        if self._R is None or self.per_frame:
            g = gravity_from_image(downsized_for_estimate(stitcher.stitch(frame)))
            self.estimates.append(g)
            self._R = level_rotation(g, self.min_confidence)
        return self._R


class GravityHook:
    """The live pipeline's levelling hook: the latest gravity from an IMU, as a level rotation.

    A robot's IMU driver (a ROS subscriber, a serial reader) calls :meth:`update` with the
    accelerometer's gravity vector *in the rig's frame* (pointing down; an accelerometer at rest
    reads its opposite: pass ``-accel``); the pipeline's stitch stage reads :meth:`rotation` each
    frame. ``mount`` is a fixed IMU-to-rig rotation measured once. Thread-safe: one lock, no
    blocking on the stitch side. Tables are quantised to the stitcher's ``level_step_deg``, so a
    steady attitude costs nothing and a new one one table build (``async_tables`` builds it in
    the background).
    """

    def __init__(self, mount=None, min_norm: float = 1e-6):
        self.mount = np.eye(3) if mount is None else np.asarray(mount, dtype=np.float64)
        self.min_norm = min_norm
        self._lock = threading.Lock()
        self._R: np.ndarray | None = None

    def update(self, gravity_imu) -> None:
        g = self.mount @ np.asarray(gravity_imu, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(g)) or np.linalg.norm(g) < self.min_norm:
            return  # a dropped or zero sample keeps the last attitude
        R = rotation_aligning(g, np.array([0.0, 1.0, 0.0]))
        with self._lock:
            self._R = R

    def rotation(self) -> np.ndarray | None:
        """The rig-to-world rotation to stitch with, or None before the first sample."""
        with self._lock:
            return self._R


class ImageLevelHook(GravityHook):
    """``run --level auto``: the live pipeline's levelling from the stream itself.

    The pipeline offers each stitched ERP (:meth:`offer`); at most every ``every_s`` seconds one is
    taken and its gravity estimated (:func:`gravity_from_image`, about a second) in a background
    thread, so no frame waits. A confident estimate turns the current rotation by the found tilt
    (the ERP was stitched with it); an unsure one keeps it. ``estimates`` keeps what was found.
    """

    def __init__(self, every_s: float = 10.0, min_confidence: float = MIN_CONFIDENCE):
        super().__init__()
        self.every_s = float(every_s)
        self.min_confidence = min_confidence
        self.estimates: list[Gravity] = []
        self._busy = threading.Event()
        self._last = -float("inf")

    def offer(self, erp: np.ndarray, level_used=None) -> bool:
        """Hand over a stitched ERP (and the rotation it was stitched with); True if an estimate started."""
        now = time.monotonic()
        if self._busy.is_set() or now - self._last < self.every_s:
            return False
        self._busy.set()
        self._last = now
        base = np.eye(3) if level_used is None else np.asarray(level_used, dtype=np.float64)
        threading.Thread(target=self._estimate, args=(np.array(erp), base), daemon=True,
                         name="panoedge-level").start()
        return True

    def _estimate(self, erp: np.ndarray, base: np.ndarray) -> None:
        try:
            g = gravity_from_image(downsized_for_estimate(erp))
            self.estimates.append(g)
            if g.confidence >= self.min_confidence:
                with self._lock:
                    self._R = g.rotation() @ base
        finally:
            self._busy.clear()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Block until a running estimate has finished (tests, clean shutdown)."""
        end = time.monotonic() + timeout_s
        while self._busy.is_set() and time.monotonic() < end:
            time.sleep(0.01)
