"""``panoedge bench soak``: the live pipeline under hostile clients and a faulty source.

A short soak, not a timed test: it runs a model for ``duration_s`` on a paced folder of
synthetic dual-fisheye frames while

- the folder changes under it: frames are deleted and put back, a corrupt file and a
  decompression bomb (a PNG header declaring 40000x20000) sit among them;
- the web viewer (``web://127.0.0.1:0?clients=16``) gets DNS-rebinding requests (a foreign
  ``Host``), ``HEAD`` requests, a flood of idle connections beyond its cap and slowloris
  clients that never finish their headers;
- a ZeroMQ subscriber connects to the publisher and never reads.

The report (``panoedge.bench/1``, case ``soak``) has the pipeline's usual figures (fps, latency
min/median/p99, out-of-order frames, corrupt frames skipped, resident memory at start and end)
and ``hostile``: what the clients got (rebinding requests served must be 0, HEAD bodies 0,
connections refused by the cap). Compare ``cases.soak`` with ``panoedge bench pipeline`` on the
same machine to see what the hostility costs.
"""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from panoedge.live.pipeline import PipelineConfig
from panoedge.live.report import PipelineReport, make_report
from panoedge.live.stats import Case
from panoedge.live.run import build_pipeline, sigterm_as_interrupt
from panoedge.results import json_field

SCHEMA = "panoedge.bench/1"
SOAK_SOURCE = "synth://indoor?size=512x1024&n=8"
"""Where the soak's frames come from (rendered once, cached); 512x1024 keeps a 2-core CPU near real time."""
SOAK_FPS = 15.0
"""The paced folder's frame rate: a camera's half rate, which a 2-core CPU keeps up with at 512x1024."""
FLOOD_SOCKETS = 40
"""Idle connections opened at once: well beyond the viewer's cap of 16 in the soak."""
WEB_CAP = 16
"""The web viewer's connection cap in the soak (``clients=``): small, so the flood overruns it."""
CHURN_PERIOD_S = 0.3
"""Seconds between deleting one frame of the source folder and the next."""
CHURN_GONE_S = 0.4
"""Seconds a deleted frame stays away before it is put back."""
WEB_PROBE_S = 0.05
"""Seconds between the rebinding/HEAD probes of the web viewer."""
FLOOD_HOLD_S = 2.0
"""Seconds a flood of idle connections is held open before it is closed and opened again."""

__all__ = ["SCHEMA", "SoakResult", "soak"]


@dataclass(frozen=True)
class SoakResult(PipelineReport):
    """``panoedge bench soak``'s report: the pipeline report with case ``soak`` and ``hostile``, what the
    misbehaving clients got (see the module docstring)."""

    SCHEMA: ClassVar[str] = SCHEMA

    hostile: dict = json_field(default_factory=dict)

    @property
    def case(self) -> Case:
        return self.cases["soak"]

    def format(self) -> str:
        m, mod, c, h = self.machine, self.model, self.case, self.hostile
        head = (f"{m['cpu']}, {m['cores']} cores; {mod['name']} {mod['backend']}; "
                f"{self.duration_s:g} s after {self.warmup_s:g} s warm-up")
        tail = (f"hostile: {h['rebinding_requests']} rebinding requests ({h['rebinding_served']} served), "
                f"{h['head_requests']} HEAD ({h['head_bodies']} with a body), {h['flood_connections']} flood/slowloris "
                f"connections ({h['flood_refused_503']} refused with 503), {h['files_deleted']} frames deleted mid-run; "
                f"out of order {c.frames.out_of_order}, corrupt frames skipped {c.frames.corrupt}")
        return "\n".join([head, self.table(), tail])


def _bomb_png(path: Path, w: int = 40000, h: int = 20000) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _frames_folder(folder: Path, frames_from: str) -> Path:
    """Synthetic dual-fisheye frames in ``folder`` (plus a corrupt file and a bomb); returns the rig file."""
    from panoedge.live.synth_source import SynthSource

    src = SynthSource(frames_from)
    src.prepare()  # renders the loop once (cached under $PANOEDGE_HOME)
    cache = src.cache_path
    for p in sorted(cache.glob("frame_*.png")):
        shutil.copyfile(p, folder / p.name)
    (folder / "frame_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    _bomb_png(folder / "frame_zbomb.png")
    return cache / "rig.yaml"


class _Hostile:
    """Background threads that misbehave against the sinks and the source folder until stopped."""

    def __init__(self, folder: Path, web_port: int | None, zmq_endpoint: str | None):
        self.folder, self.web_port, self.zmq_endpoint = folder, web_port, zmq_endpoint
        self.stop = threading.Event()
        self.counts = {"rebinding_requests": 0, "rebinding_served": 0, "head_requests": 0, "head_bodies": 0,
                       "flood_connections": 0, "flood_refused_503": 0, "slowloris_sockets": 0,
                       "files_deleted": 0, "zmq_idle_subscriber": False}
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._churn, self._web, self._flood)]

    def __enter__(self):
        if self.zmq_endpoint:
            import zmq

            self._sub = zmq.Context.instance().socket(zmq.SUB)
            self._sub.setsockopt(zmq.SUBSCRIBE, b"")
            self._sub.setsockopt(zmq.LINGER, 0)
            self._sub.connect(self.zmq_endpoint)  # and never reads
            self.counts["zmq_idle_subscriber"] = True
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)
        if self.zmq_endpoint:
            self._sub.close(linger=0)

    def _churn(self) -> None:
        """Delete a frame and put it back, over and over (the folder source must skip, not fail)."""
        frames = sorted(self.folder.glob("frame_0*.png"))
        i = 0
        while not self.stop.wait(CHURN_PERIOD_S) and frames:
            p = frames[i % len(frames)]
            blob = p.read_bytes()
            p.unlink()
            self.counts["files_deleted"] += 1
            self.stop.wait(CHURN_GONE_S)
            p.write_bytes(blob)
            i += 1

    def _request(self, method: str, host: str) -> tuple[int, bytes] | None:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=3)
            conn.putrequest(method, "/meta.json", skip_host=True)
            conn.putheader("Host", host)
            conn.endheaders()
            r = conn.getresponse()
            body = r.read()
            conn.close()
            return r.status, body
        except OSError:
            return None

    def _web(self) -> None:
        if self.web_port is None:
            return
        while not self.stop.wait(WEB_PROBE_S):
            got = self._request("GET", f"rebind.attacker.example:{self.web_port}")
            self.counts["rebinding_requests"] += 1
            if got is not None and got[0] == 200:
                self.counts["rebinding_served"] += 1
            got = self._request("HEAD", f"127.0.0.1:{self.web_port}")
            self.counts["head_requests"] += 1
            if got is not None and got[1]:
                self.counts["head_bodies"] += 1

    def _flood(self) -> None:
        if self.web_port is None:
            return
        socks = []
        while not self.stop.is_set():
            for _ in range(FLOOD_SOCKETS):
                if self.stop.is_set():
                    break
                try:
                    s = socket.create_connection(("127.0.0.1", self.web_port), timeout=2)
                    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # slowloris: headers never finish
                    socks.append(s)
                    self.counts["flood_connections"] += 1
                    self.counts["slowloris_sockets"] += 1
                except OSError:
                    pass
            for s in socks:
                if self.stop.is_set():
                    break
                s.settimeout(0.02)
                try:
                    if s.recv(64).startswith(b"HTTP/1.1 503"):
                        self.counts["flood_refused_503"] += 1
                except OSError:
                    pass
            self.stop.wait(FLOOD_HOLD_S)
            for s in socks:
                s.close()
            socks.clear()


def soak(model, duration_s: float = 20.0, warmup_s: float = 2.0, backend: str | None = None,
         precision: str | None = None, threads: int | None = None, on_event=None,
         frames_from: str = SOAK_SOURCE) -> SoakResult:
    """Run ``model`` (bundle, ``.onnx`` or a LiveModel) for ``duration_s`` under the module docstring's
    hostility; returns the ``panoedge.bench/1`` report with case ``soak`` and ``hostile`` counters.
    ``frames_from``: the ``synth://`` loop whose dual-fisheye frames fill the source folder."""
    import importlib.util

    sinks = [f"web://127.0.0.1:0?clients={WEB_CAP}"]
    zmq_port = None
    if importlib.util.find_spec("zmq") is not None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            zmq_port = s.getsockname()[1]
        sinks.append(f"zmq://127.0.0.1:{zmq_port}")
    with tempfile.TemporaryDirectory(prefix="panoedge-soak-") as tmp:
        folder = Path(tmp)
        rig = _frames_folder(folder, frames_from)
        source = f"file://{folder}?fps={SOAK_FPS:g}&loop=1"
        pipe = build_pipeline(model, source, sinks, rig, backend=backend, precision=precision, threads=threads,
                              config=PipelineConfig(accuracy=False), on_event=on_event)
        with sigterm_as_interrupt(), pipe:
            pipe.open()
            web_port = getattr(pipe.sinks[0], "port", None)
            with _Hostile(folder, web_port, f"tcp://127.0.0.1:{zmq_port}" if zmq_port else None) as hostile:
                t0 = time.perf_counter()
                case = pipe.run(duration_s, warmup_s=warmup_s, concurrent=True)
                case = replace(case, warmup_s=warmup_s, wall_s=round(time.perf_counter() - t0, 2))
        return make_report(SoakResult, pipe, {"soak": case}, ratios={}, hostile=dict(hostile.counts), warmup_s=warmup_s,
                           duration_s=duration_s)
