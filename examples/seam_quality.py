"""Seam quality of every real dual-fisheye frame, per blend: how much the lenses disagree in the
seam band and how visible the seam is in the output (``panoedge.eval.stitch_quality.seam_visibility``).

    python examples/seam_quality.py [--real ../shared/data/real] [--json seam.json]

Every frame with its preset and its ``_selfcal`` rig; the lens MAD with the global gains only and
with the seam gain field (the default). The comparison with Hugin+enblend on the Gear 360 frame
is ``examples/seam_vs_hugin.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    from panoedge.eval.stitch_quality import REAL_FRAMES, seam_visibility
    from panoedge.stitch.frames import read_frame
    from panoedge.stitch.presets import load_preset
    from panoedge.stitch.seam import seam_mad

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    print(f"{'frame':<52} {'rig':<36} {'MAD global gains':>16} {'MAD +seam field':>15} {'sharp feather':>13} "
          f"{'sharp multiband':>15}")
    for preset, name, selfcal in REAL_FRAMES:
        for rig_name in (preset, selfcal):
            rig = load_preset(rig_name)
            frame = read_frame(rig, a.real / "dual_fisheye" / name)
            f, m = (seam_visibility(rig, frame, blend) for blend in ("feather", "multiband"))
            plain = seam_mad(rig, frame, seam_field=False)
            rows.append({"frame": name, "rig": rig_name, "lens_mad_global_gains": plain, "feather": f, "multiband": m})
            print(f"{name:<52} {rig_name:<36} {plain:>16.2f} {f['lens_mad']:>15.2f} {f['band_sharpness']:>13.3f} "
                  f"{m['band_sharpness']:>15.3f}")
    if a.json:
        a.json.write_text(json.dumps({"schema": "panoedge.eval/1", "command": " ".join(sys.argv), "seam": rows}, indent=2))


if __name__ == "__main__":
    main()
