"""Evaluators and benchmarks: the top floor of the library.

``eval`` scores and times what the other packages build: :mod:`~panoedge.eval.evaluate` runs a student,
an ONNX export or a teacher (:mod:`~panoedge.eval.predictors`) on ERP data; ``stitch_quality``,
``stitch_bench``, ``seam_compare`` and ``synth_bench`` measure the stitcher and the synthetic world. It
stands on ``distill`` (tangent patches, teachers), ``stitch``, ``runtime``, ``models``, ``data`` and
``synth``; no package below imports it back (only ``cli/`` and ``demo`` sit above it), which
``python tests/import_graph.py`` checks as "package cycles".

The metrics themselves are leaves that anything may use: :mod:`panoedge.metrics` (confusion, IoU,
depth errors) and :mod:`panoedge.timing` (the ``panoedge bench`` timing and report shape).
"""
