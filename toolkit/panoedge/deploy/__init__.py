"""From a trained student to a device: export, INT8 calibration, targets, bundles, engines.

Stages, each a function the CLI calls (``panoedge export|quantize|build|engine``):

* :func:`panoedge.deploy.export.export_model`: student.pt -> simplified, verified ONNX.
* :func:`panoedge.deploy.quantize.quantize_model`: QDQ INT8 calibrated on real images, within a
  measured accuracy budget, plus a TensorRT calibration cache from the same statistics.
* :func:`panoedge.deploy.targets.load_target`: target profiles (``deploy/targets/*.toml``).
* :func:`panoedge.deploy.lint.lint_model`: nodes TensorRT or the DLA will not run as asked.
* :func:`panoedge.deploy.bundle.build_bundle`: the hashed, self-contained bundle folder.
* :func:`panoedge.deploy.engine.build_engine`: the TensorRT engine on the device (or trtexec), after the
  plan of :mod:`panoedge.deploy.trt_plan` (INT8 on the DLA from the calibration cache, or on the GPU from QDQ).
* :func:`panoedge.deploy.bench.bench_model`: FP32 vs INT8 latency side by side.

Each stage returns a typed result defined beside it (``ExportResult``, ``QuantizeResult``,
``LintResult``, ``BuildResult``, ``EngineResult``, ``BenchResult``): ``to_dict()`` is the JSON
``--json`` writes, ``format()`` what the command prints. Heavy dependencies (onnx,
onnxruntime.quantization, torch, tensorrt) are imported inside the functions that need them.
"""
