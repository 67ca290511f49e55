"""Light stitch tables (issue 18): built in row blocks, the same tables as one block, and a cold
1920 x 3840 stitch within 400 MB of peak resident memory (measured in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import panoedge.stitch.tables as tables
from panoedge.stitch.presets import generic_rig
from panoedge.synth.rig_render import synthetic_rig

PEAK_MB = 400.0


def test_tables_built_in_blocks_equal_one_block(monkeypatch):
    rig = synthetic_rig(128, seed=2, vignetting=-0.3)
    whole = tables.build_tables(rig, (64, 128))
    monkeypatch.setattr(tables, "BLOCK_PIXELS", 128 * 5)  # 5 rows a block, the last one short
    blocks = tables.build_tables(rig, (64, 128))
    for a, b in ((whole.main_maps[0], blocks.main_maps[0]), (whole.main_maps[1], blocks.main_maps[1]),
                 (whole.strip_maps[0], blocks.strip_maps[0]), (whole.gain_basis, blocks.gain_basis),
                 (whole.strip_basis, blocks.strip_basis), (whole.band_idx, blocks.band_idx), (whole.own, blocks.own),
                 (whole.est_w, blocks.est_w)):
        np.testing.assert_array_equal(a, b)
    assert whole.n_band > 0


def test_vignetting_beyond_what_the_gain_images_carry_is_an_error():
    import pytest

    from panoedge.errors import UsageError

    rig = generic_rig(256, 128).with_lens(0, vignetting=(-0.8,))
    with pytest.raises(UsageError, match="vignetting correction"):
        tables.build_tables(rig, (32, 64))


def test_cold_full_size_stitch_stays_within_400_mb(tmp_path):
    # VmHWM: the peak of this process's own memory map (ru_maxrss survives exec on Linux, so a
    # child forked from a big pytest process would report the parent's peak).
    child = (
        "import resource, numpy as np\n"
        "def peak_mb():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024.0\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0\n"
        "from panoedge.stitch import Stitcher\n"
        "from panoedge.stitch.presets import generic_rig\n"
        "f = np.zeros((1920, 3840, 3), np.uint8)\n"
        "Stitcher(generic_rig(3840, 1920), (1920, 3840), device='cpu').stitch(f)\n"
        "print(peak_mb())\n")
    toolkit = Path(__file__).resolve().parents[1] / "toolkit"
    env = dict(os.environ, PYTHONPATH=str(toolkit), PANOEDGE_HOME=str(tmp_path), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) <= PEAK_MB, out.stdout
