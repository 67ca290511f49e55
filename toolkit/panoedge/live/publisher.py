"""``zmq://HOST:PORT``: per-frame class ids, depth and timestamps for robot software (ZeroMQ PUB).

URIs: ``zmq://127.0.0.1:5555`` (the default host is loopback; ``zmq://*:5555`` or
``zmq://0.0.0.0:5555`` for the robot's network) or ``zmq:///tmp/panoedge.sock`` (an ``ipc://``
socket on this machine). Options: ``depth=f16`` (default, float16 metres) or ``depth=mm``
(uint16 millimetres), ``rgb=1`` to add the ERP as JPEG, ``hwm=2`` (messages queued per slow
subscriber before ZeroMQ drops for it). Needs ``pyzmq`` (``pip install pyzmq``).

Beyond loopback (any TCP host but ``127.0.0.1``/``localhost``/``::1``) the publisher requires
ZeroMQ CURVE: ``curve=SERVER.key_secret`` (the publisher's certificate) and ``clients=DIR`` (the
public certificates of the subscribers allowed in; every other peer is refused by ZeroMQ's
authenticator), so frames are encrypted and only known robots' software receives them. Make
certificates with pyzmq::

    python -c "import zmq.auth as a; a.create_certificates('keys', 'server'); a.create_certificates('keys', 'client')"

then ``zmq://0.0.0.0:5555?curve=keys/server.key_secret&clients=DIR_WITH_client.key`` and
``Subscriber(uri, server_key="keys/server.key", client_key="keys/client.key_secret")``.

Message format ``panoedge.live.frame/1``: one ZeroMQ multipart message per frame.

=====  ===============================================================================
part   content
=====  ===============================================================================
0      header, UTF-8 JSON::

         {"schema": "panoedge.live.frame/1", "seq": 1234,
          "t_capture": 1718000000.123,   # UNIX seconds when the camera captured the frame
          "t_publish": 1718000000.161,   # UNIX seconds when this message was sent
          "latency_ms": 38.2,            # capture -> results, measured by the pipeline
          "frame_index": 17,             # the source's own frame number
          "hw": [256, 512],              # ERP height, width (W = 2 H)
          "labels": {"dtype": "uint8", "ignore": 255} | null,
          "depth": {"dtype": "float16", "unit": "m", "kind": "range", "invalid": 0,
                    "depth_kind": "metric"} | null,   # "relative": range up to scale and shift,
                                                      # unit "1" (median about 1), not metres
          "rgb": {"format": "jpeg"} | null,
          "classes": ["wall", "floor", ...],
          "erp": "panoedge/1"}           # the ERP convention of CONVENTIONS.md

1      labels: ``H*W`` bytes, row-major uint8 class ids (index into ``classes``); empty if null
2      depth: ``H*W`` little-endian float16 metres (or uint16 millimetres with ``depth=mm``),
       range from the sphere centre, 0 = invalid; empty if null
3      (only with ``rgb=1``) the ERP as a JPEG
=====  ===============================================================================

ERP convention: row 0 is the north pole (up), column 0's left edge is longitude -180°
(behind), longitude 0 (straight ahead, +z of the rig) is the middle column, longitude grows
to the right. :func:`decode_message` turns the parts back into arrays;
``examples/ros2_bridge.py`` republishes them as ROS 2 ``sensor_msgs/Image``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from panoedge.errors import DataError, UsageError
from panoedge.live.stream import FrameResult, Sink, StreamInfo
from panoedge.live.uri import check_params, param_bool, param_float, register_sink, split_uri

SCHEMA = "panoedge.live.frame/1"
DEPTH_FORMATS = {"f16": ("float16", "m"), "mm": ("uint16", "mm")}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

__all__ = ["SCHEMA", "Subscriber", "ZmqPublisher", "decode_message", "encode_message", "zmq_endpoint"]


def _zmq():
    try:
        import zmq
    except ImportError:
        raise UsageError("zmq:// needs pyzmq (pip install pyzmq)") from None
    return zmq


def zmq_endpoint(uri: str) -> tuple[str, dict]:
    """``zmq://HOST:PORT?...`` -> (``tcp://HOST:PORT``, options); ``zmq:///path`` -> ``ipc:///path``."""
    scheme, rest, params = split_uri(uri)
    if scheme != "zmq":
        raise UsageError(f"{uri}: expected zmq://HOST:PORT or zmq:///path/to/socket")
    if rest.startswith("/"):
        return f"ipc://{rest}", params
    host, _, port = rest.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{uri}: expected zmq://HOST:PORT with a port number, e.g. zmq://127.0.0.1:5555")
    host = host or "127.0.0.1"
    if host == "0.0.0.0":
        host = "*"
    return f"tcp://{host}:{port}", params


def encode_message(result: FrameResult, classes: list[str], depth_format: str = "f16", jpeg: bytes | None = None,
                   depth_kind: str = "metric") -> list[bytes]:
    """The multipart message of one result (see the module docstring)."""
    dtype, unit = DEPTH_FORMATS[depth_format]
    if depth_kind == "relative":
        unit = "1" if depth_format == "f16" else "1/1000"
    h, w = result.erp.shape[:2]
    if result.depth is None:
        depth = b""
    elif depth_format == "mm":
        d = np.where(np.isfinite(result.depth) & (result.depth > 0), result.depth, 0.0)
        depth = np.clip(np.round(d * 1000.0), 0, 65535).astype("<u2").tobytes()
    else:
        d = np.where(np.isfinite(result.depth) & (result.depth > 0), result.depth, 0.0)
        depth = d.astype("<f2").tobytes()
    header = {
        "schema": SCHEMA, "seq": int(result.seq), "t_capture": float(result.t_wall), "t_publish": time.time(),
        "latency_ms": round(float(result.latency_ms), 3), "frame_index": int(result.index), "hw": [h, w],
        "labels": {"dtype": "uint8", "ignore": 255} if result.labels is not None else None,
        "depth": ({"dtype": dtype, "unit": unit, "kind": "range", "invalid": 0, "depth_kind": depth_kind}
                  if result.depth is not None else None),
        "rgb": {"format": "jpeg"} if jpeg is not None else None,
        "classes": list(classes), "erp": "panoedge/1",
    }
    labels = np.ascontiguousarray(result.labels, dtype=np.uint8).tobytes() if result.labels is not None else b""
    from panoedge.home import dumps_json

    parts = [dumps_json(header, separators=(",", ":")).encode(), labels, depth]
    if jpeg is not None:
        parts.append(jpeg)
    return parts


def decode_message(parts: list[bytes]) -> dict:
    """A received multipart message -> ``{"header", "labels", "depth" (float32 m), "rgb" (JPEG bytes)}``."""
    if len(parts) < 3:
        raise DataError(f"panoedge frame message: {len(parts)} parts, expected at least 3")
    from panoedge.errors import ConfigError
    from panoedge.safe_load import loads_json

    try:
        header = loads_json(bytes(parts[0]), "panoedge frame message header")
    except ConfigError as e:
        raise DataError(str(e)) from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise DataError(f"panoedge frame message: schema {header.get('schema')!r}, expected {SCHEMA!r}")
    h, w = header["hw"]
    labels = np.frombuffer(parts[1], dtype=np.uint8).reshape(h, w) if header["labels"] else None
    depth = None
    if header["depth"]:
        if header["depth"]["dtype"] == "uint16":
            depth = np.frombuffer(parts[2], dtype="<u2").reshape(h, w).astype(np.float32) / 1000.0
        else:
            depth = np.frombuffer(parts[2], dtype="<f2").reshape(h, w).astype(np.float32)
    rgb = bytes(parts[3]) if header.get("rgb") and len(parts) > 3 else None
    return {"header": header, "labels": labels, "depth": depth, "rgb": rgb}


@register_sink("zmq")
class ZmqPublisher(Sink):
    """The ``zmq://`` sink (see the module docstring)."""

    scheme = "zmq"
    queue_size = 2
    KEYS = ("depth", "rgb", "hwm", "curve", "clients")

    def __init__(self, uri: str):
        super().__init__(uri)
        self.endpoint, params = zmq_endpoint(uri)
        check_params(uri, params, self.KEYS)
        self.depth_format = params.get("depth", "f16")
        if self.depth_format not in DEPTH_FORMATS:
            raise UsageError(f"{uri}: depth={self.depth_format!r}; valid: {', '.join(DEPTH_FORMATS)}")
        self.rgb = param_bool(uri, params, "rgb", default=False)
        self.hwm = int(param_float(uri, params, "hwm", default=2, lo=1, hi=1000))
        self.curve, self.clients = params.get("curve"), params.get("clients")
        self.remote = self.endpoint.startswith("tcp://") and \
            self.endpoint[len("tcp://"):].rpartition(":")[0] not in LOOPBACK_HOSTS
        if self.remote and not (self.curve and self.clients):
            raise UsageError(f"{uri}: publishing beyond loopback needs ZeroMQ CURVE keys: add "
                             "?curve=SERVER.key_secret&clients=DIR (see `python -m pydoc panoedge.live.publisher`)")
        if bool(self.curve) != bool(self.clients):
            raise UsageError(f"{uri}: curve= and clients= go together (the publisher's secret certificate "
                             "and the folder of allowed subscribers' public certificates)")
        if self.curve and not Path(self.curve).is_file():
            raise UsageError(f"{uri}: curve={self.curve!r}: no such certificate file")
        if self.clients and not Path(self.clients).is_dir():
            raise UsageError(f"{uri}: clients={self.clients!r}: no such folder of public certificates")
        self._sock = None
        self._auth = None
        self._classes: list[str] = []
        self._depth_kind = "metric"

    def setup(self, info: StreamInfo) -> None:
        zmq = _zmq()
        self._classes = list(info.classes)
        self._depth_kind = getattr(info, "depth_kind", "metric")
        sock = zmq.Context.instance().socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve:
            self._start_curve(zmq, sock)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as e:
            sock.close()
            raise UsageError(f"{self.uri}: cannot bind {self.endpoint}: {e}") from None
        self._sock = sock
        info.log(f"publishing {SCHEMA} on {self.endpoint}" + (" (CURVE)" if self.curve else ""))

    def _start_curve(self, zmq, sock) -> None:
        """CURVE server keys on ``sock`` and a ZAP authenticator that admits only ``clients=``'s keys."""
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        if not zmq.has("curve"):
            sock.close()
            raise UsageError(f"{self.uri}: this libzmq has no CURVE support (install pyzmq's wheel)")
        try:
            public, secret = zmq.auth.load_certificate(self.curve)
        except (OSError, ValueError) as e:
            sock.close()
            raise UsageError(f"{self.uri}: curve={self.curve!r}: not a readable certificate ({e})") from None
        if secret is None:
            sock.close()
            raise UsageError(f"{self.uri}: curve={self.curve!r} holds no secret key (give the .key_secret file)")
        self._auth = ThreadAuthenticator(zmq.Context.instance())
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.clients))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True

    def process(self, result: FrameResult) -> None:
        jpeg = None
        if self.rgb:
            from panoedge.live.views import encode_jpeg

            jpeg = encode_jpeg(result.erp)
        self._sock.send_multipart(encode_message(result, self._classes, depth_format=self.depth_format, jpeg=jpeg,
                                                 depth_kind=self._depth_kind),
                                  copy=False)

    def teardown(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def describe(self) -> dict:
        return {**super().describe(), "endpoint": self.endpoint, "curve": bool(self.curve)}


class Subscriber:
    """A ZeroMQ SUB socket on a publisher's endpoint; :meth:`recv` returns decoded frames.

    ``Subscriber("zmq://127.0.0.1:5555")`` (or an endpoint such as ``tcp://robot:5555``).
    ``rcvhwm``: messages kept for a slow reader before ZeroMQ drops (ZeroMQ's ``CONFLATE`` does
    not work with multipart messages, so a small queue stands in for "latest only").
    """

    def __init__(self, uri: str, rcvhwm: int = 4, server_key: str | Path | None = None,
                 client_key: str | Path | None = None):
        zmq = _zmq()
        self.zmq = zmq
        endpoint = uri if uri.startswith(("tcp://", "ipc://")) else zmq_endpoint(uri)[0].replace("tcp://*", "tcp://127.0.0.1")
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        if server_key is not None or client_key is not None:
            import zmq.auth

            if server_key is None or client_key is None:
                raise UsageError("a CURVE subscriber needs server_key (the publisher's .key) and client_key (its own .key_secret)")
            self.sock.curve_serverkey = zmq.auth.load_certificate(server_key)[0]
            self.sock.curve_publickey, self.sock.curve_secretkey = zmq.auth.load_certificate(client_key)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.endpoint = endpoint

    def recv(self, timeout_s: float = 5.0) -> dict | None:
        """The next frame (see :func:`decode_message`), or None after ``timeout_s``."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return decode_message(self.sock.recv_multipart())

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
