"""Live: a dual-fisheye camera in, 360° segmentation and depth out, in real time.

Sources (:mod:`.sources`, :mod:`.synth_source`) -> the threaded pipeline (:mod:`.pipeline`:
capture -> stitch -> infer -> post-process, bounded drop-oldest queues) -> sinks (:mod:`.sinks`:
window, video file; :mod:`.web`: the web viewer; :mod:`.publisher`: ZeroMQ for robot
software). The types they share (:class:`FrameResult`, :class:`StreamInfo`, :class:`Source`,
:class:`Sink`) live in the leaf :mod:`.stream`; sources and sinks register by URI scheme
(:func:`register_source`, :func:`register_sink`, :mod:`.uri`). :func:`run_live` is ``panoedge run``; :func:`bench_pipeline` is
``panoedge bench pipeline``. Torch-free: a robot needs NumPy, OpenCV, ONNX Runtime (and
pyzmq for ``zmq://``).

Example::

    from panoedge.live import run_live
    report = run_live("bundle/", "synth://indoor?fps=30", ["web://127.0.0.1:8080"], duration_s=30)
    report.case.fps, report.case.latency_ms.p99     # a LiveRunResult; report.to_dict() is the JSON
"""

from panoedge.live.bench import bench_pipeline
from panoedge.live.model import LiveModel, load_model
from panoedge.live.pipeline import Pipeline, PipelineConfig
from panoedge.live.report import format_live, format_report
from panoedge.live.run import run_live
from panoedge.live.sinks import open_sink
from panoedge.live.sources import open_source
from panoedge.live.stream import Captured, FrameResult, Result, Sink, Source, SourceError, StageQueue, StreamInfo
from panoedge.live.uri import register_sink, register_source

__all__ = ["Captured", "FrameResult", "LiveModel", "Pipeline", "PipelineConfig", "Result", "Sink", "Source", "SourceError",
           "StageQueue", "StreamInfo", "bench_pipeline", "format_live", "format_report", "load_model", "open_sink",
           "open_source", "register_sink", "register_source", "run_live"]
