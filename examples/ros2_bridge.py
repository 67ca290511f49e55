"""Bridge panoedge's live ZeroMQ publisher into ROS 2 topics.

panoedge itself does not depend on ROS. Run the pipeline with a publisher sink::

    panoedge run bundle/ --source v4l2:///dev/video0 --rig my-camera.yaml --sink zmq://127.0.0.1:5555

and, in a sourced ROS 2 environment (Humble or newer; needs ``rclpy``, ``sensor_msgs``,
``std_msgs``, ``numpy`` and ``pyzmq``; panoedge is *not* needed here)::

    python3 examples/ros2_bridge.py --endpoint tcp://127.0.0.1:5555 --frame-id panoedge_erp

Topics (``--prefix``, default ``/panoedge``):

- ``labels``   ``sensor_msgs/Image`` ``mono8``: class ids per ERP pixel (255 = ignore)
- ``depth``    ``sensor_msgs/Image`` ``32FC1``: range from the sphere centre in metres (0 = invalid)
- ``image/compressed``  ``sensor_msgs/CompressedImage`` ``jpeg``: the stitched ERP, when the
  publisher runs with ``?rgb=1``
- ``classes``  ``std_msgs/String`` (transient local, so late subscribers get it): JSON list of
  class names, index = class id

Every message's ``header.stamp`` is the frame's capture time (``t_capture`` of the panoedge
message, UNIX time) and ``header.frame_id`` is ``--frame-id``. The images are equirectangular:
row 0 is straight up, the middle column looks along the rig's +z (forward), longitude grows
to the right (see ``panoedge.live.publisher`` for the wire format this script decodes).
"""

from __future__ import annotations

import argparse
import json
import threading

import numpy as np

SCHEMA = "panoedge.live.frame/1"


def decode(parts: list[bytes]) -> dict:
    """A ``panoedge.live.frame/1`` multipart message -> header, labels (uint8), depth (float32 m), jpeg."""
    header = json.loads(bytes(parts[0]).decode())
    if header.get("schema") != SCHEMA:
        raise ValueError(f"unexpected schema {header.get('schema')!r} (expected {SCHEMA!r})")
    h, w = header["hw"]
    labels = np.frombuffer(parts[1], np.uint8).reshape(h, w) if header["labels"] else None
    depth = None
    if header["depth"]:
        if header["depth"]["dtype"] == "uint16":
            depth = np.frombuffer(parts[2], "<u2").reshape(h, w).astype(np.float32) / 1000.0
        else:
            depth = np.frombuffer(parts[2], "<f2").reshape(h, w).astype(np.float32)
    jpeg = bytes(parts[3]) if header.get("rgb") and len(parts) > 3 else None
    return {"header": header, "labels": labels, "depth": depth, "jpeg": jpeg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the panoedge publisher (tcp:// or ipc://)")
    ap.add_argument("--frame-id", default="panoedge_erp", help="header.frame_id of every message")
    ap.add_argument("--prefix", default="/panoedge", help="topic prefix")
    args = ap.parse_args()

    import rclpy
    import zmq
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String

    class Bridge(Node):
        def __init__(self):
            super().__init__("panoedge_bridge")
            sensor = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            p = args.prefix.rstrip("/")
            self.pub_labels = self.create_publisher(Image, f"{p}/labels", sensor)
            self.pub_depth = self.create_publisher(Image, f"{p}/depth", sensor)
            self.pub_jpeg = self.create_publisher(CompressedImage, f"{p}/image/compressed", sensor)
            self.pub_classes = self.create_publisher(String, f"{p}/classes", latched)
            self.classes = None
            self.sock = zmq.Context.instance().socket(zmq.SUB)
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
            self.sock.setsockopt(zmq.RCVHWM, 4)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(args.endpoint)
            self.running = True
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.thread.start()
            self.get_logger().info(f"bridging {args.endpoint} -> {p}/{{labels,depth,image/compressed,classes}}")

        def stamp(self, msg, t: float):
            msg.header.stamp.sec = int(t)
            msg.header.stamp.nanosec = int(round((t - int(t)) * 1e9)) % 1_000_000_000
            msg.header.frame_id = args.frame_id
            return msg

        def image(self, arr: np.ndarray, encoding: str, t: float) -> Image:
            msg = self.stamp(Image(), t)
            msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
            msg.encoding = encoding
            msg.is_bigendian = 0
            msg.step = int(arr.strides[0])
            msg.data = np.ascontiguousarray(arr).tobytes()
            return msg

        def loop(self):
            while self.running and rclpy.ok():
                if not self.sock.poll(200):
                    continue
                try:
                    m = decode(self.sock.recv_multipart())
                except (ValueError, KeyError) as e:
                    self.get_logger().warning(f"skipping a message: {e}")
                    continue
                h, t = m["header"], m["header"]["t_capture"]
                if h["classes"] != self.classes:
                    self.classes = h["classes"]
                    self.pub_classes.publish(String(data=json.dumps(self.classes)))
                if m["labels"] is not None:
                    self.pub_labels.publish(self.image(m["labels"], "mono8", t))
                if m["depth"] is not None:
                    self.pub_depth.publish(self.image(m["depth"], "32FC1", t))
                if m["jpeg"] is not None:
                    msg = self.stamp(CompressedImage(), t)
                    msg.format = "jpeg"
                    msg.data = m["jpeg"]
                    self.pub_jpeg.publish(msg)

        def close(self):
            self.running = False
            self.thread.join(timeout=2)
            self.sock.close(linger=0)

    rclpy.init()
    node = Bridge()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
