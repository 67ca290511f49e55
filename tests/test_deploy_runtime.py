"""Deploy, part 5: a bundle runs without PyTorch, in an environment holding only the runtime dependencies.

The test creates a virtual environment, installs NumPy, OpenCV (headless) and ONNX Runtime into
it with pip, puts only ``toolkit/`` on ``PYTHONPATH`` and runs inference from a bundle. Where pip
cannot install (no index, no cache), it falls back to this interpreter with ``torch`` blocked
(``sys.modules['torch'] = None``) and says so in a warning. The venv lives in pytest's cache
folder (``.pytest_cache``) and is reused while it still imports its three packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.test_deploy_bundle import FAST, bundle, rig_file  # noqa: F401
from tests.test_deploy_export import HW, dataset, deploy_root, export_report, fp32_onnx, student_dir  # noqa: F401

TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"
RUNTIME_DEPS = ["numpy", "opencv-python-headless", "onnxruntime"]

SCRIPT = r"""
import json, sys
sys.modules["torch"] = None  # in the fresh venv torch is absent anyway; never import it by accident
import numpy as np
from panoedge.runtime import load_bundle
b = load_bundle(sys.argv[1])
rgb = np.random.default_rng(0).integers(0, 255, (256, 512, 3), dtype=np.uint8)
res = {}
for precision in ("fp32", "int8"):
    out = b.postprocess(b.runner(precision=precision).infer({b.input_name: b.preprocess(rgb)}))
    res[precision] = {"labels": list(out["labels"].shape), "depth_min": float(out["depth"].min())}
res["modules"] = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in ("torch", "onnx", "tqdm", "typer"))
print(json.dumps(res))
"""


def _venv_python(root: Path) -> Path | None:
    """A venv with only the runtime dependencies (reused if intact), or None where pip cannot install them."""
    import shutil

    py = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if py.is_file() and subprocess.run([str(py), "-c", "import numpy, cv2, onnxruntime"],
                                       capture_output=True, timeout=120).returncode == 0:
        return py
    shutil.rmtree(root, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root)], check=True, capture_output=True, timeout=120)
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *RUNTIME_DEPS],
                         capture_output=True, text=True, timeout=600)
    return py if res.returncode == 0 else None


@pytest.mark.slow
def test_bundle_runs_without_torch(bundle, request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    root = cache.mkdir("panoedge-runtime-venv") if cache is not None else tmp_path_factory.mktemp("runtime-venv")
    py = _venv_python(Path(root))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(TOOLKIT)
    if py is None:
        warnings.warn("pip could not install the runtime dependencies into a fresh venv; ran with this "
                      "interpreter and torch blocked instead")
        py = Path(sys.executable)
    else:
        probe = subprocess.run([str(py), "-c", "import torch"], capture_output=True, env=env)
        assert probe.returncode != 0, "the runtime venv must not hold torch"
    res = subprocess.run([str(py), "-c", SCRIPT, str(bundle)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for precision in ("fp32", "int8"):
        assert out[precision]["labels"] == list(HW) and out[precision]["depth_min"] > 0
    assert out["modules"] == []


@pytest.mark.parametrize("module", ["panoedge.runtime", "panoedge.runtime.bundle", "panoedge.runtime.ort_runner",
                                    "panoedge.runtime.trt_runner", "panoedge.runtime.torch_runner"])
def test_runtime_imports_without_torch(module):
    code = f"import sys; sys.modules['torch'] = None; import {module}"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
