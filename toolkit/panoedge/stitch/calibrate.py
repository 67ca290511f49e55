"""Rig self-calibration from a handful of ordinary frames, no target (``panoedge rig calibrate``).

1. Each lens's image circle (centre, radius) is found in every frame
   (:func:`panoedge.stitch.circles.find_circle`) and the per-frame fits are combined; per lens,
   the found circle replaces the start rig's only where it explains the matches clearly better.
2. Features are matched between the lenses inside their overlap
   (:func:`panoedge.stitch.features.match_overlap`) and the rig is refined by robust least
   squares (``scipy.optimize.least_squares``, soft-L1 loss, no RANSAC) on the angle between the
   two rays of each match: lens 1's rotation relative to lens 0 (3 parameters; lens 0 fixes
   the gauge) and the field of view (one for both twin lenses by default, or one per lens),
   optionally the circle centres and the first Kannala-Brandt coefficient. Matching and
   solving alternate over a few rounds with a shrinking gate, so a start a few degrees off
   converges.

The residual is the angle between matched rays, before (start rig) and after (result), each
measured on matches found under that rig with the same (first) gate.

Parallax limits the accuracy. Rays are cast from the rig centre; a point at distance ``D``
seen by lenses a baseline ``b`` apart along their axes shows ``b / D`` radians of parallax,
always along the axis. Near the seam a tilt of lens 1 and the field of view move matches along
that same direction, so near-range points bias them (a twin field of view comes out about
``b / D`` times fov / 90 too small; tilt picks up the part of ``b / D`` that varies around the
seam, e.g. ground below an upright camera), while the roll about the axis is unaffected.
:func:`parallax_deg` reports that floor; ``depth_m`` assumes a scene distance instead of
infinity.

3. So when the rig knows its lenses' translation (a baseline), a last solve refines the rotation
   on residuals no scene distance can explain (:func:`refine_parallax_free`,
   :func:`parallax_residuals_deg`): the angle of each match off its epipolar plane, and along
   that plane only a "beyond infinity" disagreement (parallax is never negative). The twin field
   of view is solved with it (held at the ray-angle value, which parallax makes too small, it
   biases the tilt through the envelope term), then alone with a small pull from above so that
   the envelope touches the far points. What is left is a tilt of lens 1: off-plane it moves a
   match only by ``cos(angle to the baseline)`` (small inside the overlap), so it is set by the
   matches' count and sub-pixel noise, not by a bias, and it shrinks as the lens circles grow
   (more pixels per degree). ``panoedge rig recovery`` measures it: synthetic rigs with a known
   baseline, perturbed starts, the rotation and field-of-view errors before and after, against
   the targets (:data:`panoedge.eval.stitch_quality.ROTATION_TARGET_DEG`); ``--frame-h`` sets the
   circle size (:data:`panoedge.eval.stitch_quality.RECOVERY_FRAME_H` says why 960 px).

4. Each solve above (every round, and the last) gives a candidate rig; the result is the one that
   lowers the two seam figures of :mod:`panoedge.stitch.seam` the most (:func:`choose_by_seam`):
   the band MAD, which does not use the matches, and the median angle of matches found afresh
   under the candidate with the first gate. Near-range parallax makes the tighter gates fit a
   subset of the matches, and on a single frame with few matches the last solve's tilt is set by
   their noise, so the last solve is not always the best seam on a real frame. A parallax-free
   last solve on at least :data:`MIN_MATCHES_FOV` matches is kept as it is: the seam figures,
   rays from the rig centre, cannot see parallax and would prefer a ray-angle round's bias
   (``panoedge rig recovery`` on indoor rigs shows the difference; the real frames' seam table,
   :func:`panoedge.eval.stitch_quality.real_seam_table`, shows the single-frame case).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.geometry import get_lens_model, rotation_from_rodrigues, ypr_from_rotation
from panoedge.stitch.circles import CircleFit, find_circle
from panoedge.stitch.features import Matches, canvas_of, match_overlap, match_rays, residual_stats
from panoedge.stitch.rig import Rig
from panoedge.stitch.seam import seam_mad

REFINE = ("rotation", "fov", "fov_each", "center", "coeffs")
DEFAULT_REFINE = ("rotation", "fov")


def parallax_deg(rig: Rig, distance_m: float) -> float:
    """Largest angle (degrees) between the lenses' rays to a point ``distance_m`` from the rig."""
    b = np.linalg.norm(np.subtract(rig.lenses[0].translation_m, rig.lenses[1].translation_m))
    return float(np.rad2deg(np.arctan2(b, distance_m)))


def apply_circles(rig: Rig, circles: list[CircleFit | None]) -> Rig:
    """``rig`` with each lens's centre and radius from a circle fit (canvas coordinates in, lens coordinates out)."""
    for i, c in enumerate(circles):
        if c is not None:
            dx, dy = rig.lens_offset(i)
            rig = rig.with_lens(i, center_x_px=c.cx - dx, center_y_px=c.cy - dy, radius_px=c.radius)
    return rig


def detect_circles(rig: Rig, frames) -> list[CircleFit | None]:
    """Each lens's image circle, combined over ``frames`` (median, weighted to the best-covered)."""
    out: list[CircleFit | None] = []
    for i in range(2):
        x0, y0, x1, y1 = rig.lens_region(i)
        lens = rig.lenses[i]
        dx, dy = rig.lens_offset(i)
        guess = (lens.center_x_px + dx - x0, lens.center_y_px + dy - y0, lens.radius_px)
        fits = []
        for f in frames:
            try:
                c = find_circle(canvas_of(rig, f)[y0:y1, x0:x1], guess)
            except DataError:
                continue
            fits.append(replace(c, cx=c.cx + x0, cy=c.cy + y0))
        if not fits:
            out.append(None)
            continue
        arr = np.array([[c.cx, c.cy, c.radius] for c in fits])
        med = np.median(arr, axis=0)
        best = max(fits, key=lambda c: c.coverage)
        out.append(CircleFit(cx=float(med[0]), cy=float(med[1]), radius=float(med[2]),
                             n_points=sum(c.n_points for c in fits),
                             rms_px=float(np.median([c.rms_px for c in fits])), coverage=best.coverage))
    return out


@dataclass
class _Params:
    """How a parameter vector maps onto a rig: lens 1's rotation (rotation vector, degrees, in
    lens 1's frame; only when ``rotation`` is refined), then the field of view (``fov``: twin lenses, one value for both starting
    from their mean; ``fov_each``: an offset per lens), circle-centre offsets (px), first
    Kannala-Brandt coefficients. ``fov_window``: (low, high) limits (degrees) of the field-of-view
    offsets, within the lens models' own."""

    rig: Rig
    refine: tuple[str, ...]
    fov_window: tuple[float, float] | None = None

    @property
    def twin_fov(self) -> float:
        """The shared start field of view of ``fov`` (twin lenses): the mean of the two."""
        return float(np.mean([lens.fov_deg for lens in self.rig.lenses]))

    @property
    def n_rot(self) -> int:
        return 3 * ("rotation" in self.refine)

    @property
    def n_fov(self) -> int:
        return 2 if "fov_each" in self.refine else int("fov" in self.refine)

    def _kb(self) -> bool:
        return "coeffs" in self.refine and all(lens.model == "kannala_brandt" for lens in self.rig.lenses)

    def x0(self) -> np.ndarray:
        return np.zeros(self.n_rot + self.n_fov + 4 * ("center" in self.refine) + 2 * self._kb())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = [-20.0] * self.n_rot, [20.0] * self.n_rot
        start = [l.fov_deg if self.n_fov == 2 else self.twin_fov for l in self.rig.lenses]
        tops = [np.rad2deg(2 * get_lens_model(l.model).max_theta(l.coeffs)) - 0.1 - f for l, f in zip(self.rig.lenses, start)]
        bottoms = [90.0 - f for f in start]
        for k in range(self.n_fov):
            idx = [k] if self.n_fov == 2 else [0, 1]
            w_lo, w_hi = self.fov_window or (-20.0, 20.0)
            lo.append(max(-20.0, w_lo, max(bottoms[i] for i in idx)))
            hi.append(max(min(20.0, w_hi, min(tops[i] for i in idx)), lo[-1] + 1e-6))
        if "center" in self.refine:
            lo += [-50.0] * 4
            hi += [50.0] * 4
        if self._kb():
            lo += [-0.2] * 2
            hi += [0.2] * 2
        return np.array(lo), np.array(hi)

    def rig_at(self, x: np.ndarray) -> Rig:
        rig = self.rig
        if self.n_rot:
            r1 = rig.lenses[1].rotation @ rotation_from_rodrigues(np.deg2rad(x[:3]))
            yaw, pitch, roll = np.rad2deg(ypr_from_rotation(r1))
            rig = rig.with_lens(1, yaw_deg=float(yaw), pitch_deg=float(pitch), roll_deg=float(roll))
        k = self.n_rot
        for i in range(2 if self.n_fov else 0):
            base = self.rig.lenses[i].fov_deg if self.n_fov == 2 else self.twin_fov
            rig = rig.with_lens(i, fov_deg=float(base + x[k + (i if self.n_fov == 2 else 0)]))
        k += self.n_fov
        if "center" in self.refine:
            for i in range(2):
                lens = self.rig.lenses[i]
                rig = rig.with_lens(i, center_x_px=float(lens.center_x_px + x[k]),
                                    center_y_px=float(lens.center_y_px + x[k + 1]))
                k += 2
        if self._kb():
            for i in range(2):
                c = list(self.rig.lenses[i].coeffs) + [0.0] * (4 - len(self.rig.lenses[i].coeffs))
                c[0] += float(x[k + i])
                rig = rig.with_lens(i, coeffs=tuple(c))
        return rig


def baseline_m(rig: Rig) -> np.ndarray:
    """Lens 1's centre minus lens 0's (rig frame, metres)."""
    return np.subtract(rig.lenses[1].translation_m, rig.lenses[0].translation_m).astype(np.float64)


def epipolar_deg(rig: Rig, m: Matches) -> np.ndarray:
    """Per match, the angle (degrees) of lens 1's ray off the epipolar plane of lens 0's ray.

    Lens centres ``c0``, ``c1 = c0 + b`` and a scene point ``X`` are coplanar with both rays
    whatever ``X``'s distance, so this residual is free of parallax (unlike the angle between
    the rays). It sees only the across-plane part of a rotation error; along-plane errors
    (field of view, and a tilt seen exactly on the seam circle) look like depth.
    """
    return _across_deg(baseline_m(rig), *match_rays(rig, m, None))


def _across_deg(b: np.ndarray, r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    n = np.cross(b, r0)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return np.rad2deg(np.arcsin(np.clip(np.sum(n * r1, axis=1), -1.0, 1.0)))


NEAR_M = 1.0
"""Nearest scene distance (m) the last solve's field-of-view window allows for (:func:`parallax_fov_window_deg`)."""

MIN_MATCHES_FOV = 150
"""Fewest matches for which the last solve also moves the field of view. The across residual barely
sees it, so with few matches it fits their noise and the lens model's error instead (a single real
frame has too few: the field of view drifts and the seam gets worse), while synthetic multi-frame
rigs have many more. A guard chosen between those, not derived: the real frames' seam table
(:func:`panoedge.eval.stitch_quality.real_seam_table`) and ``panoedge rig recovery`` show both sides."""

PARALLAX_REPORT_M = (0.5, 1.0, 3.0, 10.0)
"""Scene distances, metres, whose parallax floor the report gives (arm's length to across a room)."""

ENVELOPE_PULL = 0.1
"""Weight of a positive along-plane disagreement in the last field-of-view solve (see
:func:`parallax_residuals_deg`); a negative one weighs 1."""


def parallax_residuals_deg(rig: Rig, m: Matches, pull: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per match, the parts of the disagreement that no scene distance explains (degrees).

    ``across``: :func:`epipolar_deg`. ``beyond``: along the epipolar plane, a point at distance
    ``D`` puts lens 1's ray ``~ b sin(theta) / D >= 0`` further from the baseline direction than
    lens 0's; a negative difference (a point "beyond infinity") is an error, a positive one is
    taken as parallax (the best non-negative depth). So the field of view and the tilt are fitted
    to the far points: the lower envelope of the parallax, not its average.

    ``pull``: weight of a positive difference (0: none, as above). A larger twin field of view
    makes every difference more positive, so with ``pull = 0`` nothing stops the field of view
    from growing past the envelope (it overshoots); a small pull (asymmetric
    least squares: a low-quantile fit) makes the envelope touch the far points.
    """
    b = baseline_m(rig)
    bh = b / max(float(np.linalg.norm(b)), 1e-12)
    r0, r1 = match_rays(rig, m, None)  # once per residual evaluation: this is the solver's inner loop
    along = np.rad2deg(np.arccos(np.clip(r1 @ bh, -1, 1)) - np.arccos(np.clip(r0 @ bh, -1, 1)))
    return _across_deg(b, r0, r1), np.where(along < 0.0, along, pull * along)


def refine_rig(rig: Rig, m: Matches, refine=DEFAULT_REFINE, f_scale_deg: float = 0.15,
               depth_m: float | None = None, epipolar: bool = False, pull: float = 0.0,
               fov_window_deg: tuple[float, float] | None = None) -> Rig:
    """One robust least-squares solve of ``refine`` parameters on matches ``m`` (see the module doc).

    ``epipolar``: minimise :func:`parallax_residuals_deg` (with ``pull``; needs a baseline in the
    rig) instead of the angle between the rays: the rotation and the twin field of view
    (:func:`refine_parallax_free`), not the circles or the lens coefficients. ``fov_window_deg``:
    (low, high) limits of the field-of-view change (degrees)."""
    from scipy.optimize import least_squares

    bad = [r for r in refine if r not in REFINE]
    if bad:
        raise UsageError(f"unknown refine parameter(s) {bad}; valid: {', '.join(REFINE)}")
    if len(m) < 8:
        raise DataError(f"only {len(m)} feature matches in the overlap: too few to calibrate "
                        "(use more frames, frames with texture near the seam, or a closer start rig)")
    p = _Params(rig, tuple(refine), fov_window_deg)

    if epipolar and np.linalg.norm(baseline_m(rig)) < 1e-6:
        raise UsageError("epipolar refinement needs the lenses' translation_m (a baseline) in the rig")

    sw = None if m.weight is None else np.sqrt(m.weight)

    def residuals(x):
        if epipolar:
            parts = parallax_residuals_deg(p.rig_at(x), m, pull)
            return np.concatenate([r * sw if sw is not None and r.shape == sw.shape else r for r in parts])
        r0, r1 = match_rays(p.rig_at(x), m, depth_m)
        d = np.rad2deg(r0 - r1)
        return (d if sw is None else d * sw[:, None]).ravel()

    lo, hi = p.bounds()
    sol = least_squares(residuals, p.x0(), bounds=(lo, hi), loss="soft_l1", f_scale=f_scale_deg, x_scale=1.0)
    return p.rig_at(sol.x)


def refine_parallax_free(rig: Rig, m: Matches, refine=DEFAULT_REFINE) -> Rig:
    """The last solve (module doc, 3) on :func:`parallax_residuals_deg`, for a rig with a baseline.

    The rotation is solved together with a twin field of view (``fov`` in ``refine``; a field of
    view held from the ray-angle rounds, which parallax makes too small, biases the tilt through
    the envelope term), then the field of view alone with :data:`ENVELOPE_PULL` (the first solve
    leaves it above the envelope), both within :func:`parallax_fov_window_deg`. ``fov_each`` keeps
    the ray-angle fields of view (along the epipolar plane only their sum is seen), and so do
    fewer than :data:`MIN_MATCHES_FOV` matches."""
    twin = "fov" in refine and "fov_each" not in refine and len(m) >= MIN_MATCHES_FOV
    lo, hi = parallax_fov_window_deg(rig)
    fov0 = [lens.fov_deg for lens in rig.lenses]
    rig = refine_rig(rig, m, ("rotation", "fov") if twin else ("rotation",), epipolar=True, fov_window_deg=(lo, hi))
    if twin:  # from the ray-angle field of view: the first solve may leave it at the window's edge
        for i, f in enumerate(fov0):
            rig = rig.with_lens(i, fov_deg=f)
        rig = refine_rig(rig, m, ("fov",), epipolar=True, pull=ENVELOPE_PULL, fov_window_deg=(lo, hi))
    return rig


def parallax_fov_window_deg(rig: Rig, near_m: float = NEAR_M) -> tuple[float, float]:
    """How far (degrees) the last solve may move a twin field of view from the ray-angle rounds'.

    Parallax makes the ray-angle field of view too small, by about ``b / D`` times fov / 90 (module
    doc), so it may grow by that much for points ``near_m`` away and shrink by a quarter of it (noise);
    the envelope term alone cannot stop it growing (:func:`parallax_residuals_deg`), and on a real
    lens a larger field of view can also absorb model error off the epipolar plane."""
    fov = float(np.mean([lens.fov_deg for lens in rig.lenses]))
    grow = float(np.rad2deg(np.linalg.norm(baseline_m(rig)) / near_m)) * fov / 90.0
    return -0.25 * grow, grow


def _choose_circles(init: Rig, fits, m: Matches, depth_m, cost: float = 0.05):
    """Per lens, keep the found circle or the start rig's, whichever lets a rotation and field of
    view solve explain the first matches best; each found circle must earn its place by ``cost`` (5%) of the
    residual. (Dark rims can mislead the circle finder, and with near-range matches a smaller
    circle can mimic parallax: a found circle needs a clear gain to replace a published one.)"""
    best = None
    options = [(a, b) for a in (fits[0], None) for b in (fits[1], None)]
    for choice in dict.fromkeys(options):
        rig = apply_circles(init, list(choice))
        try:
            score = residual_stats(refine_rig(rig, m, ("rotation", "fov"), depth_m=depth_m), m, depth_m)["median_deg"]
        except DataError:
            score = float("inf")
        score *= 1.0 + cost * sum(c is not None for c in choice)
        if best is None or score < best[0]:
            best = (score, list(choice), rig)
    return best[1], best[2]


def seam_disagreement(rig: Rig, frames, gate_deg: float, strip_h: int | None = None) -> tuple[float, dict]:
    """The two seam figures of :mod:`panoedge.stitch.seam` for ``rig`` over ``frames``: the mean
    area-weighted MAD of the seam band (photometric, no feature matches) and the ray-angle
    statistics (:func:`residual_stats`) of matches found afresh under ``rig`` with ``gate_deg``."""
    stats = residual_stats(rig, Matches.concat(match_overlap(rig, f, gate_deg=gate_deg, strip_h=strip_h)
                                               for f in frames))
    return mean_seam_mad(rig, frames), stats


def mean_seam_mad(rig: Rig, frames) -> float:
    """The band MAD of :func:`panoedge.stitch.seam.seam_mad` averaged over ``frames`` (``inf`` if any is not finite)."""
    mads = [seam_mad(rig, f) for f in frames]
    return float(np.mean(mads)) if np.all(np.isfinite(mads)) else float("inf")


def seam_gain(start: tuple[float, float], figures: tuple[float, float]) -> float:
    """How much a rig lowers both seam figures ``(mad, median feature angle)`` from ``start``'s:
    the sum of their log ratios (negative: lower; the log of the product of the ratios, so each
    figure counts by its relative change). ``inf`` unless both are lower (or a figure is missing)."""
    ratios = np.divide(figures, start)
    if not np.all(np.isfinite(ratios)) or np.any(ratios >= 1.0) or np.any(ratios <= 0.0):
        return float("inf")
    return float(np.sum(np.log(ratios)))


def choose_by_seam(start: tuple[float, float], candidates: list[Rig], frames, gate_deg: float,
                   strip_h: int | None = None, rounds: list | None = None) -> tuple[int, dict]:
    """Index of the candidate rig (one per solve, in order) that lowers the seam the most, and its
    :func:`residual_stats` under the first gate (the result's ``after``).

    Each round's solve fits the matches within its own gate, and with near-range parallax the later,
    tighter gates fit a subset of them (the far points, or whatever lies inside the gate); the last
    solve is the best founded in theory but not always on the seam of a real frame. So every
    solve's rig is scored on both seam figures (:func:`seam_disagreement`): the band MAD, which does
    not use the feature matches at all, and the median angle of matches found afresh under it with
    the first (widest) gate. The candidate with the lowest :func:`seam_gain` wins; a candidate that
    raises either figure over ``start``'s (the start rig's ``(mad, median feature angle)``) cannot,
    and when every one does the last is kept. Each entry of ``rounds`` (same order) gets its
    ``seam_mad`` and ``seam_feature_deg``."""
    gains, stats = [], []
    for k, rig in enumerate(candidates):
        mad, st = seam_disagreement(rig, frames, gate_deg=gate_deg, strip_h=strip_h)
        if rounds is not None:
            rounds[k].update(seam_mad=mad, seam_feature_deg=st["median_deg"])
        gains.append(seam_gain(start, (mad, st["median_deg"])))
        stats.append(st)
    best = int(np.argmin(gains)) if np.isfinite(min(gains)) else len(candidates) - 1
    return best, stats[best]


@dataclass
class CalibrationResult:
    """The refined rig, the start rig, and the figures that justify the change."""

    rig: Rig
    init: Rig
    circles: list
    n_frames: int
    before: dict
    after: dict
    rounds: list = field(default_factory=list)
    parallax_deg: dict = field(default_factory=dict)
    refine: tuple = DEFAULT_REFINE
    per_frame: list = field(default_factory=list)
    """Per frame: ``before`` and ``after`` residual statistics (matches under the first gate), and
    ``label`` (its file name, where the caller gave labels): one rig must hold for every scene."""

    def annotated_rig(self, name: str | None = None) -> Rig:
        """The result rig named ``name``, its provenance saying what this calibration estimated."""
        fields = ["lenses[1].yaw_deg", "lenses[1].pitch_deg", "lenses[1].roll_deg"] if "rotation" in self.refine else []
        fields += ["lenses[*].fov_deg"] if {"fov", "fov_each"} & set(self.refine) else []
        fields += ["lenses[*].center_x_px", "lenses[*].center_y_px"] if "center" in self.refine else []
        fields += ["lenses[*].coeffs"] if "coeffs" in self.refine else []
        fields += [f"lenses[{i}].{k}" for i, c in enumerate(self.circles) if c is not None
                   for k in ("center_x_px", "center_y_px", "radius_px")]
        prov = dict(self.rig.extra.get("provenance", {}))
        prov["self_calibrated"] = fields
        block = {"frames": self.n_frames, "start": self.init.name, "matches": self.after["n"],
                 "residual_before_deg": self.before["median_deg"], "residual_after_deg": self.after["median_deg"]}
        notes = f"self-calibrated from {self.n_frames} frame(s), starting from {self.init.name}. {self.init.notes}".strip()
        return replace(self.rig, name=name or self.rig.name, notes=notes,
                       extra={**self.rig.extra, "provenance": prov, "calibration": block})

    def to_dict(self) -> dict:
        rel = self.rig.relative_rotation()
        return {
            "n_frames": self.n_frames,
            "circles": [None if c is None else {"center_x_px": c.cx, "center_y_px": c.cy, "radius_px": c.radius,
                                                "n_points": c.n_points, "rms_px": c.rms_px, "coverage": c.coverage}
                        for c in self.circles],
            "residual_before": self.before,
            "residual_after": self.after,
            "rounds": self.rounds,
            "relative_ypr_deg": [float(v) for v in np.rad2deg(ypr_from_rotation(rel))],
            "fov_deg": [lens.fov_deg for lens in self.rig.lenses],
            "parallax_deg": self.parallax_deg,
            "per_frame": self.per_frame,
        }


def calibrate(frames, init: Rig, refine=DEFAULT_REFINE, circles="auto", gates_deg=(6.0, 3.0, 1.5, 1.0),
              depth_m: float | None = None, strip_h: int | None = None,
              epipolar: bool | None = None, labels=None) -> CalibrationResult:
    """Self-calibrate ``init`` from ``frames`` (each a frame as :meth:`Stitcher.stitch` takes it).

    ``refine``: subset of :data:`REFINE` (``fov``: one field of view shared by both lenses, the
    robust default for twin lenses; ``fov_each``: one per lens); ``circles``: find the image
    circles first (True), keep the start rig's (False), or per lens keep whichever explains
    the first matches better ("auto"); ``gates_deg``: the match gate of each round (its length is the
    number of rounds); ``depth_m``: assumed scene distance for the parallax model (None: far);
    ``epipolar``: end with a solve on residuals no scene distance explains
    (:func:`refine_parallax_free`); ``None`` does so when the rig has a baseline and ``rotation`` is refined.
    Frames from several scenes give one rig for all of them; :attr:`CalibrationResult.per_frame`
    says how well it holds on each (``labels``: a name per frame for that report).
    """
    frames = list(frames)
    if not frames:
        raise UsageError("calibrate: no frames given")
    if circles not in (True, False, "auto"):
        raise UsageError(f"circles {circles!r}: expected True, False or 'auto'")
    for f in frames:
        canvas_of(init, f)  # size and type checks, with clear errors
    if labels is not None and len(labels) != len(frames):
        raise UsageError(f"calibrate: {len(labels)} labels for {len(frames)} frames")
    m0_each = [match_overlap(init, f, gate_deg=gates_deg[0], strip_h=strip_h) for f in frames]
    m0 = Matches.concat(m0_each)
    before = residual_stats(init, m0)
    fits = detect_circles(init, frames) if circles else [None, None]
    rig = apply_circles(init, fits)
    if circles == "auto" and any(c is not None for c in fits):
        fits, rig = _choose_circles(init, fits, m0, depth_m)
    rounds, candidates = [], []
    for gate in gates_deg:
        m = Matches.concat((match_overlap(rig, f, gate_deg=gate, strip_h=strip_h) for f in frames), balance=True)
        rig = refine_rig(rig, m, refine, depth_m=depth_m)
        rounds.append({"gate_deg": gate, **residual_stats(rig, m, depth_m)})
        candidates.append(rig)
    if epipolar is None:
        epipolar = "rotation" in refine and float(np.linalg.norm(baseline_m(rig))) >= 1e-6
    if epipolar:
        rig = refine_parallax_free(rig, m, refine)
        e = np.abs(epipolar_deg(rig, m))
        rounds.append({"gate_deg": gates_deg[-1], "epipolar": True, "n": int(e.size),
                       "median_deg": float(np.median(e)), "mean_deg": float(np.mean(e)),
                       "p90_deg": float(np.percentile(e, 90))})
        # With enough matches its tilt is set by the baseline, not by noise; the seam figures (rays
        # from the rig centre) cannot see parallax and would prefer a ray-angle round's bias.
        candidates = [rig] if len(m) >= MIN_MATCHES_FOV else candidates + [rig]
        rounds_seam = rounds[-len(candidates):]
    else:
        rounds_seam = rounds
    # the start rig's matches under the first gate are m0: its seam figures need no new matching
    start = (mean_seam_mad(init, frames), before["median_deg"])
    k, after = choose_by_seam(start, candidates, frames, gate_deg=gates_deg[0], strip_h=strip_h, rounds=rounds_seam)
    rig = candidates[k]
    para = {f"{d:g}m": parallax_deg(rig, d) for d in PARALLAX_REPORT_M}
    per_frame = []
    if len(frames) > 1:
        for i, (f, m_before) in enumerate(zip(frames, m0_each)):
            per_frame.append({"label": str(labels[i]) if labels is not None else f"frame {i}",
                              "before": residual_stats(init, m_before),
                              "after": residual_stats(rig, match_overlap(rig, f, gate_deg=gates_deg[0], strip_h=strip_h))})
    else:
        per_frame.append({"label": str(labels[0]) if labels is not None else "frame 0", "before": before, "after": after})
    return CalibrationResult(rig=rig, init=init, circles=fits, n_frames=len(frames), before=before, after=after, rounds=rounds,
                             parallax_deg=para, refine=tuple(refine), per_frame=per_frame)
