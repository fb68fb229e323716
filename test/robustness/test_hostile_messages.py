"""Malformed sensor_msgs/Image and CompressedImage messages thrown at running detector nodes.

Every hostile message (built broken by construction: unknown encoding, sizes that disagree with the
data, absurd dimensions, truncated or damaged JPEG/PNG, ...) must be rejected and counted; the
warnings are rate limited (checked on /rosout); the node stays active and the valid frame sent
after each hostile one gets exactly the detections of the model on that frame.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import LifecycleClient, RosHarness, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.core.image import ENCODINGS
from trt_perception.core.pipeline import Pipeline
from trt_perception.ros.detector_node import DEFAULT_MODEL, DetectorNode
from trt_perception.ros.resources import share_dir

DATA = Path(__file__).resolve().parents[1] / "data"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: /rosout keeps recent messages for late subscribers (transient local): none is lost to discovery
ROSOUT = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "uyvy": 2,
                   "yuv422": 2, "yuyv": 2, "yuv422_yuy2": 2, "nv12": 1, "nv21": 1}
THROTTLE_S = 5.0  # the node's throttle_duration_sec for the "rejected frame" warning
FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


class Target:
    """A detector node under fire: its input publisher, its detections by stamp, its warnings."""

    def __init__(self, ros: RosHarness, namespace: str, input_type: str) -> None:
        self.ros, self.namespace = ros, namespace
        self.node = ros.add(DetectorNode(context=ros.context, namespace=namespace, parameter_overrides=[
            Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
            Parameter("input_type", value=input_type), Parameter("qos_reliability", value="reliable"),
            Parameter("qos_depth", value=10)]))
        self.detections: dict[int, Detection2DArray] = {}
        self.warnings: list[str] = []
        ros.node.create_subscription(Detection2DArray, f"/{namespace}/detections",
                                     lambda m: self.detections.__setitem__(m.header.stamp.sec, m), RELIABLE)
        ros.node.create_subscription(Log, "/rosout", self._on_log, ROSOUT)
        msg_type, topic = (Image, "image") if input_type == "raw" else (CompressedImage, "image/compressed")
        self.publisher = ros.node.create_publisher(msg_type, f"/{namespace}/{topic}", RELIABLE)
        self.lifecycle = LifecycleClient(ros, f"{namespace}/detector_node")
        assert self.lifecycle.set("configure") and self.lifecycle.set("activate")
        assert wait_for(lambda: self.publisher.get_subscription_count() > 0)
        self.stamp = 0

    def _on_log(self, log: Log) -> None:
        if log.name == f"{self.namespace}.detector_node" and log.msg.startswith("rejected frame"):
            self.warnings.append(log.msg)

    def reject(self, msg) -> None:
        """Publish ``msg`` and check that the node counts it as rejected, and nothing else."""
        before = self.node.counters
        self.publisher.publish(msg)
        assert wait_for(lambda: self.node.counters.rejected == before.rejected + 1), msg
        after = self.node.counters
        assert (after.processed, after.failed, after.dropped_busy) == (before.processed, before.failed,
                                                                       before.dropped_busy)

    def detect(self, msg, expected) -> None:
        """Publish the valid ``msg`` (its stamp is set here) and compare what comes back to ``expected``."""
        self.stamp += 1
        msg.header.stamp.sec = self.stamp
        processed = self.node.counters.processed
        self.publisher.publish(msg)
        assert wait_for(lambda: self.stamp in self.detections, timeout=20), "no detections for a valid frame"
        assert_same_detections(self.detections[self.stamp], expected)
        # the node counts a frame once its results are out: wait for that before the next message
        assert wait_for(lambda: self.node.counters.processed == processed + 1)


def assert_same_detections(msg: Detection2DArray, expected) -> None:
    centres = np.array([[d.bbox.center.position.x, d.bbox.center.position.y] for d in msg.detections])
    sizes = np.array([[d.bbox.size_x, d.bbox.size_y] for d in msg.detections])
    boxes = expected.boxes_xyxy
    assert len(msg.detections) == len(boxes) >= 1
    np.testing.assert_allclose(centres, (boxes[:, :2] + boxes[:, 2:]) / 2, atol=1e-3)
    np.testing.assert_allclose(sizes, boxes[:, 2:] - boxes[:, :2], atol=1e-3)
    np.testing.assert_allclose([d.results[0].hypothesis.score for d in msg.detections], expected.scores, atol=1e-6)


@pytest.fixture(scope="module")
def ros_module():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def frame():
    return cv2.imread(str(DATA / "vtest_000.jpg"))


@pytest.fixture(scope="module")
def expected(frame):
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        return pipeline.run(frame, "bgr")[0]


def odd_text():
    """Encoding strings that are not supported ones (no NUL: DDS strings end there)."""
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=16).filter(lambda e: e not in ENCODINGS)


IMAGE_FLAWS = ("encoding", "zero size", "huge size", "short step", "truncated", "oversized", "odd chroma size")
COMPRESSED_FLAWS = ("truncated", "huge header", "damaged header", "garbage", "empty", "unknown format",
                    "format mismatch", "png crc")


@st.composite
def hostile_images(draw, flaw: str):
    """A sensor_msgs/Image with ``flaw`` (one of IMAGE_FLAWS): it cannot be decoded."""
    encoding = draw(st.sampled_from(ENCODINGS))
    width, height = 2 * draw(st.integers(1, 12)), 2 * draw(st.integers(1, 12))
    bpp = BYTES_PER_PIXEL[encoding]
    step = width * bpp + draw(st.integers(0, 7))
    size = step * (height * 3 // 2 if encoding in ("nv12", "nv21") else height)
    if flaw == "encoding":
        encoding = draw(odd_text())
    elif flaw == "zero size":
        width, height = draw(st.sampled_from([(0, height), (width, 0), (0, 0)]))
    elif flaw == "huge size":
        width, height = draw(st.sampled_from([(2**31, height), (width, 2**31), (2**32 - 1, 2**32 - 1)]))
        step = min(width * bpp, 2**32 - 1)
    elif flaw == "short step":
        step = draw(st.integers(0, width * bpp - 1))
    elif flaw == "truncated":
        size = draw(st.integers(0, size - 1))
    elif flaw == "oversized":
        size += draw(st.integers(1, 4096))
    else:
        encoding = draw(st.sampled_from(["yuyv", "uyvy", "nv12", "nv21"]))
        width += 1
    data = draw(st.binary(min_size=size, max_size=size)) if size <= 256 else bytes(size)
    return Image(header=Header(frame_id="fuzz"), encoding=encoding, width=width, height=height, step=step,
                 is_bigendian=draw(st.integers(0, 1)), data=data)


def tiny(codec: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return cv2.imencode(".jpg" if codec == "jpeg" else ".png", pixels)[1].tobytes()


@st.composite
def hostile_compressed(draw, flaw: str):
    """A sensor_msgs/CompressedImage with ``flaw`` (one of COMPRESSED_FLAWS): it cannot be decoded."""
    codec = draw(st.sampled_from(["jpeg", "png"]))
    data, fmt = tiny(codec, draw(st.integers(0, 1000))), codec
    if flaw == "truncated":
        data = data[:draw(st.integers(0, len(data) - (3 if codec == "jpeg" else 13)))]
        if data.endswith(b"\xff\xd9"):
            data = data[:-1]
    elif flaw == "huge header":
        out = bytearray(data)
        if codec == "jpeg":
            size = draw(st.sampled_from([(65535, 65535), (30000, 30000)]))
            struct.pack_into(">HH", out, data.find(b"\xff\xc0") + 5, *size)
        else:
            struct.pack_into(">II", out, 16, *draw(st.sampled_from([(2**31, 2**31), (30000, 30000)])))
        data = bytes(out)
    elif flaw == "damaged header":
        data = draw(st.binary(min_size=4, max_size=4)).replace(b"\xff\xd8", b"\x00\x00") + data[4:]
        fmt = draw(st.sampled_from([codec, ""]))
    elif flaw == "garbage":
        data, fmt = draw(st.binary(max_size=512)), draw(st.sampled_from(["jpeg", "png", ""]))
    elif flaw == "empty":
        data, fmt = b"", draw(st.sampled_from(["jpeg", "png", ""]))
    elif flaw == "unknown format":
        fmt = draw(odd_text().filter(lambda f: f.strip().lower().split(";")[-1].split()[:1]
                                     not in (["jpeg"], ["jpg"], ["png"]) and f.strip() != ""))
    elif flaw == "format mismatch":
        fmt = "png" if codec == "jpeg" else "bgr8; jpeg compressed bgr8"
    else:  # a flipped byte inside the PNG's image data: its CRC no longer matches
        data = tiny("png", 0)
        position = data.find(b"IDAT") + 4 + draw(st.integers(0, 40))
        data = data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1:]
        fmt = "png"
    return CompressedImage(header=Header(frame_id="fuzz"), format=fmt, data=data)


def valid_message(input_type: str, frame):
    """The frame every hostile message is followed by, as the node's input type."""
    if input_type == "raw":
        return Image(header=Header(frame_id="cam"), height=frame.shape[0], width=frame.shape[1], encoding="bgr8",
                     step=frame.shape[1] * 3, data=frame.tobytes())
    return CompressedImage(header=Header(frame_id="cam"), format="jpeg", data=(DATA / "vtest_000.jpg").read_bytes())


HOSTILE = {"raw": (hostile_images, IMAGE_FLAWS), "compressed": (hostile_compressed, COMPRESSED_FLAWS)}


@pytest.mark.parametrize("input_type", list(HOSTILE))
def test_hostile_messages_are_rejected_and_the_next_frame_is_right(ros_module, frame, expected, input_type):
    target = Target(ros_module, f"fuzz_{input_type}", input_type)
    strategy, flaws = HOSTILE[input_type]
    good = valid_message(input_type, frame)
    started, thrown = time.monotonic(), []
    for flaw in flaws:
        @FUZZ
        @given(strategy(flaw))
        def fuzz(msg):
            thrown.append(flaw)
            target.reject(msg)
            target.detect(good, expected)

        fuzz()
    assert target.lifecycle.state() == "active"
    counts = target.node.counters
    assert set(thrown) == set(flaws) and len(thrown) >= 5 * len(flaws)
    assert (counts.rejected, counts.processed, counts.failed) == (len(thrown), len(thrown), 0)
    assert wait_for(lambda: bool(target.warnings))
    allowed = 1 + (time.monotonic() - started) / THROTTLE_S + 1  # rate limited: one per throttle period
    assert 1 <= len(target.warnings) <= allowed < counts.rejected
