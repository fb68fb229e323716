"""Messages in CDR form: Detection2DArray bytes that rclpy reads back as the message
detections_to_msg builds (random detections, labels, track ids, frame ids, stamps; a wrong layout
is caught);
sensor_msgs/Image read from rclpy's serialization, field for field, and damaged bytes refused."""

import random
import struct

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.image import ImageError
from trt_perception.ros import serialized
from trt_perception.ros.conversions import detections_to_msg
from trt_perception.ros.serialized import detections_cdr, matches_rclpy, read_image, reads_images, writes_detections


def random_case(rng: random.Random) -> tuple[Detections, Header]:
    k = rng.choice([0, 1, 2, 5, 17])
    xy = np.array([[rng.uniform(0, 700), rng.uniform(0, 500)] for _ in range(k)], np.float32).reshape(k, 2)
    wh = np.array([[rng.uniform(0.5, 200), rng.uniform(0.5, 300)] for _ in range(k)], np.float32).reshape(k, 2)
    labels = [rng.choice(["person", "", "p", "cyclist", "vélo", "a" * rng.randint(1, 40)]) for _ in range(k)]
    ids = rng.choice([None, [rng.choice(["", "1", "4711", "ü" * rng.randint(1, 3)]) for _ in range(k)]])  # track ids
    dets = Detections(np.concatenate([xy, xy + wh], axis=1), np.array([rng.random() for _ in range(k)], np.float32),
                      np.arange(k, dtype=np.int32), labels, ids)
    header = Header(frame_id=rng.choice(["", "c", "camera", "front_camera_optical_frame", "ä" * rng.randint(1, 9)]))
    header.stamp.sec, header.stamp.nanosec = rng.randint(0, 2**31 - 1), rng.randint(0, 999_999_999)
    return dets, header


def test_bytes_read_back_as_the_message(context):
    assert writes_detections()  # the check the detector runs at configure passes on this middleware
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

    monkeypatch.setattr(serialized, "_BBOX", Swapped)
    assert not matches_rclpy(dets, header)
    monkeypatch.setattr(serialized, "_BBOX", struct.Struct("<5f"))  # wrong length
    assert not matches_rclpy(dets, header)


def random_image(rng: random.Random) -> Image:
    encoding, channels = rng.choice([("bgr8", 3), ("mono8", 1), ("rgba8", 4), ("mono16", 2), ("yuv422", 2), ("", 1)])
    width, height = rng.randint(0, 9), rng.randint(0, 7)
    step = width * channels + rng.choice([0, 0, 1, 3, 8])
    header = Header(frame_id=rng.choice(["", "c", "cam_a", "ü" * rng.randint(1, 5)]))
    header.stamp.sec, header.stamp.nanosec = rng.randint(-2**31, 2**31 - 1), rng.randint(0, 999_999_999)
    size = max(0, step * height + rng.choice([0, 0, -1, 5]))  # sometimes not what the header says
    data = bytes(rng.getrandbits(8) for _ in range(size))
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=rng.randint(0, 1),
                 step=step, data=data)


def test_images_read_field_for_field(context):
    assert reads_images()
    rng = random.Random(11)
    for _ in range(300):
        msg = random_image(rng)
        image = read_image(serialize_message(msg))
        assert image.header == msg.header
        assert (image.height, image.width, image.encoding, image.is_bigendian, image.step) == \
            (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step)
        assert bytes(image.data) == bytes(msg.data) and image.data.readonly


def test_damaged_image_bytes_are_refused(context):
    data = serialize_message(Image(header=Header(frame_id="cam"), height=2, width=2, encoding="bgr8", step=6,
                                   data=bytes(12)))
    for cut in range(len(data)):          # every truncation: a clear error, never a short image
        with pytest.raises(ImageError):
            read_image(data[:cut])
    with pytest.raises(ImageError, match="little-endian CDR"):
        read_image(b"\x00\x00\x00\x00" + data[4:])   # big-endian encapsulation
    no_nul = bytearray(data)
    no_nul[4 + 8 + 4 + 3] = ord("x")                     # frame_id "cam" loses its terminating NUL
    with pytest.raises(ImageError, match="NUL"):
        read_image(bytes(no_nul))
