"""Seam colour on the Gear 360 frame: panoedge (preset and self-calibrated rig; feather and
multiband; with and without the seam gain field) against Hugin's nona + enblend, in one run,
with the same band and the same figures for every tool (``panoedge.eval.seam_compare``).

    python examples/seam_vs_hugin.py [--real ../shared/data/real] [--out-h 1280] [--wide-bands 8] [--json PATH]

Hugin renders the published project ``lens_params/gear360_gen1_video2560.pto`` (both image
lines read the whole side-by-side frame and crop their own circle, as in the project's repo),
turned by 180 degrees of yaw with a full 360-degree output so its ERP lines up with panoedge's.
Without ``nona``/``enblend`` on PATH (Debian: ``apt-get install hugin-tools enblend``) the Hugin
row is skipped with a message and panoedge's rows are still measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FRAME = "gear360_c200_video2560x1280_frame.png"
PTO = "gear360_gen1_video2560.pto"
RIGS = ("gear360_c200_video2560", "gear360_c200_video2560_selfcal")


def main() -> None:
    from panoedge.eval.seam_compare import common_band, hugin_render, missing_hugin_tools, panoedge_layers, seam_figures
    from panoedge.stitch.frames import read_frame
    from panoedge.stitch.presets import load_preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    ap.add_argument("--out-h", type=int, default=1280, help="ERP height (Hugin's project renders 1280)")
    ap.add_argument("--band-deg", type=float, default=5.0, help="measured band, and panoedge's blend band")
    ap.add_argument("--wide-bands", type=str, default="8",
                    help="also panoedge feather + seam field blended over these band widths (degrees, comma-separated; "
                         "measured on the same --band-deg band); empty for none")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    frame_path = a.real / "dual_fisheye" / FRAME
    if not frame_path.exists():
        sys.exit(f"{frame_path}: not found (pass --real, the folder holding dual_fisheye/ and lens_params/)")
    out_hw = (a.out_h, 2 * a.out_h)
    tools, ref = [], None
    for rig_name in RIGS:
        rig = load_preset(rig_name)
        frame = read_frame(rig, frame_path)
        for blend in ("feather", "multiband"):
            for field in (False, True):
                name = f"panoedge {rig_name} {blend}{' +seam field' if field else ''}"
                lay, t = panoedge_layers(rig, frame, out_hw, blend=blend, seam_field=field, name=name,
                                         band_deg=a.band_deg)
                ref = t if ref is None else ref
                tools.append(lay)
        for wide in [float(x) for x in a.wide_bands.split(",") if x.strip()]:
            name = f"panoedge {rig_name} feather +seam field --band-deg {wide:g}"
            tools.append(panoedge_layers(rig, frame, out_hw, seam_field=True, name=name, band_deg=wide)[0])
    missing = missing_hugin_tools()
    if missing:
        print(f"skipping Hugin: {', '.join(missing)} not on PATH (Debian: apt-get install hugin-tools enblend)")
    else:
        tools.append(hugin_render(a.real / "lens_params" / PTO, frame_path, out_hw))
    band = common_band(tools, ref.seam_deg, a.band_deg)
    rows = [seam_figures(lay, band) for lay in tools]
    print(f"common band: {a.band_deg:g} deg about the preset's seam, seen by every tool's two lenses "
          f"({100 * rows[0]['band_fraction']:.2f}% of the sphere), ERP {out_hw[0]}x{out_hw[1]}")
    print(f"{'tool':<76} {'lens MAD':>8} {'colour MAD':>10} {'level':>6} {'lens %':>6} {'colour %':>8} {'step':>6} "
          f"{'sharp':>5}")
    for r in rows:
        print(f"{r['tool']:<76} {r['lens_mad']:>8.2f} {r['colour_mad']:>10.2f} {r['band_level']:>6.1f} "
              f"{r['lens_mad_pct']:>6.2f} {r['colour_mad_pct']:>8.2f} {r['visible_step']:>6.3f} {r['band_sharpness']:>5.2f}")
    if a.json:
        a.json.write_text(json.dumps({"schema": "panoedge.eval/1", "command": " ".join(sys.argv),
                                      "out_hw": list(out_hw), "band_deg": a.band_deg, "seam": rows}, indent=2))


if __name__ == "__main__":
    main()
