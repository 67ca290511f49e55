"""One inference contract over ONNX Runtime, TensorRT and torch; bundles; pre/post-processing.

Torch-free: NumPy, OpenCV and ONNX Runtime are all a robot needs to run a bundle. Backends are
chosen by name through :mod:`panoedge.runtime.registry` (``create_runner("ort-cpu", path)``); each
imports its library only when a runner is created. Runners are context managers (``with``).

Example::

    from panoedge.runtime import load_bundle
    b = load_bundle("bundle/")
    with b.runner() as runner:
        out = b.postprocess(runner.infer({b.input_name: b.preprocess(rgb)}))
"""

from panoedge.runtime import ort_runner as _ort_runner, trt_runner as _trt_runner  # noqa: F401 - register backends
from panoedge.runtime.base import Runner, TensorSpec, check_feed
from panoedge.runtime.bundle import Bundle, load_bundle, read_manifest, verify_bundle
from panoedge.runtime.processing import postprocess, preprocess
from panoedge.runtime.registry import backend_available, backend_names, create_runner, register_backend

__all__ = ["Bundle", "Runner", "TensorSpec", "backend_available", "backend_names", "check_feed", "create_runner",
           "load_bundle", "postprocess", "preprocess", "read_manifest", "register_backend", "verify_bundle"]
