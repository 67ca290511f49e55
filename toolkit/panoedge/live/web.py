"""``web://HOST:PORT``: the live viewer, served with the standard library.

``web://127.0.0.1:8080`` (default host loopback; ``web://0.0.0.0:8080`` for a phone on the
robot's network). Options: ``token=SECRET`` (required from every request when given; a server
bound beyond loopback without one gets a random token, printed in its URL), ``fps=15`` (the
most JPEGs per second and view it encodes), ``quality=80`` (JPEG quality), ``clients=128``
(connections served at once; more get ``503``).

A viewer without a token (loopback by default) refuses with ``421`` every request whose
``Host`` header does not name its bound address (only ``localhost``/``127.0.0.1``/``[::1]`` for
loopback), so a web page on another site cannot reach it by re-pointing its own DNS name at
127.0.0.1 (DNS rebinding); with a token the token is what keeps such pages out, and any host
name (``robot.local``) works. ``HEAD`` gets the headers without a body.

The page (``web_page.html``) shows the ERP with the segmentation overlay (or the plain camera
view or the class colours), the depth colour map, a legend and the live stats. Endpoints:

==================================  ==============================================================
``/``                               the page
``/meta.json``                      classes with colours, ERP size, source, model
``/stats.json``                     the pipeline's live figures (fps, latency p50/p99, per stage ms,
                                    frames, dropped, corrupt, reconnects)
``/frame.jpg?view=V&after=SEQ``     the newest frame newer than ``SEQ`` as JPEG (waits up to 2 s,
                                    then ``204``); ``V``: ``overlay``, ``rgb``, ``labels``, ``depth``;
                                    headers ``X-Frame-Seq``, ``X-Latency-Ms``
``/stream.mjpg?view=V``             the same as a ``multipart/x-mixed-replace`` MJPEG stream
==================================  ==============================================================

The token is accepted as ``?token=``, ``Authorization: Bearer TOKEN`` or ``X-Panoedge-Token``;
anything else gets ``401``. JPEGs are encoded on demand by the request threads and shared by
every client, so an unwatched viewer costs the pipeline nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

from panoedge.errors import UsageError
from panoedge.live.stream import FrameResult, Sink, StreamInfo
from panoedge.live.uri import check_params, param_float, register_sink, split_uri
from panoedge.live.views import DepthColors, encode_jpeg, label_lut, overlay

__all__ = ["VIEWS", "WebSink", "parse_host_port"]

VIEWS = ("overlay", "rgb", "labels", "depth")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WAIT_S = 2.0
MAX_CLIENTS = 128
"""Connections served at once by default: a thread each (keep-alive polling holds one per viewer);
bounded so a flood of sockets cannot exhaust threads or memory. ``clients=`` changes it."""


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request's ``Host`` header names the address the server is bound to.

    Loopback binding: only loopback names. A specific address: that address. All interfaces
    (``0.0.0.0``/``::``): any IP literal or ``localhost`` (a name could be a rebinding attacker's;
    such servers require a token anyway)."""
    if not header:
        return False
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    bound = bound.lower()
    if bound in LOOPBACK:
        return host in LOOPBACK
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if bound in ("0.0.0.0", "::", ""):
        return literal or host == "localhost"
    return host == bound


def parse_host_port(uri: str, rest: str, default_port: int = 8080) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; host defaults to ``127.0.0.1``, port 0 picks a free one."""
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep:
        host, port = rest.rstrip("/"), str(default_port)
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"{uri}: expected web://HOST:PORT, e.g. web://127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


@register_sink("web")
class WebSink(Sink):
    """The ``web://`` sink: an HTTP server in a background thread (see the module docstring)."""

    scheme = "web"
    queue_size = 1
    KEYS = ("token", "fps", "quality", "clients")

    def __init__(self, uri: str):
        super().__init__(uri)
        _, rest, params = split_uri(uri)
        check_params(uri, params, self.KEYS)
        self.host, self.port = parse_host_port(uri, rest)
        self.remote = self.host not in LOOPBACK
        self.token = params.get("token") or None
        self.generated_token = False
        if self.remote and not self.token:
            self.token = secrets.token_urlsafe(12)
            self.generated_token = True
        self.max_fps = param_float(uri, params, "fps", default=15.0, lo=0.1, hi=240.0)
        self.quality = int(param_float(uri, params, "quality", default=80, lo=10, hi=100))
        self.max_clients = int(param_float(uri, params, "clients", default=MAX_CLIENTS, lo=1, hi=10000))
        self.refused = 0
        self.open_connections = 0  # connections holding a slot now (changed by the server under _count_lock)
        self._count_lock = threading.Lock()
        self._cv = threading.Condition()
        self._latest: FrameResult | None = None
        self._stopping = False
        self._cache: dict[str, tuple[int, float, bytes, float]] = {}
        self._encode_lock = threading.Lock()
        self._depth = DepthColors()
        self._lut = None
        self.server: ThreadingHTTPServer | None = None
        self._server_thread: threading.Thread | None = None
        self.served = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def setup(self, info: StreamInfo) -> None:
        self._lut = label_lut(info.colors)
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as e:
            raise UsageError(f"{self.uri}: cannot listen on {self.host}:{self.port}: {e}") from None
        server.sink = self
        server.slots = threading.BoundedSemaphore(self.max_clients)
        self.server = server
        self.port = server.server_address[1]
        self._server_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name=f"web {self.port}", daemon=True)
        self._server_thread.start()
        note = " (token generated for remote access)" if self.generated_token else ""
        info.log(f"web viewer: {self.url}{note}")

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "") else _lan_address()
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def process(self, result: FrameResult) -> None:
        with self._cv:
            self._latest = result
            self._cv.notify_all()

    def teardown(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)

    def describe(self) -> dict:
        return {**super().describe(), "url": self.url.split("?")[0], "token": bool(self.token),
                "jpegs_served": self.served, "max_clients": self.max_clients, "refused_connections": self.refused,
                "open_connections": self.open_connections}

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self.open_connections += delta

    # -- requests -------------------------------------------------------------------------------

    def authorized(self, headers, query: dict) -> bool:
        if not self.token:
            return True
        offered = query.get("token") or headers.get("X-Panoedge-Token") or ""
        auth = headers.get("Authorization", "")
        if not offered and auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def meta(self) -> dict:
        info = self.info
        return {"classes": list(info.classes), "colors": ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in info.colors],
                "hw": list(info.erp_hw), "fps": info.fps, "source": info.source, "model": info.model,
                "max_view_fps": self.max_fps}

    def stats(self) -> dict:
        latest = self._latest
        return {**self.info.stats(), "seq": latest.seq if latest else -1,
                "last_latency_ms": round(latest.latency_ms, 1) if latest else None}

    def _render(self, view: str, r: FrameResult):
        if view == "rgb":
            return r.erp
        if view == "overlay":
            return overlay(r.erp, r.labels, self._lut)
        if view == "labels":
            return self._lut[r.labels] if r.labels is not None else r.erp * 0
        return self._depth(r.depth, r.erp.shape[:2])

    def frame(self, view: str, after: int, wait_s: float = WAIT_S) -> tuple[int, bytes, float] | None:
        """``(seq, jpeg, latency_ms)`` of the newest frame with ``seq > after``, at most ``max_fps`` encodes
        per second and view; None after ``wait_s`` or when stopping."""
        deadline = time.monotonic() + wait_s
        period = 1.0 / self.max_fps
        with self._cv:
            while not self._stopping:
                cached = self._cache.get(view)
                if cached and cached[0] > after:
                    return cached[0], cached[2], cached[3]
                latest = self._latest
                now = time.monotonic()
                ready_at = cached[1] + period if cached else now
                if latest is not None and latest.seq > after and now >= ready_at:
                    break
                left = deadline - now
                if left <= 0:
                    return None
                self._cv.wait(min(left, max(ready_at - now, 0.005)) if latest is not None and latest.seq > after else left)
            else:
                return None
        with self._encode_lock:
            cached = self._cache.get(view)
            if cached and cached[0] >= latest.seq:
                return cached[0], cached[2], cached[3]
            jpeg = encode_jpeg(self._render(view, latest), self.quality)
            with self._cv:
                self._cache[view] = (latest.seq, time.monotonic(), jpeg, latest.latency_ms)
            self.served += 1
            return latest.seq, jpeg, latest.latency_ms

    @property
    def stopping(self) -> bool:
        return self._stopping


def _lan_address() -> str:
    """This machine's address on its default route (for printing a URL a phone can open)."""
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: WebSink
    slots: threading.BoundedSemaphore

    def process_request(self, request, client_address):
        """A thread per connection while fewer than ``clients=`` are open; beyond, a quick ``503``."""
        if not self.slots.acquire(blocking=False):
            self.sink.refused += 1
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
                                b"Retry-After: 1\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self.sink._count(+1)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        self.sink._count(-1)
        self.slots.release()


_PAGE: bytes | None = None


def _page() -> bytes:
    global _PAGE
    if _PAGE is None:
        _PAGE = resources.files("panoedge.live").joinpath("web_page.html").read_bytes()
    return _PAGE


class _Handler(BaseHTTPRequestHandler):
    server_version = "panoedge-live"
    protocol_version = "HTTP/1.1"  # keep-alive: a polling client reuses one connection and one thread
    timeout = 60  # seconds an idle keep-alive connection (or a stalled client) holds its thread
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature; requests are not logged
        pass

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj) -> None:
        from panoedge.home import dumps_json

        self._send(200, dumps_json(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - the stdlib's name
        sink = self.server.sink
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        try:
            if not sink.token and not host_allowed(self.headers.get("Host"), sink.host):
                self._send(421, b"panoedge: this viewer answers only requests addressed to its own host\n",
                           "text/plain; charset=utf-8")
                return
            if not sink.authorized(self.headers, query):
                self._send(401, b"panoedge: a valid token is required (?token=... or Authorization: Bearer ...)\n",
                           "text/plain; charset=utf-8", {"WWW-Authenticate": 'Bearer realm="panoedge"'})
                return
            path = url.path.rstrip("/") or "/"
            if path in ("/", "/index.html"):
                self._send(200, _page(), "text/html; charset=utf-8")
            elif path == "/meta.json":
                self._json(sink.meta())
            elif path == "/stats.json":
                self._json(sink.stats())
            elif path == "/frame.jpg":
                self._frame(sink, query)
            elif path == "/stream.mjpg":
                self._stream(sink, query)
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
        except OSError:
            self.close_connection = True  # the client went away or stalled past the timeout

    do_HEAD = do_GET

    def _view(self, query: dict) -> str | None:
        view = query.get("view", "overlay")
        if view not in VIEWS:
            self._send(400, f"view {view!r}: valid: {', '.join(VIEWS)}\n".encode(), "text/plain; charset=utf-8")
            return None
        return view

    def _frame(self, sink: WebSink, query: dict) -> None:
        view = self._view(query)
        if view is None:
            return
        try:
            after = int(query.get("after", -1))
        except ValueError:
            after = -1
        got = sink.frame(view, after)
        if got is None:
            self._send(204, b"", "text/plain")
            return
        seq, jpeg, latency = got
        self._send(200, jpeg, "image/jpeg", {"X-Frame-Seq": str(seq), "X-Latency-Ms": f"{latency:.1f}"})

    def _stream(self, sink: WebSink, query: dict) -> None:
        view = self._view(query)
        if view is None:
            return
        boundary = "panoedgeframe"
        self.close_connection = True  # the stream ends only with the connection
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        seq = -1
        while not sink.stopping:
            got = sink.frame(view, seq)
            if got is None:
                continue
            seq, jpeg, _ = got
            self.wfile.write(f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                             f"X-Frame-Seq: {seq}\r\n\r\n".encode() + jpeg + b"\r\n")

