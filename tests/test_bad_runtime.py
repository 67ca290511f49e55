"""Failing sources, hostile clients, killed processes: what the robot side does when things go wrong.

Replays of issue 15's findings on tiny inputs: orphaned workers, folder and video sources,
FIFOs and devices that never deliver, NaN in reports, the web viewer's Host check, connection
cap and HEAD, ZeroMQ CURVE beyond loopback, Ctrl-C during training, stale ``.partial`` folders.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from panoedge.errors import UsageError
from tests.test_live_pipeline import SYNTH, home, shared_home  # noqa: F401  (fixtures: one synthetic loop cache)

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- worker processes --------------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_synth_workers_die_with_a_killed_parent(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "toolkit"), "OMP_NUM_THREADS": "2", "PANOEDGE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "panoedge.cli", "synth", str(tmp_path / "ds"), "--n", "400",
                             "--size", "64x128"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in _children(proc.pid)
                       if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
            if len(workers) >= 2 and any(tmp_path.glob(".ds*/rgb/*.png")):  # the workers are rendering
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("synth finished before its workers could be seen (one core?)")
        assert workers, "no worker process started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"workers outlived their killed parent: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_process_pool_terminates_workers_when_the_caller_stops(tmp_path):
    from panoedge.parallel import pool_map, process_pool

    with pytest.raises(KeyboardInterrupt):
        with process_pool(2) as pool:
            for i, _ in enumerate(pool_map(pool, time.sleep, [0.0, 0.0, 30.0, 30.0])):
                if i == 1:
                    procs = list(pool._processes.values())
                    raise KeyboardInterrupt  # what Ctrl-C or SIGTERM (the CLI maps it) does mid-run
    for p in procs:
        p.join(timeout=10)
        assert not p.is_alive()


# -- Ctrl-C during training, stale .partial folders ---------------------------------------------

def test_first_stop_signal_is_deferred_second_interrupts():
    from panoedge.signals import deferred_interrupt

    # A parent in the background (a CI runner, `cmd &`) may hand us SIGINT ignored; start from Python's default.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _deferred_then_interrupted(deferred_interrupt)
    finally:
        signal.signal(signal.SIGINT, inherited)


def _deferred_then_interrupted(deferred_interrupt):
    with deferred_interrupt() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.requested and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_distillation_saves_and_says_how_to_resume(tmp_path, monkeypatch):
    from panoedge.distill import trainer
    from panoedge.errors import Interrupted
    from tests.test_distill_run import _cfg, _teacher

    teacher = _teacher(tmp_path / "teacher")
    cfg = _cfg(teacher, steps=4, generations=1, bismap=False, consistency=False)
    real = trainer.step_loss
    calls = []

    def step_then_ctrl_c(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: the step finishes, then it saves
        return real(*a, **k)

    monkeypatch.setattr(trainer, "step_loss", step_then_ctrl_c)
    with pytest.raises(Interrupted, match=r"SIGINT at step 2 of 4: checkpoint saved to .*ckpt.pt; run the same command"):
        trainer.distill(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "ckpt.pt").is_file() and not (tmp_path / "run" / "student.pt").exists()
    monkeypatch.setattr(trainer, "step_loss", real)
    res = trainer.distill(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "student.pt").is_file() and res.report.train.steps == 4


def test_ctrl_c_during_teacher_training_saves_and_says_how_to_resume(tmp_path, monkeypatch):
    import torch

    from panoedge.distill import teacher_train
    from panoedge.errors import Interrupted
    from tests.test_teacher_train import _cfg

    real, calls = teacher_train._loss, []

    def loss_then_ctrl_c(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(teacher_train, "_loss", loss_then_ctrl_c)
    with pytest.raises(Interrupted, match=r"SIGINT at step 2 of 6: checkpoint saved to .*ckpt.pt"):
        teacher_train.train_teacher(_cfg(ckpt_every=100, n_views=2), tmp_path / "t", progress=False)
    assert torch.load(tmp_path / "t" / "ckpt.pt", weights_only=True)["step"] == 2


def test_stale_partial_folders_are_removed_on_the_next_write(tmp_path):
    from panoedge.home import atomic_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.{dead.pid}-abcd.partial"
    live = tmp_path / f".out.{os.getpid()}-efgh.partial"
    legacy = tmp_path / ".out.zz9k1x.partial"
    for d in (stale, live, legacy):
        d.mkdir()
        (d / "half.bin").write_bytes(b"x")
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "done").write_text("1")
    assert not stale.exists() and not legacy.exists() and live.exists()
    assert (tmp_path / "out" / "done").is_file()


# -- reports -----------------------------------------------------------------------------------

def test_reports_are_strict_json(tmp_path):
    from panoedge.home import write_json

    write_json(tmp_path / "r.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None, 1.5], "c": 3}


# -- sources -----------------------------------------------------------------------------------

def _frames(folder: Path, n: int) -> list[Path]:
    from panoedge.io import write_rgb

    folder.mkdir(parents=True, exist_ok=True)
    return [write_rgb(folder / f"f{i:02d}.png", np.full((8, 16, 3), i * 10, np.uint8)) for i in range(n)]


def test_folder_source_rescans_and_skips_vanished_files(tmp_path):
    from panoedge.live.sources import FolderSource, SourceEnded, SourceFailed

    files = _frames(tmp_path / "f", 3)
    src = FolderSource(f"file://{tmp_path / 'f'}?loop=1")
    src.open()
    assert src.read().image[0, 0, 0] == 0
    files[1].unlink()  # deleted during the run: skipped, not "corrupt"
    assert src.read().image[0, 0, 0] == 20
    _frames(tmp_path / "f", 5)[4]  # files appear: the next pass sees them
    seen = [int(src.read().image[0, 0, 0]) for _ in range(5)]
    assert seen == [0, 10, 20, 30, 40]
    for p in (tmp_path / "f").iterdir():
        p.unlink()
    with pytest.raises(SourceFailed, match="no image files left"):
        for _ in range(6):
            src.read()
    once = FolderSource(f"file://{tmp_path / 'g'}") if _frames(tmp_path / "g", 2) else None
    once.open()
    once.read()
    _frames(tmp_path / "g", 3)  # f02 added after the scan: delivered before the end
    assert once.read().image[0, 0, 0] == 10 and once.read().image[0, 0, 0] == 20
    with pytest.raises(SourceEnded):
        once.read()


def test_damaged_video_is_an_error_not_an_end(tmp_path):
    import cv2

    from panoedge.live.sources import CvSource, SourceEnded, SourceFailed

    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 16))
    for i in range(40):
        w.write(np.full((16, 32, 3), i * 5, np.uint8))
    w.release()
    whole = path.read_bytes()

    def frames(uri):
        src = CvSource(uri)
        src.prepare()
        src.open()
        n = 0
        try:
            while True:
                if src.read() is not None:
                    n += 1
        finally:
            src.close()
        return n

    with pytest.raises(SourceEnded):
        frames(f"file://{path}?fps=0")
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceFailed, match=r"damaged: decoding stopped at frame \d+ of the 40"):
        frames(f"file://{path}?fps=0")


def test_video_declaring_frames_above_the_pixel_budget_is_refused(tmp_path, monkeypatch):
    import cv2

    from panoedge.live.pipeline import Pipeline
    from panoedge.live.sources import SourceFailed
    from tests.test_live_pipeline import fake_model, small_rig

    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (256, 128))
    for _ in range(3):
        w.write(np.zeros((128, 256, 3), np.uint8))
    w.release()
    monkeypatch.setenv("PANOEDGE_MAX_IMAGE_PIXELS", "1000")
    with Pipeline(f"file://{path}?fps=0", fake_model(), rig=small_rig()) as pipe:
        with pytest.raises(SourceFailed, match="256x128 pixels .* above the pixel budget"):
            pipe.run(duration_s=30)


def test_fifo_and_non_device_paths_are_refused(tmp_path):
    from panoedge.live.sources import open_source

    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        open_source(f"file://{fifo}")
    with pytest.raises(UsageError, match="not a camera device"):
        open_source(f"v4l2://{fifo}")


def test_a_source_that_never_delivers_times_out_and_the_run_fails(tmp_path):
    from panoedge.live.pipeline import Pipeline
    from panoedge.live.sources import Source, SourceError, SourceFailed
    from tests.test_live_pipeline import fake_model, small_rig

    class Absent(Source):
        scheme, live, first_frame_timeout_s = "absent", True, 0.5

        def open(self):
            raise SourceError("no such device /dev/video99")

        def read(self):
            return None

    with Pipeline(Absent("absent://"), fake_model(), rig=small_rig()) as pipe:
        with pytest.raises(SourceFailed, match=r"absent://: no frame in 0.5 s \(cannot open: no such device"):
            pipe.run(duration_s=30)


def test_a_run_that_delivered_no_frame_is_an_error(tmp_path):
    from panoedge.live.run import run_live
    from panoedge.live.sources import SourceFailed
    from panoedge.stitch.rig import save_rig
    from tests.test_live_pipeline import fake_model, small_rig

    rig = save_rig(small_rig(), tmp_path / "rig.yaml")
    with pytest.raises(SourceFailed, match=r"v4l2:///dev/video99: the run delivered no frame \(cannot open"):
        run_live(fake_model(), "v4l2:///dev/video99", [], duration_s=0.5, warmup_s=0.0, rig=rig)


# -- the web viewer and the publisher ------------------------------------------------------------

def _request(port: int, method: str, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def _wait_for(condition, deadline_s: float = 20.0) -> None:
    """Poll a server-side condition (a busy CI machine can take a while to run the handler threads)."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "the viewer did not reach the expected connection count"
        time.sleep(0.02)


@pytest.fixture
def viewer():
    from panoedge.live.web import WebSink
    from tests.test_live_web import stream_info as _info

    sink = WebSink("web://127.0.0.1:0?clients=2")
    sink.open(_info())
    yield sink
    sink.close()


def test_viewer_checks_host_answers_head_without_body_and_caps_connections(viewer):
    port = viewer.port
    assert _request(port, "GET", "/meta.json", f"127.0.0.1:{port}")[0] == 200
    assert _request(port, "GET", "/meta.json", f"localhost:{port}")[0] == 200
    status, _ = _request(port, "GET", "/meta.json", f"evil.example:{port}")  # DNS rebinding
    assert status == 421
    status, body = _request(port, "HEAD", "/", f"127.0.0.1:{port}")
    assert status == 200 and body == b""
    _wait_for(lambda: viewer.open_connections == 0)  # the handler threads of the requests above have ended
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        _wait_for(lambda: viewer.open_connections == 2)
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(5)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for s in idle:
            s.close()
    _wait_for(lambda: viewer.open_connections == 0)
    assert _request(port, "GET", "/stats.json", f"127.0.0.1:{port}")[0] == 200
    assert viewer.describe()["refused_connections"] >= 1


def test_host_rules():
    from panoedge.live.web import host_allowed

    assert host_allowed("127.0.0.1:8080", "127.0.0.1") and host_allowed("[::1]:80", "127.0.0.1")
    assert not host_allowed("attacker.example:8080", "127.0.0.1") and not host_allowed(None, "127.0.0.1")
    assert host_allowed("192.168.1.7:8080", "0.0.0.0") and not host_allowed("rebind.example", "0.0.0.0")
    assert host_allowed("10.0.0.2", "10.0.0.2") and not host_allowed("10.0.0.3", "10.0.0.2")


def test_zmq_beyond_loopback_needs_curve_and_refuses_unknown_clients(tmp_path):
    zmq = pytest.importorskip("zmq")
    import zmq.auth

    from panoedge.live.publisher import Subscriber, ZmqPublisher
    from tests.test_live_web import stream_info as _info

    with pytest.raises(UsageError, match="beyond loopback needs ZeroMQ CURVE"):
        ZmqPublisher("zmq://0.0.0.0:5599")
    ZmqPublisher("zmq://127.0.0.1:5599")  # loopback stays plain
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys), "robot")
    zmq.auth.create_certificates(str(keys), "stranger")
    (allowed / "robot.key").write_bytes((keys / "robot.key").read_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pub = ZmqPublisher(f"zmq://0.0.0.0:{port}?curve={keys / 'server.key_secret'}&clients={allowed}")
    pub.open(_info())
    try:
        from panoedge.live.sinks import Result

        erp = np.zeros((8, 16, 3), np.uint8)
        result = Result(seq=0, t_capture=time.perf_counter(), t_wall=time.time(), erp=erp,
                        labels=np.zeros((8, 16), np.uint8), depth=np.ones((8, 16), np.float32))
        good = Subscriber(f"tcp://127.0.0.1:{port}", server_key=keys / "server.key", client_key=keys / "robot.key_secret")
        bad = Subscriber(f"tcp://127.0.0.1:{port}", server_key=keys / "server.key",
                         client_key=keys / "stranger.key_secret")
        plain = Subscriber(f"tcp://127.0.0.1:{port}")
        got = None
        for _ in range(40):  # PUB/SUB: the subscription needs a moment to arrive
            pub.process(result)
            got = good.recv(timeout_s=0.1)
            if got is not None:
                break
        assert got is not None and got["labels"].shape == (8, 16)
        for _ in range(5):
            pub.process(result)
        assert bad.recv(timeout_s=0.3) is None and plain.recv(timeout_s=0.3) is None
        for s in (good, bad, plain):
            s.close()
    finally:
        pub.close()


def test_soak_runs_under_hostile_clients_and_reports_them(home):
    """The benchmark's soak, very short (its figures are for `panoedge bench soak`, not asserted here)."""
    from panoedge.live.soak import soak
    from tests.test_live_pipeline import fake_model

    rep = soak(fake_model(), duration_s=1.0, warmup_s=0.3, frames_from=SYNTH)
    h, frames = rep.hostile, rep.case.frames.to_dict()
    assert h["rebinding_requests"] > 0 and h["rebinding_served"] == 0 and h["head_bodies"] == 0
    assert frames["delivered"] > 0 and frames["out_of_order"] == 0 and frames["corrupt"] > 0
