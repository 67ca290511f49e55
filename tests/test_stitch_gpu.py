"""The torch grid_sample path equals the OpenCV path; the stitch package stays torch-free."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from panoedge.stitch import Stitcher, level_from_ypr_deg
from panoedge.synth.rig_render import synthetic_rig

from tests.test_stitch import fisheye_frame, smooth_erp


@pytest.fixture(scope="module")
def frame_and_rig():
    rig = synthetic_rig(128, seed=11, vignetting=-0.3)
    scene = smooth_erp(128)
    noise = np.random.default_rng(0).integers(0, 60, scene.shape, dtype=np.uint8)  # sharp detail too
    return fisheye_frame(rig, scene - np.minimum(scene, noise), ((1.1, 1.0, 0.9), (0.9, 1.05, 1.1))), rig


@pytest.mark.parametrize("exposure,level", [(True, None), (False, None), (True, (10.0, -5.0, 3.0))])
def test_torch_path_on_cpu_matches_opencv_within_one_grey_level(frame_and_rig, exposure, level):
    pytest.importorskip("torch")
    frame, rig = frame_and_rig
    R = None if level is None else level_from_ypr_deg(*level)
    cpu = Stitcher(rig, (64, 128), exposure=exposure, device="cpu").stitch(frame, level=R)
    tch = Stitcher(rig, (64, 128), exposure=exposure, device="torch-cpu").stitch(frame, level=R)
    assert cpu.dtype == tch.dtype == np.uint8
    assert np.abs(cpu.astype(int) - tch).max() <= 1


@pytest.mark.gpu
def test_cuda_path_matches_opencv_within_one_grey_level(frame_and_rig):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    frame, rig = frame_and_rig
    st = Stitcher(rig, (64, 128), device="auto")
    assert st.device == "cuda"
    cpu = Stitcher(rig, (64, 128), device="cpu").stitch(frame)
    assert np.abs(cpu.astype(int) - st.stitch(frame)).max() <= 1


def test_stitching_needs_no_torch(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "import panoedge.stitch, panoedge.stitch.calibrate, panoedge.stitch.seam, panoedge.stitch.run\n"
        "from panoedge.stitch import Stitcher\n"
        "from panoedge.stitch.presets import generic_rig\n"
        "st = Stitcher(generic_rig(128, 64), (32, 64))\n"
        "assert st.device == 'cpu'\n"
        "print(st.stitch(np.full((64, 128, 3), 90, np.uint8)).shape)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "(32, 64, 3)" in res.stdout
