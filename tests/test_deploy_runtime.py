"""Deploy, part 5: a bundle runs without PyTorch, in an environment holding only the runtime dependencies.

The test runs the base interpreter without its site-packages (``python -S``) on a folder that
holds only NumPy, OpenCV (headless) and ONNX Runtime (links to this environment's copies) plus
``toolkit/``, and runs inference from a bundle. It needs no network: the suite runs offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_deploy_bundle import FAST, bundle, rig_file  # noqa: F401
from tests.test_deploy_export import HW, dataset, deploy_root, export_report, fp32_onnx, student_dir  # noqa: F401

TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"
RUNTIME_DEPS = ("numpy", "numpy.libs", "cv2", "opencv_python_headless.libs", "onnxruntime")
"""Top-level entries of site-packages a robot's runtime holds (the packages and their bundled libraries)."""

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


def _runtime_site(root: Path) -> Path:
    """A folder with links to this environment's runtime packages only (no torch, onnx, typer, tqdm)."""
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    root.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_DEPS:
        if (site / name).exists() and not (root / name).exists():
            (root / name).symlink_to(site / name)
    return root


@pytest.mark.slow
def test_bundle_runs_without_torch(bundle, tmp_path):
    site = _runtime_site(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TOOLKIT)])
    py = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([py, "-S", "-c", "import torch"], capture_output=True, env=env)
    assert probe.returncode != 0, "the runtime environment must not hold torch"
    res = subprocess.run([py, "-S", "-c", SCRIPT, str(bundle)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for precision in ("fp32", "int8"):
        assert out[precision]["labels"] == list(HW) and out[precision]["depth_min"] > 0
    assert out["modules"] == []


@pytest.mark.parametrize("module", ["panoedge.runtime", "panoedge.runtime.bundle", "panoedge.runtime.ort_runner",
                                    "panoedge.runtime.trt_runner", "panoedge.deploy.torch_runner"])
def test_runtime_imports_without_torch(module):
    code = f"import sys; sys.modules['torch'] = None; import {module}"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_backends_come_from_a_registry_and_runners_close(fp32_onnx):
    import numpy as np

    from panoedge.errors import UsageError
    from panoedge.runtime import backend_names, create_runner

    assert {"ort-cpu", "ort-cuda", "ort-trt", "trt"} <= set(backend_names())
    with pytest.raises(UsageError, match=r"unknown backend 'onnx-cpu'; valid: .*ort-cpu.*trt"):
        create_runner("onnx-cpu", fp32_onnx)
    with create_runner("ort-cpu", fp32_onnx, threads=1) as r:
        x = np.zeros(r.inputs[0].shape, np.float32)
        assert set(r.infer({"image": x})) == {"seg", "depth"}
    assert r.closed and r.session is None
    with pytest.raises(UsageError, match="closed"):
        r.infer({"image": x})
    r.close()  # idempotent


def test_torch_backend_registers_from_deploy(student_dir):
    import numpy as np

    import panoedge.deploy.torch_runner  # noqa: F401 - registers "torch"
    from panoedge.errors import UsageError
    from panoedge.runtime import backend_available, create_runner

    assert backend_available("torch") == (True, "")
    with pytest.raises(UsageError, match="--size"):
        create_runner("torch", student_dir)
    with create_runner("torch", student_dir, hw=HW, threads=1) as r:
        out = r.infer({"image": np.zeros((1, 3, *HW), np.float32)})
        assert out["seg"].shape[2:] == HW
    assert r.model is None
