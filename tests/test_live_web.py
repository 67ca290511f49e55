"""The web viewer (endpoints, token, headless Chromium) and the ZeroMQ publisher."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from panoedge.live.sinks import Result, StreamInfo

ERP_HW = (64, 128)
SYNTH = "synth://indoor?size=128x256&n=2&gt=64x128"


def stream_info() -> StreamInfo:
    from panoedge.synth.world import class_colors, class_names

    return StreamInfo(erp_hw=ERP_HW, classes=list(class_names("indoor")), colors=class_colors("indoor"), fps=30.0,
                      source={"uri": "test://"}, model={"name": "test"},
                      stats=lambda: {"fps": 1.0, "delivered": 1, "latency_ms": {"p50": 1.0, "p99": 2.0}},
                      log=lambda msg: None)


def result(seq: int) -> Result:
    rng = np.random.default_rng(seq)
    erp = rng.integers(0, 255, (*ERP_HW, 3), dtype=np.uint8)
    labels = rng.integers(0, 11, ERP_HW, dtype=np.uint8)
    depth = rng.uniform(0.5, 9.0, ERP_HW).astype(np.float32)
    depth[0, :5] = 0.0
    return Result(seq, time.perf_counter(), time.time(), erp, labels, depth, None, seq, 12.5)


def get(url: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


# -- web endpoints and the token ----------------------------------------------------------------

def test_remote_viewer_refuses_requests_without_its_token():
    from panoedge.live.web import WebSink

    sink = WebSink("web://0.0.0.0:0?token=s3cret")
    sink.open(stream_info())
    try:
        sink.deliver(result(0))
        base = f"http://127.0.0.1:{sink.port}"
        for path in ("/", "/stats.json", "/meta.json", "/frame.jpg?view=overlay"):
            assert get(base + path)[0] == 401, path
        assert get(base + "/?token=wrong")[0] == 401
        code, body, _ = get(base + "/?token=s3cret")
        assert code == 200 and b"panoedge live" in body
        code, body, headers = get(base + "/frame.jpg?view=depth", {"Authorization": "Bearer s3cret"})
        assert code == 200 and body[:2] == b"\xff\xd8" and headers["X-Frame-Seq"] == "0"
        assert get(base + "/meta.json", {"X-Panoedge-Token": "s3cret"})[0] == 200
    finally:
        sink.close()
    generated = WebSink("web://0.0.0.0:0")
    assert generated.token and generated.remote, "a remote viewer without a token gets a generated one"


def test_local_viewer_endpoints():
    import cv2

    from panoedge.live.web import WebSink

    sink = WebSink("web://127.0.0.1:0?fps=100")
    sink.open(stream_info())
    try:
        base = f"http://127.0.0.1:{sink.port}"
        assert sink.frame("overlay", -1, wait_s=0.1) is None  # nothing yet
        sink.deliver(result(3))
        meta = json.loads(get(base + "/meta.json")[1])
        assert meta["hw"] == list(ERP_HW) and len(meta["classes"]) == len(meta["colors"]) == 11
        stats = json.loads(get(base + "/stats.json")[1])
        assert stats["fps"] == 1.0
        for view in ("overlay", "rgb", "labels", "depth"):
            code, body, headers = get(f"{base}/frame.jpg?view={view}&after=-1")
            img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert code == 200 and img.shape == (*ERP_HW, 3) and headers["X-Frame-Seq"] == "3", view
        assert get(base + "/frame.jpg?view=nope")[0] == 400
        assert get(base + "/missing")[0] == 404
        # a newer frame is served to a client that has seen seq 3
        threading.Timer(0.1, lambda: sink.deliver(result(4))).start()
        code, _, headers = get(f"{base}/frame.jpg?view=overlay&after=3")
        assert code == 200 and headers["X-Frame-Seq"] == "4"
    finally:
        sink.close()


# -- the page in headless Chromium --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wd(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["value"]


def test_viewer_shows_live_frames_in_headless_chromium(tmp_path, monkeypatch):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless viewer test needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
    from panoedge.live.pipeline import Pipeline
    from tests.test_live_pipeline import fake_model

    monkeypatch.setenv("PANOEDGE_HOME", str(tmp_path / "home"))
    pipe = Pipeline(f"{SYNTH}&fps=30", fake_model(), ["web://127.0.0.1:0"])
    pipe.open()
    runner = threading.Thread(target=pipe.run, kwargs={"duration_s": 60.0})
    runner.start()
    port = _free_port()
    wd = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    session = None
    try:
        for _ in range(100):
            try:
                _wd(base, "GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1000,800"]
        session = _wd(base, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}})["sessionId"]
        url = pipe.sinks[0].url
        _wd(base, "POST", f"/session/{session}/url", {"url": url})
        probe = ("const e = document.getElementById('erp'), d = document.getElementById('depth');"
                 "return {frames: parseInt(document.getElementById('frames').textContent || '0'),"
                 " shown: parseInt(document.getElementById('shown').textContent || '0'),"
                 " erp: e.naturalWidth, depth: d.naturalWidth, legend: document.querySelectorAll('.legend-item').length,"
                 " fps: document.getElementById('fps').textContent, status: document.getElementById('status').textContent};")
        state = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            state = _wd(base, "POST", f"/session/{session}/execute/sync", {"script": probe, "args": []})
            if state["frames"] > 0 and state["shown"] > 1 and state["erp"] > 0 and state["depth"] > 0:
                break
            time.sleep(0.3)
        assert state.get("frames", 0) > 0, state
        assert state["shown"] > 1 and state["erp"] == ERP_HW[1] and state["depth"] == ERP_HW[1], state
        assert state["legend"] == 11 and state["status"] == "live", state
    finally:
        if session:
            try:
                _wd(base, "DELETE", f"/session/{session}")
            except (urllib.error.URLError, ConnectionError):
                pass
        wd.terminate()
        wd.wait(10)
        pipe.stop()
        runner.join(30)
        pipe.close()


# -- the ZeroMQ publisher -----------------------------------------------------------------------

@pytest.mark.parametrize("depth_format", ["f16", "mm"])
def test_zmq_publisher_round_trip(depth_format):
    pytest.importorskip("zmq")
    from panoedge.live.publisher import SCHEMA, Subscriber, ZmqPublisher

    port = _free_port()
    pub = ZmqPublisher(f"zmq://127.0.0.1:{port}?depth={depth_format}&rgb=1")
    pub.open(stream_info())
    try:
        with Subscriber(f"zmq://127.0.0.1:{port}") as sub:
            msg = None
            for seq in range(200):  # a SUB socket joins late: publish until it hears
                r = result(seq)
                pub.deliver(r, concurrent=False)
                msg = sub.recv(timeout_s=0.05)
                if msg is not None:
                    break
            assert msg is not None, "no message received"
    finally:
        pub.close()
    h = msg["header"]
    sent = result(h["seq"])
    assert h["schema"] == SCHEMA and h["hw"] == list(ERP_HW) and len(h["classes"]) == 11
    assert h["t_publish"] >= h["t_capture"] and h["latency_ms"] == 12.5
    np.testing.assert_array_equal(msg["labels"], sent.labels)
    tol = 1e-3 if depth_format == "mm" else 5e-3
    np.testing.assert_allclose(msg["depth"], sent.depth, rtol=tol, atol=1e-3)
    assert msg["depth"][0, 0] == 0.0 and msg["rgb"][:2] == b"\xff\xd8"


def test_ros2_bridge_example_decodes_the_wire_format():
    """examples/ros2_bridge.py carries its own decoder (no panoedge on the ROS side): it must agree."""
    import importlib.util
    from pathlib import Path

    from panoedge.live.publisher import encode_message

    path = Path(__file__).resolve().parents[1] / "examples" / "ros2_bridge.py"
    spec = importlib.util.spec_from_file_location("ros2_bridge", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # rclpy is imported only inside main()
    r = result(7)
    for fmt in ("f16", "mm"):
        m = mod.decode(encode_message(r, ["a"] * 11, fmt, jpeg=b"\xff\xd8jpeg"))
        np.testing.assert_array_equal(m["labels"], r.labels)
        np.testing.assert_allclose(m["depth"], r.depth, rtol=5e-3, atol=1e-3)
        assert m["jpeg"] == b"\xff\xd8jpeg" and m["header"]["seq"] == 7
