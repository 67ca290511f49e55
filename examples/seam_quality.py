"""Seam quality of every real dual-fisheye frame, per blend: how much the lenses disagree in the
seam band and how visible the seam is in the output (``panoedge.eval.stitch_quality.seam_visibility``).

    python examples/seam_quality.py [--real ../shared/data/real] [--json seam.json]

No reference panorama from another stitcher is read: the real data holds none for these frames
(``PROVENANCE.md``), and Hugin/enblend are not installed here.
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

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    print(f"{'frame':<52} {'rig':<36} {'lens MAD':>8} {'sharp feather':>13} {'sharp multiband':>15}")
    for _, name, rig_name in REAL_FRAMES:
        rig = load_preset(rig_name)
        frame = read_frame(rig, a.real / "dual_fisheye" / name)
        f, m = (seam_visibility(rig, frame, blend) for blend in ("feather", "multiband"))
        rows.append({"frame": name, "rig": rig_name, "feather": f, "multiband": m})
        print(f"{name:<52} {rig_name:<36} {f['lens_mad']:>8.2f} {f['band_sharpness']:>13.3f} {m['band_sharpness']:>15.3f}")
    if a.json:
        a.json.write_text(json.dumps({"schema": "panoedge.eval/1", "command": " ".join(sys.argv), "seam": rows}, indent=2))


if __name__ == "__main__":
    main()
