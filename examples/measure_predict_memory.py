"""Peak memory (RSS) of ``panoedge predict TEACHER IMAGE --mode tangent`` at several panorama sizes.

Each size runs in its own process (so peaks do not mix) and reads its peak from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. The image is a real panorama resized to the
size. Usage::

    python examples/measure_predict_memory.py TEACHER_SPEC IMAGE [--sizes 512x1024,960x1920,1536x3072]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher")
    ap.add_argument("image")
    ap.add_argument("--sizes", default="512x1024,960x1920,1536x3072")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import cv2

    src = cv2.imread(args.image, cv2.IMREAD_COLOR)
    rows = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            img = Path(tmp) / f"pano_{w}x{h}.png"
            cv2.imwrite(str(img), cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA))
            # a fresh measuring process per size: RUSAGE_CHILDREN is the max over all children so far
            code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
                    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
            cmd = [sys.executable, "-c", code, sys.executable, "-m", "panoedge.cli", "predict", args.teacher, str(img),
                   "--mode", "tangent", "--out", str(Path(tmp) / "out")]
            proc = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
            peak = int(proc.stdout.strip().splitlines()[-1]) / 1024.0
        rows.append({"size": f"{w}x{h}", "peak_rss_mib": round(peak, 1), "ok": proc.returncode == 0})
        print(f"{w}x{h}: peak RSS {peak:.0f} MiB{'' if proc.returncode == 0 else ' (FAILED)'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"schema": "panoedge.predict_memory/1", "teacher": args.teacher,
                                               "cases": rows}, indent=2))


if __name__ == "__main__":
    main()
