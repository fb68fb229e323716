"""Detection2DArray written as CDR bytes: rclpy reads them back as the message detections_to_msg
builds, for random detections, labels, frame ids and stamps; a wrong layout is caught."""

import random
import struct

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.ros import detection_bytes
from trt_perception.ros.conversions import detections_to_msg
from trt_perception.ros.detection_bytes import detections_cdr, matches_rclpy


@pytest.fixture(scope="module")
def context():
    ctx = Context()
    rclpy.init(context=ctx)  # serialization needs the middleware loaded
    yield ctx
    rclpy.shutdown(context=ctx)


def random_case(rng: random.Random) -> tuple[Detections, Header]:
    k = rng.choice([0, 1, 2, 5, 17])
    xy = np.array([[rng.uniform(0, 700), rng.uniform(0, 500)] for _ in range(k)], np.float32).reshape(k, 2)
    wh = np.array([[rng.uniform(0.5, 200), rng.uniform(0.5, 300)] for _ in range(k)], np.float32).reshape(k, 2)
    labels = [rng.choice(["person", "", "p", "cyclist", "vélo", "a" * rng.randint(1, 40)]) for _ in range(k)]
    dets = Detections(np.concatenate([xy, xy + wh], axis=1), np.array([rng.random() for _ in range(k)], np.float32),
                      np.arange(k, dtype=np.int32), labels)
    header = Header(frame_id=rng.choice(["", "c", "camera", "front_camera_optical_frame", "ä" * rng.randint(1, 9)]))
    header.stamp.sec, header.stamp.nanosec = rng.randint(0, 2**31 - 1), rng.randint(0, 999_999_999)
    return dets, header


def test_bytes_read_back_as_the_message(context):
    rng = random.Random(3)
    for _ in range(200):
        dets, header = random_case(rng)
        data = detections_cdr(dets, header)
        expected = detections_to_msg(dets, header)
        assert deserialize_message(data, Detection2DArray) == expected
        assert len(data) == len(serialize_message(expected))
        assert matches_rclpy(dets, header)


def test_a_wrong_layout_is_caught(context, monkeypatch):
    _, header = random_case(random.Random(5))
    dets = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.5], np.float32),
                      np.array([1], np.int32), ["person"])
    assert matches_rclpy(dets, header)
    # size_x and size_y swapped: same length, different message
    swapped = struct.Struct("<5d")

    class Swapped:
        size = swapped.size

        @staticmethod
        def pack(cx, cy, theta, w, h):
            return swapped.pack(cx, cy, theta, h, w)

    monkeypatch.setattr(detection_bytes, "_BBOX", Swapped)
    assert not matches_rclpy(dets, header)
    monkeypatch.setattr(detection_bytes, "_BBOX", struct.Struct("<5f"))  # wrong length
    assert not matches_rclpy(dets, header)
