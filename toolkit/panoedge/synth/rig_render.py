"""A dual-fisheye camera in the synthetic world, rendered as a real one delivers its frames.

Two back-to-back fisheye lenses with a baseline (so parallax is real), a small mounting
misalignment, vignetting, per-lens exposure and white balance, and sensor noise, side by
side in one frame. With it come the ground-truth ERP from the rig centre and the true rig.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoedge.io import IGNORE
from panoedge.stitch.rig import Lens, Rig
from panoedge.synth.render import View, cast_rays, render_erp, to_uint8


@dataclass(frozen=True)
class SensorEffects:
    """Per-frame sensor state of each lens: exposure gain, white balance gains, noise."""

    exposure: tuple[float, float] = (1.0, 1.0)
    white_balance: tuple[tuple[float, float, float], tuple[float, float, float]] = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    noise_sigma: float = 0.0  # grey levels (of 255)

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> "SensorEffects":
        """Effects a real consumer 360 camera shows: a few percent of exposure and colour mismatch."""
        exp = tuple(float(x) for x in 1.0 + strength * rng.uniform(-0.12, 0.12, 2))
        wb = tuple(tuple(float(x) for x in 1.0 + strength * rng.uniform(-0.06, 0.06, 3)) for _ in range(2))
        return cls(exp, wb, float(strength * rng.uniform(0.5, 2.5)))  # type: ignore[arg-type]


def synthetic_rig(frame_h: int = 1024, seed: int = 0, misalign_deg: float = 1.0, baseline_m: float = 0.03,
                  fov_deg: float = 195.0, model: str = "equidistant", vignetting: float = -0.25) -> Rig:
    """A side-by-side dual-fisheye rig (frame ``frame_h x 2 frame_h``) with random small misalignment.

    Lens 0 ("front") looks along +z, lens 1 ("back") along -z; lens centres sit ``baseline_m``
    apart on the z axis. Each lens's yaw, pitch and roll deviate from nominal by up to
    ``misalign_deg``; circle centres by up to 1% of the radius.
    """
    rng = np.random.default_rng(seed)
    h = int(frame_h)
    radius = 0.49 * h
    lenses = []
    for i, (name, yaw0) in enumerate((("front", 0.0), ("back", 180.0))):
        dyaw, dpitch, droll = rng.uniform(-misalign_deg, misalign_deg, 3)
        dc = rng.uniform(-0.01, 0.01, 2) * radius
        lenses.append(Lens(
            name=name, model=model, fov_deg=float(fov_deg),
            center_x_px=float((h - 1) / 2.0 + i * h + dc[0]), center_y_px=float((h - 1) / 2.0 + dc[1]),
            radius_px=float(radius), yaw_deg=float(yaw0 + dyaw), pitch_deg=float(dpitch), roll_deg=float(droll),
            translation_m=(0.0, 0.0, baseline_m / 2.0 if i == 0 else -baseline_m / 2.0),
            vignetting=(float(vignetting), 0.0, 0.0),
        ))
    return Rig(name=f"synth-dual-fisheye-{seed}", layout="side_by_side", image_width_px=2 * h, image_height_px=h,
               lenses=(lenses[0], lenses[1]),
               notes="synthetic: every number is the true value used to render the frames")


@dataclass
class RigFrame:
    """A rendered dual-fisheye frame ``(H, 2H, 3) uint8``, its ground-truth ERP and per-lens truth."""

    frame: np.ndarray
    erp: View
    lens_depth: np.ndarray  # (H, 2H) float32 range from each lens centre, 0 outside the circles
    lens_labels: np.ndarray  # (H, 2H) uint8, 255 outside the circles
    effects: SensorEffects


def render_rig_frame(world, rig: Rig, position=None, R_rig=None, effects: SensorEffects | None = None,
                     erp_hw=(512, 1024), rng: np.random.Generator | None = None) -> RigFrame:
    """Render ``rig`` at ``position`` (rig centre) with rig-to-world rotation ``R_rig``.

    Each lens casts from its own centre (``position + R_rig @ translation_m``), so the two
    lenses see the world with real parallax; the ground-truth ERP is cast from the rig centre
    in the rig's frame. Vignetting, exposure, white balance and noise are applied per lens.
    """
    position = world.default_camera() if position is None else np.asarray(position, dtype=np.float64)
    R_rig = np.eye(3) if R_rig is None else np.asarray(R_rig, dtype=np.float64)
    effects = effects or SensorEffects()
    rng = rng or np.random.default_rng(0)
    h, w = rig.frame_hw
    frame = np.zeros((h, w, 3), dtype=np.float32)
    depth = np.zeros((h, w), dtype=np.float32)
    labels = np.full((h, w), IGNORE, dtype=np.uint8)
    claimed = np.zeros((h, w), dtype=bool)
    for i, (lens, cam) in enumerate(zip(rig.lenses, rig.cameras())):
        rays, valid = cam.rays()
        # Each lens owns its half of a side-by-side frame (its circle may spill across).
        valid = valid & ~claimed & _own_region(rig, lens, h=h, w=w)
        origin = position + R_rig @ np.asarray(lens.translation_m)
        hit = cast_rays(world, origin, rays[valid] @ (R_rig @ lens.rotation).T)
        uu, vv = np.nonzero(valid)[1], np.nonzero(valid)[0]
        rho = np.hypot(uu - lens.center_x_px, vv - lens.center_y_px) / lens.radius_px
        gain = (effects.exposure[i] * lens.vignetting_gain(rho))[:, None] * np.asarray(effects.white_balance[i])
        frame[valid] = hit.rgb * gain
        depth[valid] = np.where(np.isfinite(hit.t), hit.t, 0.0)
        labels[valid] = hit.label
        claimed |= valid
    frame = frame * 255.0
    if effects.noise_sigma > 0:
        frame[claimed] += rng.normal(0.0, effects.noise_sigma, (int(claimed.sum()), 3))
    out = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    gt = render_erp(world, h=erp_hw[0], w=erp_hw[1], position=position, R=R_rig)
    return RigFrame(frame=out, erp=gt, lens_depth=depth, lens_labels=labels, effects=effects)


def _own_region(rig: Rig, lens: Lens, h: int, w: int) -> np.ndarray:
    """Pixels of the frame that belong to ``lens`` (its half for side-by-side/stacked layouts)."""
    region = np.zeros((h, w), dtype=bool)
    if rig.layout == "side_by_side":
        half = slice(0, w // 2) if lens.center_x_px < w / 2 else slice(w // 2, w)
        region[:, half] = True
    elif rig.layout == "stacked":
        half = slice(0, h // 2) if lens.center_y_px < h / 2 else slice(h // 2, h)
        region[half, :] = True
    else:
        region[:] = True
    return region


__all__ = ["RigFrame", "SensorEffects", "render_rig_frame", "synthetic_rig", "to_uint8", "View"]
