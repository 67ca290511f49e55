"""The live pipeline: queues, sources, ordering and timestamps, faults, reports, the CLI's clean stop.

Small and fast: a stand-in model (NumPy, no ONNX) for most tests, 128x256 synthetic dual-fisheye
frames stitched to 64x128 ERP; one test runs a real (untrained) pano-nano ONNX through ONNX
Runtime. Timings are reported, never asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from panoedge.errors import UsageError
from panoedge.live.model import LiveModel
from panoedge.live.pipeline import Pipeline, PipelineConfig
from panoedge.live.stream import Closed, StageQueue
from panoedge.live.sinks import Sink
from panoedge.live.sources import Captured, CorruptFrame, Pacer, Source, SourceEnded, SourceError, open_source, split_uri

SYNTH = "synth://indoor?size=128x256&n=2&gt=64x128"
ERP_HW = (64, 128)


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    """One cache for the module, so the synthetic loop is rendered once."""
    return tmp_path_factory.mktemp("live_home")


@pytest.fixture
def home(shared_home, monkeypatch) -> Path:
    monkeypatch.setenv("PANOEDGE_HOME", str(shared_home))
    return shared_home


class FakeRunner:
    """A deterministic stand-in for a model: class = brightness band, depth = 2 m + red channel."""

    backend = "fake"

    def infer(self, feed):
        rgb = feed["image"]
        labels = (rgb.mean(axis=-1) // 24).astype(np.uint8) % 11
        depth = 2.0 + rgb[..., 0].astype(np.float32) / 255.0
        return {"labels": labels, "depth": depth}


def fake_model(hw=ERP_HW) -> LiveModel:
    from panoedge.synth.world import class_colors, class_names

    return LiveModel(name="fake", input_hw=hw, classes=list(class_names("indoor")), colors=class_colors("indoor"),
                     runner=FakeRunner(), to_feed=lambda rgb: {"image": rgb}, from_outputs=lambda out: out)


class Recorder(Sink):
    """Keeps what it is given (seq, capture times, latency, shapes)."""

    scheme = "record"
    queue_size = 64

    def __init__(self):
        super().__init__("record://")
        self.items = []

    def process(self, r):
        self.items.append((r.seq, r.t_capture, r.t_wall, r.latency_ms, r.erp.shape, r.labels.shape, r.depth.dtype))


def small_rig():
    from panoedge.synth.rig_render import synthetic_rig

    return synthetic_rig(128, seed=0)


class FlakySource(Source):
    """A camera that fails to open once, delivers, drops out twice, sends two corrupt frames, then ends.

    Script per read: frames (F), a lost read (None), an exception mid-stream (X), a corrupt
    decode (C), a frame of the wrong size (W). Unpaced, so no frame is dropped for being late.
    """

    scheme = "flaky"
    live = False

    SCRIPT = "FFFNFFXFFCFWFF"

    def __init__(self, rig):
        super().__init__("flaky://camera")
        self.rig = rig
        self.opens = 0
        self.pos = 0
        self.good = 0
        self.frame = np.full((*rig.frame_hw, 3), 90, dtype=np.uint8)

    def open(self):
        self.opens += 1
        if self.opens == 1:
            raise SourceError("camera not plugged in yet")

    def read(self):
        if self.pos >= len(self.SCRIPT):
            raise SourceEnded(self.uri)
        op = self.SCRIPT[self.pos]
        self.pos += 1
        if op == "N":
            return None
        if op == "X":
            raise OSError("device vanished")
        if op == "C":
            raise CorruptFrame("bad JPEG")
        if op == "W":
            return Captured(np.zeros((10, 10, 3), np.uint8), time.perf_counter(), self.pos)
        self.good += 1
        return Captured(self.frame, time.perf_counter(), self.pos)


# -- queues ---------------------------------------------------------------------------------------

def test_queue_drops_oldest_and_keeps_order():
    q = StageQueue(3, drop_oldest=True)
    for i in range(10):
        assert q.put(i)
    assert q.dropped == 7
    assert [q.get(timeout=0.1) for _ in range(3)] == [7, 8, 9]
    q.close()
    with pytest.raises(Closed):
        q.get(timeout=0.1)


def test_blocking_queue_loses_nothing_and_drains_on_close():
    q = StageQueue(1, drop_oldest=False)
    got = []

    def consume():
        while True:
            try:
                got.append(q.get(timeout=1.0))
            except Closed:
                return
            time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        assert q.put(i)
    q.close()
    t.join(5)
    assert got == list(range(50)) and q.dropped == 0
    assert not q.put(99)


def test_pacer_skips_ticks_a_late_reader_missed():
    p = Pacer(200.0)
    p.wait()
    time.sleep(0.05)  # ~10 ticks late
    _, k, missed = p.wait()
    assert missed >= 5 and k >= missed


# -- URIs ---------------------------------------------------------------------------------------

def test_uris_parse_and_fail_clearly(home, tmp_path):
    assert split_uri("synth://indoor?fps=30&n=4") == ("synth", "indoor", {"fps": "30", "n": "4"})
    assert split_uri("gst://v4l2src ! videoconvert ! appsink") == ("gst", "v4l2src ! videoconvert ! appsink", {})
    assert split_uri("frames/") == ("file", "frames/", {})
    with pytest.raises(UsageError, match="valid: .*synth://"):
        open_source("rtsp://camera")
    with pytest.raises(UsageError, match="unknown option"):
        open_source("synth://indoor?colour=1")
    with pytest.raises(UsageError, match="indoor"):
        open_source("synth://moon")
    with pytest.raises(UsageError, match="appsink"):
        open_source("gst://videotestsrc ! fakesink")
    with pytest.raises(UsageError, match="no such"):
        open_source(f"file://{tmp_path}/missing.mp4")
    from panoedge.live.sinks import open_sink

    with pytest.raises(UsageError, match="valid"):
        open_sink("ftp://x")
    with pytest.raises(UsageError, match="mp4"):
        open_sink(f"file://{tmp_path}/out.gif")


# -- the pipeline -------------------------------------------------------------------------------

def test_live_order_timestamps_and_report_shape(home):
    from panoedge.live.report import LiveAccuracy, LiveRunResult, make_report

    rec = Recorder()
    pipe = Pipeline(f"{SYNTH}&fps=60", fake_model(), [rec])
    with pipe:
        case = pipe.run(1.5, warmup_s=0.3)
        rep = make_report(LiveRunResult, pipe, {"concurrent": case}, {}, LiveAccuracy(live=pipe.accuracy_result()))
    rep = rep.to_dict()
    seqs = [it[0] for it in rec.items]
    t_cap = [it[1] for it in rec.items]
    t_wall = [it[2] for it in rec.items]
    assert len(seqs) > 20
    assert all(b > a for a, b in zip(seqs, seqs[1:])), "frames delivered out of order"
    assert all(b > a for a, b in zip(t_cap, t_cap[1:])) and all(b > a for a, b in zip(t_wall, t_wall[1:]))
    assert all(it[3] > 0 for it in rec.items)
    assert rec.items[0][4] == (*ERP_HW, 3) and rec.items[0][5] == ERP_HW
    assert case.frames.out_of_order == 0 and case.frames.corrupt == 0
    # CONVENTIONS.md report shape
    assert rep["schema"] == "panoedge.live/1" and "cpu" in rep["machine"] and "cores" in rep["machine"]
    c = rep["cases"]["concurrent"]
    assert list(rep) == ["schema", "machine", "source", "model", "erp_hw", "rig", "config", "threads", "cases", "ratios",
                         "accuracy", "sinks", "events"]  # the typed report writes the JSON it always did
    assert list(c) == ["fps", "latency_ms", "stages_ms", "duration_s", "frames", "dropped", "dropped_total", "memory",
                       "interrupted", "ended", "mode"]
    assert c["fps"] > 0 and set(c["latency_ms"]) >= {"min", "median", "p99"}
    assert c["latency_ms"]["min"] <= c["latency_ms"]["median"] <= c["latency_ms"]["p99"]
    assert set(c["stages_ms"]) == {"capture", "stitch", "infer", "post", "sinks"}
    assert isinstance(rep["ratios"], dict) and rep["erp_hw"] == list(ERP_HW)
    assert rep["accuracy"]["live"]["n_images"] > 0 and 0 <= rep["accuracy"]["live"]["miou_area"] <= 100


def test_faults_reconnect_with_backoff_and_skip_corrupt_frames():
    events = []
    src = FlakySource(small_rig())
    pipe = Pipeline(src, fake_model(), [rec := Recorder()], config=PipelineConfig(backoff_s=0.01, backoff_max_s=0.05),
                    on_event=events.append)
    with pipe:
        case = pipe.run(20.0)
    assert case.ended and not case.interrupted
    f = case.frames
    assert f.corrupt == 2, events
    assert f.disconnects == 2 and f.reconnects == 3, events  # failed first open + two losses
    assert f.delivered == src.good == len(rec.items), "an unpaced source must not lose frames"
    assert any("reconnected" in e for e in events) and any("cannot open" in e for e in events)
    assert case.dropped_total == 0


def test_folder_of_frames_skips_unreadable_ones(tmp_path):
    from panoedge.io import write_rgb

    rig = small_rig()
    frame = np.full((*rig.frame_hw, 3), 120, dtype=np.uint8)
    for i in range(3):
        write_rgb(tmp_path / f"f{i}.png", frame)
    (tmp_path / "f1b.png").write_bytes(b"not a png")  # between f1 and f2
    with Pipeline(f"file://{tmp_path}", fake_model(), [rec := Recorder()], rig=rig) as pipe:
        case = pipe.run(20.0)
    assert case.ended and case.frames.corrupt == 1 and case.frames.delivered == 3 == len(rec.items)


def test_video_file_source_paced_or_as_fast_as_taken(tmp_path):
    import cv2

    rig = small_rig()
    h, w = rig.frame_hw
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (w, h))
    for i in range(6):
        vw.write(np.full((h, w, 3), 40 * i, dtype=np.uint8))
    vw.release()
    with Pipeline(f"file://{path}?fps=0", fake_model(), [rec := Recorder()], rig=rig) as pipe:
        case = pipe.run(20.0)
    assert not pipe.source.live and case.ended and case.frames.delivered == 6 == len(rec.items)
    with Pipeline(f"file://{path}", fake_model(), rig=rig) as pipe:
        case = pipe.run(20.0)
    assert pipe.source.live and pipe.source.fps == pytest.approx(20.0) and case.ended
    assert case.duration_s >= 5 / 20.0  # paced at the file's own rate


def test_display_sink_explains_when_there_is_no_screen(monkeypatch):
    from panoedge.live.sinks import open_sink
    from tests.test_live_web import stream_info

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UsageError, match="web://"):
        open_sink("display://").open(stream_info())


def test_a_crashing_model_stops_the_run_with_its_error(home):
    class Broken(FakeRunner):
        def infer(self, feed):
            raise RuntimeError("GPU fell off")

    m = fake_model()
    m.runner = Broken()
    with Pipeline(f"{SYNTH}&fps=0", m) as pipe, pytest.raises(RuntimeError, match="GPU fell off"):
        pipe.run(5.0)


def test_bench_reports_concurrent_and_sequential(home):
    from panoedge.live.bench import bench_pipeline
    from panoedge.live.report import format_report

    rep = bench_pipeline(fake_model(), f"{SYNTH}&fps=0", duration_s=0.6, warmup_s=0.2)
    assert rep.to_dict()["schema"] == "panoedge.bench/1"
    assert set(rep.cases) == {"concurrent", "sequential"}
    for c in rep.cases.values():
        assert c.fps > 0 and c.frames.out_of_order == 0 and c.dropped_total == 0
    assert rep.ratios["concurrent_speedup"] > 0
    assert "concurrent_speedup" in format_report(rep) and "concurrent_speedup" in rep.format()


# -- a real ONNX model, the CLI and Ctrl-C ------------------------------------------------------

@pytest.fixture(scope="module")
def nano_onnx(tmp_path_factory) -> Path:
    """An untrained pano-nano (11 indoor classes) exported at 64x128."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from panoedge.models import create_student, export_student_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "nano64.onnx"
    return export_student_onnx(create_student("pano-nano", 11).eval(), path, ERP_HW)


def test_onnx_model_live_and_offline_accuracy(home, nano_onnx):
    from panoedge.live.run import run_live

    rep = run_live(nano_onnx, f"{SYNTH}&fps=0&loop=0", duration_s=30, warmup_s=0,
                   config=PipelineConfig(accuracy_fps=0))  # score every frame
    rep = rep.to_dict()
    c = rep["cases"]["concurrent"]
    assert c["ended"] and c["frames"]["delivered"] == 2
    assert rep["model"]["backend"] == "ort-cpu" and rep["model"]["input_hw"] == list(ERP_HW)
    acc = rep["accuracy"]
    assert acc["live"]["n_images"] == 2 and acc["offline"]["n_images"] == 2
    assert np.isfinite(acc["miou_area_delta"])


def test_a_pipeline_releases_the_model_it_loaded_but_not_one_it_was_given(home, nano_onnx):
    from panoedge.live.model import load_model
    from panoedge.live.run import build_pipeline

    with build_pipeline(nano_onnx, f"{SYNTH}&fps=0&loop=0") as pipe:
        pipe.run(1.0, warmup_s=0.0, concurrent=False)
        runner = pipe.model.runner
        assert not runner.closed
    assert runner.closed, "the runner a pipeline loaded is closed with it"
    with load_model(nano_onnx) as model:
        with build_pipeline(model, f"{SYNTH}&fps=0&loop=0"):
            pass
        assert not model.runner.closed, "a model passed in stays the caller's"
    assert model.runner.closed


def test_cli_run_stops_cleanly_on_ctrl_c_and_flushes_the_video(home, nano_onnx, tmp_path):
    import cv2

    out = tmp_path / "out.mp4"
    report = tmp_path / "run.json"
    env = {**os.environ, "PANOEDGE_HOME": str(home)}
    code = ("import sys, panoedge.cli.live; from panoedge.cli.app import app; "
            "app(args=sys.argv[1:], prog_name='panoedge', standalone_mode=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(nano_onnx), "--source", f"{SYNTH}&fps=30",
                             "--sink", f"file://{out}", "--warmup", "0", "--json", str(report)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # As from a terminal: a parent in the background (CI) may ignore SIGINT,
                            # and a child inherits that; Python only maps SIGINT to Ctrl-C when it is default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            partial = list(tmp_path.glob(".out.partial-*.mp4"))
            if partial and partial[0].stat().st_size > 20_000:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, text
    assert "interrupted" in text and "concurrent" in text
    assert out.is_file() and not list(tmp_path.glob(".out.partial-*"))
    cap = cv2.VideoCapture(str(out))
    ok, img = cap.read()
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert ok and img.shape == (ERP_HW[0], 3 * ERP_HW[1], 3) and n > 0
    import json

    rep = json.loads(report.read_text())
    assert rep["schema"] == "panoedge.live/1" and rep["command"].startswith("panoedge run")
    assert rep["cases"]["concurrent"]["interrupted"] is True


def test_live_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import panoedge.live, panoedge.live.web, "
            "panoedge.live.publisher, panoedge.live.accuracy, panoedge.live.synth_source, panoedge.cli.live")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_an_imu_gravity_hook_levels_the_live_stitch(home):
    from panoedge.geometry import rotation_angle
    from panoedge.stitch.level_hooks import GravityHook

    hook = GravityHook()
    hook.update([0.0, 0.9848, 0.1736])  # the rig is pitched by 10 degrees
    with Pipeline(f"{SYNTH}&fps=60", fake_model(), [Recorder()], gravity=hook) as pipe:
        pipe.run(0.6, warmup_s=0.1)
        r_out = pipe._stitcher.tables(hook.rotation()).r_out
    assert abs(np.degrees(rotation_angle(r_out @ pipe.rig.output_rotation.T)) - 10.0) < 0.2


def test_stream_types_and_uris_are_leaves_of_live():
    """Sources, sinks, the pipeline, the web viewer and the publisher stand on live/stream.py and
    live/uri.py, which import nothing else of live (lazy imports included), so no file cycles."""
    from tests.import_graph import build, file_cycles

    g = build()
    for leaf in ("panoedge.live.stream", "panoedge.live.uri"):
        assert not [e.target for e in g.edges if e.source == leaf and e.target.startswith("panoedge.live")]
    assert not [c for c in file_cycles(g) if any(m.startswith(("panoedge.live.", "panoedge.stitch.")) for m in c)]


def test_sources_and_sinks_register_by_scheme_and_unknown_ones_list_the_valid():
    from panoedge.live import register_sink, register_source
    from panoedge.live.sinks import open_sink
    from panoedge.live.uri import SINKS, SOURCES

    assert {"v4l2", "gst", "file", "synth"} <= set(SOURCES) and {"display", "file", "web", "zmq"} <= set(SINKS)
    with pytest.raises(UsageError, match="synth://"):
        open_source("nosuch://x")
    with pytest.raises(UsageError, match="web://"):
        open_sink("nosuch://x")

    @register_sink("test-recorder")
    class _Rec(Recorder):
        def __init__(self, uri):
            super().__init__()

    try:
        with open_sink("test-recorder://x") as sink:  # sinks are context managers
            assert isinstance(sink, _Rec)
        with pytest.raises(RuntimeError, match="registered twice"):
            register_sink("test-recorder")(Recorder)
    finally:
        SINKS.pop("test-recorder", None)
    with pytest.raises(TypeError):
        register_source()

