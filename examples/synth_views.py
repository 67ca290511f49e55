"""Render one synthetic world from three cameras and write what each sees.

    python examples/synth_views.py OUT_DIR

The ERP, a pinhole and a fisheye view come from the same world and camera position, so the
same 3D point has the same depth (range vs z-depth as CONVENTIONS.md says) and label in each.
"""

import sys
from pathlib import Path

import numpy as np

from panoedge.geometry import FisheyeCamera, erp_to_perspective, rotation_from_ypr_deg
from panoedge.io import colorize_depth, colorize_labels, write_rgb
from panoedge.synth.render import render, render_erp, render_pinhole
from panoedge.synth.world import class_colors, make_world


def main(out: Path) -> None:
    world = make_world("outdoor", seed=7)
    colors = class_colors("outdoor")
    erp = render_erp(world, 512, 1024)
    pin = render_pinhole(world, 240, 320, 90.0, R=rotation_from_ypr_deg(30, 5, 0))
    fish = render(world, FisheyeCamera.from_fov(400, 400, "equidistant", 200.0))
    for name, view in (("erp", erp), ("pinhole", pin), ("fisheye", fish)):
        row = np.concatenate([view.rgb, colorize_labels(view.labels, colors), colorize_depth(view.depth, 60)], axis=1)
        write_rgb(out / f"{name}.png", row)
    # The pinhole render and a crop of the ERP render agree: the same view, two ways.
    crop = erp_to_perspective(erp.rgb, 90.0, 30, 5, (240, 320))
    write_rgb(out / "pinhole_from_erp.png", np.concatenate([pin.rgb, crop], axis=1))
    print(f"wrote erp.png, pinhole.png, fisheye.png and pinhole_from_erp.png to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "synth-views"))
