"""The dual-fisheye -> ERP stitcher: cached tables, seam blending, exposure, levelling.

``Stitcher(rig, out_hw).stitch(frame)`` returns an ``(H, W, 3) uint8`` ERP (W == 2 H). The
CPU path is OpenCV only (see :mod:`panoedge.stitch.tables` for the per-frame work); a torch
``grid_sample`` path (:mod:`panoedge.stitch.gpu`) is used automatically for feather blending
when a CUDA GPU and torch are present, and gives the same output within 1 grey level.

Levelling: ``stitch(frame, level=R)`` with ``R`` the rig-to-world rotation of this frame (from
an IMU: :func:`level_from_gravity`, :func:`level_from_ypr_deg`) outputs a world-aligned
panorama. Tables depend on the rotation, so ``R`` is quantised to ``level_step_deg`` and
tables are kept per rotation in a small LRU cache: a steady rotation costs nothing, a new one
costs one table build. With ``async_tables=True`` (video) the build runs in a background
thread while frames keep the latest finished tables, so no frame waits for a build.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from panoedge.errors import UsageError, unknown_name
from panoedge.geometry import rodrigues_from_rotation, rotation_aligning, rotation_from_rodrigues, rotation_from_ypr_deg
from panoedge.stitch.blend import BLENDS
from panoedge.stitch.exposure import CLIPPED_LEVEL, HIGHLIGHT_QUANTILE, KEEP_CLIPPED_MIN_GAIN, ExposureCompensator
from panoedge.stitch.frames import as_canvas_input
from panoedge.stitch.gpu import TorchBackend, cuda_available
from panoedge.stitch.rig import Rig
from panoedge.stitch.seam_gain import level_table
from panoedge.stitch.tables import StitchTables
from panoedge.stitch.table_cache import get_tables

DEVICES = ("auto", "cpu", "cuda", "torch-cpu")


def level_from_ypr_deg(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rig-to-world rotation from the rig's attitude as yaw/pitch/roll in degrees."""
    return rotation_from_ypr_deg(yaw_deg, pitch_deg, roll_deg)


def level_from_gravity(gravity) -> np.ndarray:
    """Rig-to-world rotation that levels the horizon from a gravity vector in rig coordinates.

    ``gravity`` points down (an accelerometer at rest reads its opposite); level is ``(0, 1, 0)``
    (+y is down). The smallest such rotation is returned: heading is left as it is.
    """
    g = np.asarray(gravity, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(g)) or np.linalg.norm(g) < 1e-9:
        raise UsageError(f"gravity vector {g.tolist()}: expected a finite, non-zero 3-vector")
    return rotation_aligning(g, np.array([0.0, 1.0, 0.0]))


def scale_keeping_clipped(img: np.ndarray, gain: np.ndarray, one: int, all_mild: bool = False) -> np.ndarray:
    """``img *= gain / one`` in place (uint8, rounded, saturated), except that a channel already
    clipped (>= :data:`~panoedge.stitch.exposure.CLIPPED_LEVEL`) under a mild gain (>=
    :data:`KEEP_CLIPPED_MIN_GAIN`) stays white: it only says "at least this bright", and the lenses
    differ by a few percent, so a gain below 1 must not turn a sky grey in one lens while the
    other lens's stays white (a step along the seam). ``all_mild``: the caller knows every gain is
    mild (skips that mask)."""
    _, clipped = cv2.threshold(img, CLIPPED_LEVEL - 1, 255, cv2.THRESH_BINARY)  # per channel: 255 where clipped
    if not all_mild:
        _, mild = cv2.threshold(gain, KEEP_CLIPPED_MIN_GAIN * one - 1, 255, cv2.THRESH_BINARY)
        cv2.min(clipped, mild, dst=clipped)
    cv2.multiply(img, gain, dst=img, scale=1.0 / one)
    return cv2.max(img, clipped, dst=img)


def gain_matrix(gains: np.ndarray) -> np.ndarray:
    """The ``cv2.transform`` matrix turning a gain basis into per-channel gains: column ``i`` is lens
    ``i``'s RGB gain, column 2 passes the already-corrected band through."""
    m = np.ones((3, 3), dtype=np.float32)
    m[:, 0], m[:, 1] = gains[0], gains[1]
    return m


def apply_seam_field(t: StitchTables, table: np.ndarray, strip_gain: np.ndarray, gm: np.ndarray) -> None:
    """Multiply the gain images in place by the seam gain field (``table``: each lens's log gain per
    azimuth level, :func:`panoedge.stitch.seam_gain.level_table`): every band sample of the strip by
    its lens's full field, the output outside the band by its own lens's field times the fade. In
    row blocks of the output, so no full-size float image is held."""
    levels, fd = t.azimuth_fade()
    pairs = t.canvas_hw[1] // 2
    j = np.arange(t.n_band)
    lev = t.band_azimuth()
    for k in (0, 1):
        r, c = j // pairs, 2 * (j % pairs) + k
        strip_gain[r, c] = np.clip(np.round(strip_gain[r, c] * np.exp(table[lev, k])), 0, 255).astype(np.uint8)
    h, w = t.out_hw
    step = max(1, (1 << 18) // w)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        own = t.own[r0:r1]
        lg = np.where((own == 0)[..., None], table[levels[r0:r1], 0], table[levels[r0:r1], 1])
        weight = np.where((own >= 0) & (t.gain_basis[r0:r1, :, 2] == 0), fd[r0:r1] * np.float32(1.0 / 255.0), 0.0)
        blk = gm[r0:r1]  # the band's strip samples are already corrected (weight 0 there)
        np.copyto(blk, np.clip(np.round(blk * np.exp(lg * weight[..., None].astype(np.float32))), 0, 255).astype(np.uint8))


HIGHLIGHT_GRID = 64
"""Samples across each lens circle's diameter for the highlight quantile (~3000 pixels a lens)."""


def circle_samples(rig: Rig, n: int = HIGHLIGHT_GRID) -> list[np.ndarray]:
    """Per lens, flat canvas indices of a regular grid of pixels inside its image circle and region."""
    hc, wc = rig.canvas_hw
    out = []
    for i, lens in enumerate(rig.lenses):
        dx, dy = rig.lens_offset(i)
        x0, y0, x1, y1 = rig.lens_region(i)
        step = np.linspace(-1.0, 1.0, n)
        gx, gy = np.meshgrid(step, step)
        keep = gx ** 2 + gy ** 2 <= 0.95 ** 2
        x = np.round(lens.center_x_px + dx + gx[keep] * lens.radius_px).astype(np.int64)
        y = np.round(lens.center_y_px + dy + gy[keep] * lens.radius_px).astype(np.int64)
        ok = (x >= max(x0, 0)) & (x < min(x1, wc)) & (y >= max(y0, 0)) & (y < min(y1, hc))
        out.append(y[ok] * wc + x[ok])
    return out


class Stitcher:
    """Stitches frames of one rig into ERP panoramas of ``out_hw`` (default: frame height x 2).

    ``blend``: ``feather`` (linear across ``band_deg``) or ``multiband``. ``exposure``: estimate
    per-lens colour gains from the overlap each frame, smoothed with ``smoothing`` (0..1).
    ``device``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, or ``torch-cpu`` (the
    torch path on the CPU, for checking it). ``disk_cache``: also keep the tables under
    ``$PANOEDGE_HOME/stitch_tables`` for the next process. ``antialias``: where the lenses
    sample more than 1.5 source pixels per output pixel (a panorama smaller than the frame),
    blur the frame first (Gaussian, sigma ``0.5 sqrt(ratio^2 - 1)``) so the bilinear remap does
    not alias; off (and free) at the usual sizes, where the output is as dense as the lenses.
    ``seam_field``: with ``exposure``, also match the lenses along the seam with a per-azimuth gain
    field that only darkens the brighter lens and fades away from the seam
    (:mod:`panoedge.stitch.seam_gain`; ``examples/seam_vs_hugin.py`` measures it).
    """

    def __init__(self, rig: Rig, out_hw=None, blend: str = "feather", band_deg: float = 5.0,
                 exposure: bool = True, smoothing: float = 0.0, device: str = "auto",
                 level_step_deg: float = 0.1, async_tables: bool = False, cache_size: int = 4,
                 disk_cache: bool = False, antialias: bool = True, seam_field: bool = True):
        if blend not in BLENDS:
            raise unknown_name("blend", blend, BLENDS)
        if device not in DEVICES:
            raise unknown_name("device", device, DEVICES)
        if not 0.0 <= smoothing < 1.0:
            raise UsageError(f"smoothing {smoothing}: expected 0 <= smoothing < 1")
        self.rig = rig
        self._r_fixed = rig.output_rotation
        self.out_hw = tuple(out_hw) if out_hw is not None else (rig.frame_hw[0], 2 * rig.frame_hw[0])
        self.blend = blend
        self.band_deg = float(band_deg)
        self.exposure = ExposureCompensator(smoothing=smoothing, azimuthal=seam_field) if exposure else None
        self.level_step = np.deg2rad(level_step_deg)
        self.disk_cache = bool(disk_cache)
        self.device = ("cuda" if cuda_available() else "cpu") if device == "auto" else device
        self._backend = None
        if self.device in ("cuda", "torch-cpu") and blend == "feather":
            self._backend = TorchBackend("cuda" if self.device == "cuda" else "cpu")
        self._tables: OrderedDict = OrderedDict()
        self._cache_size = int(cache_size)
        self._current: StitchTables | None = None
        self._pool = ThreadPoolExecutor(max_workers=1) if async_tables else None
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._canvas: np.ndarray | None = None
        self._gm: np.ndarray | None = None
        self._gm_key = None
        ratio = rig.canvas_camera(0).f_px / (self.out_hw[0] / np.pi)
        self.antialias_sigma = 0.5 * float(np.sqrt(ratio ** 2 - 1.0)) if antialias and ratio > 1.5 else 0.0
        self._hi_idx = circle_samples(rig)
        self.tables()  # build (or fetch) the fixed-orientation tables now

    # -- tables -------------------------------------------------------------------------------

    def _key(self, level) -> tuple[tuple, np.ndarray]:
        if level is None:
            return (), self._r_fixed
        R = np.asarray(level, dtype=np.float64)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
            raise UsageError("level: expected a 3x3 rotation matrix (rig-to-world)")
        q = np.round(rodrigues_from_rotation(R) / self.level_step).astype(int)
        Rq = rotation_from_rodrigues(q * self.level_step)
        return tuple(int(x) for x in q), Rq @ self._r_fixed

    def _build(self, r_out) -> StitchTables:
        return get_tables(self.rig, self.out_hw, self.band_deg, r_out, disk=self.disk_cache)

    def tables(self, level=None) -> StitchTables:
        """The tables for rotation ``level`` (built once per quantised rotation, then cached)."""
        key, r_out = self._key(level)
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                self._current = self._tables[key]
                return self._current
        if self._pool is not None and self._current is not None:
            fut = self._pending.get(key)
            if fut is None:
                self._pending[key] = self._pool.submit(self._build, r_out)
                return self._current
            if not fut.done():
                return self._current
            t = self._pending.pop(key).result()
        else:
            t = self._build(r_out)
        with self._lock:
            self._tables[key] = t
            while len(self._tables) > self._cache_size:
                self._tables.popitem(last=False)
            self._current = t
        return t

    # -- per frame ------------------------------------------------------------------------------

    def frame_buffer(self) -> np.ndarray:
        """The canvas rows a caller may decode the next frame into (skips one copy in :meth:`stitch`)."""
        return self._canvas_for(self._current)[: self.rig.canvas_hw[0]]

    def _canvas_for(self, t: StitchTables) -> np.ndarray:
        rows = t.padded_hw[0]
        if self._canvas is None or self._canvas.shape[0] < rows:
            old = self._canvas
            self._canvas = np.zeros((rows, t.canvas_hw[1], 3), dtype=np.uint8)
            if old is not None:
                self._canvas[: t.canvas_hw[0]] = old[: t.canvas_hw[0]]
        return self._canvas

    def stitch(self, frame, level=None) -> np.ndarray:
        """Stitch one frame: ``(H, W, 3) uint8`` RGB, or a ``(front, back)`` pair for separate-file rigs.

        Returns the ERP ``(out_h, out_w, 3) uint8``. ``level``: optional rig-to-world rotation.
        """
        t = self.tables(level)
        return BLENDS[self.blend](self, t, self._load(t, frame))

    def _load(self, t: StitchTables, frame) -> np.ndarray:
        """Check ``frame`` and copy it into the canvas (skipped if decoded into :meth:`frame_buffer`)."""
        canvas = self._canvas_for(t)
        src = canvas[: t.canvas_hw[0]]
        for (x0, x1), img in as_canvas_input(self.rig, frame):
            if not (img.ctypes.data == src.ctypes.data and img.shape == src.shape):
                np.copyto(src[:, x0:x1], img)
        if self.antialias_sigma > 0:
            cv2.GaussianBlur(src, (0, 0), self.antialias_sigma, dst=src)
        return canvas

    def band_samples(self, frame, level=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both lenses at every band pixel of ``frame``, as the blend sees them (vignetting and
        exposure corrected): ``(a, b) (N, 3) float32`` and solid-angle weights ``(N,)``."""
        t = self.tables(level)
        canvas = self._load(t, frame)
        strip = self.fill_strip(t, canvas)
        gains = self.gains_for(t, strip)
        strip_gain, _ = self._gain_images(t, gains)
        scale_keeping_clipped(strip, strip_gain, t.one)
        pairs = t.canvas_hw[1] // 2
        flat = strip[:, : 2 * pairs].reshape(-1, 2, 3)[: t.n_band].astype(np.float32)
        lat = (0.5 - (t.band_idx // t.out_hw[1] + 0.5) / t.out_hw[0]) * np.pi
        return flat[:, 0], flat[:, 1], np.cos(lat).astype(np.float32)

    def fill_strip(self, t: StitchTables, canvas: np.ndarray) -> np.ndarray:
        """Sample both lenses at every band pixel into the strip rows (uncorrected); returns the strip."""
        hc = t.canvas_hw[0]
        strip = canvas[hc: hc + t.strip_rows]
        cv2.remap(canvas[:hc], *t.strip_maps, cv2.INTER_LINEAR, dst=strip, borderMode=cv2.BORDER_CONSTANT)
        return strip

    def gains_for(self, t: StitchTables, strip: np.ndarray) -> np.ndarray:
        """Fold this frame's band samples into the exposure estimate; the ``(2, 3)`` gains to apply."""
        if self.exposure is None:
            return np.ones((2, 3))
        r, c = t.est_pairs()
        self.exposure.update(strip[r, c], strip[r, c + 1], t.est_w[0], t.est_w[1], highs=self.lens_highlights(),
                             area=t.est_area(), azimuth=t.est_azimuth() if self.exposure.azimuthal else None)
        return self.exposure.applied

    def lens_highlights(self) -> np.ndarray | None:
        """``(2,)`` the :data:`~panoedge.stitch.exposure.HIGHLIGHT_QUANTILE` of each lens's brightest
        channel over its image circle, in the frame now loaded (None before any frame)."""
        if self._canvas is None:
            return None
        src = self._canvas[: self.rig.canvas_hw[0]].reshape(-1, 3)
        return np.array([np.percentile(src[idx].max(axis=1), HIGHLIGHT_QUANTILE) for idx in self._hi_idx])

    def _gain_images(self, t: StitchTables, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(strip_gain, gm)`` uint8 ``one *`` (vignetting correction x lens gain), rebuilt on change."""
        field = self.seam_field()
        key = (id(t), tuple(np.round(gains.ravel(), 12)), None if field is None else field.tobytes())
        if self._gm is None or self._gm_key != key:
            m = gain_matrix(gains)
            strip_gain, gm = cv2.transform(t.strip_basis, m), cv2.transform(t.gain_basis, m)
            if field is not None:
                apply_seam_field(t, level_table(field), strip_gain, gm)
            self._gm = (strip_gain, gm)
            self._gm_key = key
        return self._gm

    def seam_field(self) -> np.ndarray | None:
        """The applied seam gain field ``(SEAM_BINS, 3)`` (log ratio of lens 1 over lens 0), or None."""
        return None if self.exposure is None else self.exposure.seam_field

    def _stitch_cpu(self, t: StitchTables, canvas: np.ndarray) -> np.ndarray:
        strip = self.fill_strip(t, canvas)
        gains = self.gains_for(t, strip)
        correct = self.exposure is not None or t.has_vignetting
        if correct:
            strip_gain, gm = self._gain_images(t, gains)
            mild = bool(np.min(gains) >= KEEP_CLIPPED_MIN_GAIN)  # vignetting corrections only raise gains
            scale_keeping_clipped(strip, strip_gain, t.one, mild)
        out = cv2.remap(canvas, *t.main_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if correct:
            scale_keeping_clipped(out, gm, t.one, mild)
        return out

    def close(self) -> None:
        """Stop the background table builder (if any)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
