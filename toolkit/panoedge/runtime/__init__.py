"""One inference contract over ONNX Runtime, TensorRT and torch; bundles; pre/post-processing.

Torch-free: NumPy, OpenCV and ONNX Runtime are all a robot needs to run a bundle. TensorRT and
torch runners import their backends only when created.

Example::

    from panoedge.runtime import load_bundle
    b = load_bundle("bundle/")
    out = b.postprocess(b.runner().infer({b.input_name: b.preprocess(rgb)}))
"""

from panoedge.runtime.base import Runner, TensorSpec, check_feed
from panoedge.runtime.bundle import Bundle, load_bundle, read_manifest, verify_bundle
from panoedge.runtime.processing import postprocess, preprocess

__all__ = ["Bundle", "Runner", "TensorSpec", "check_feed", "load_bundle", "postprocess", "preprocess",
           "read_manifest", "verify_bundle"]
