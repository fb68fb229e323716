"""Messages in their serialized (CDR) form, skipping rclpy's message objects on the hot path.

* :func:`detections_cdr` writes a vision_msgs Detection2DArray for ``publisher.publish(bytes)``;
* :func:`read_image` reads a sensor_msgs/Image taken raw from a subscription, its pixel data a view
  into the serialized bytes (rclpy would copy the data twice: into a C message, then into Python).

Each has a check against the running middleware (:func:`writes_detections`, :func:`reads_images`);
the nodes use rclpy's messages where it fails (another middleware's wire format or message version).

Building a Detection2DArray as rclpy message objects costs about ten Python objects per detection,
each field set through a checking property, then a conversion to C and a serialization; this
writes the same bytes in one pass. The layout is classic CDR, little endian (what rmw_fastrtps and
rmw_connextdds put on the wire), of vision_msgs 4.x (Humble and later):

    Detection2DArray: Header header, Detection2D[] detections
    Detection2D: Header header, ObjectHypothesisWithPose[] results, BoundingBox2D bbox, string id
    ObjectHypothesisWithPose: {string class_id, float64 score} hypothesis, PoseWithCovariance pose
    BoundingBox2D: {{float64 x, y} position, float64 theta} center, float64 size_x, size_y

Values are those of :func:`~trt_perception.ros.conversions.detections_to_msg`. Alignment is
relative to the data after the 4-byte encapsulation header; strings are a uint32 length counting
the terminating NUL, the UTF-8 bytes, the NUL; padding is zeros. :func:`matches_rclpy` checks
the bytes against the running middleware (rclpy deserializes them into the same message, at the
same length as its own serialization): the node publishes messages instead when they differ
(another middleware or message version).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.image import ImageError

_ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR, little endian, no options
_ZERO_COVARIANCE = bytes(36 * 8)
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
_SCORE = struct.Struct("<d")
_POSE = struct.Struct("<7d")   # position x, y, z; orientation x, y, z, w
_BBOX = struct.Struct("<5d")   # centre x, y, theta; size_x, size_y


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray(_ENCAPSULATION)

    def align(self, size: int) -> None:
        self.out += b"\0" * (-(len(self.out) - 4) % size)

    def u32(self, value: int) -> None:
        self.align(4)
        self.out += _U32.pack(value)

    def string(self, encoded: bytes) -> None:
        self.u32(len(encoded) + 1)
        self.out += encoded
        self.out += b"\0"

    def header(self, stamp: tuple[int, int], frame_id: bytes) -> None:
        self.align(4)
        self.out += _STAMP.pack(*stamp)
        self.string(frame_id)

    def doubles(self, packer: struct.Struct, *values: float) -> None:
        self.align(8)
        self.out += packer.pack(*values)


def detections_cdr(dets: Detections, header: Any) -> bytes:
    """The serialized Detection2DArray of ``dets`` with ``header`` (std_msgs/Header) on it and on
    every detection.
    """
    stamp = (int(header.stamp.sec), int(header.stamp.nanosec))
    frame_id = str(header.frame_id).encode()
    writer = _Writer()
    writer.header(stamp, frame_id)
    writer.u32(len(dets))
    boxes = dets.boxes_xyxy.astype(np.float64)
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2.0).tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    ids = dets.ids if dets.ids is not None else [""] * len(dets)
    for (cx, cy), (w, h), score, label, track_id in zip(centres, sizes, dets.scores.tolist(), dets.labels, ids):
        writer.header(stamp, frame_id)
        writer.u32(1)                                # one hypothesis
        writer.string(label.encode())
        writer.doubles(_SCORE, score)
        writer.doubles(_POSE, cx, cy, 0.0, 0.0, 0.0, 0.0, 1.0)
        writer.out += _ZERO_COVARIANCE               # aligned: follows float64s
        writer.doubles(_BBOX, cx, cy, 0.0, w, h)
        writer.string(track_id.encode())
    return bytes(writer.out)


def matches_rclpy(sample: Detections, header: Any) -> bool:
    """Whether :func:`detections_cdr` is the serialization of the same message on this middleware
    (padding bytes aside, which rmw_fastrtps leaves uninitialized).
    """
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.conversions import detections_to_msg
    expected = detections_to_msg(sample, header)
    ours = detections_cdr(sample, header)
    try:
        return len(ours) == len(serialize_message(expected)) and deserialize_message(ours, Detection2DArray) == expected
    except Exception:  # noqa: BLE001 - bytes the middleware cannot read: not a match
        return False


@functools.lru_cache(maxsize=1)
def writes_detections() -> bool:
    """Whether :func:`detections_cdr` writes this middleware's serialized Detection2DArray (rclpy
    initialized): :func:`matches_rclpy` on two detections with a non-ASCII label, one with a track id.
    """
    sample = Detections(np.array([[1.5, 2.0, 30.25, 40.0], [0.0, 0.0, 7.0, 9.5]], np.float32),
                        np.array([0.9, 0.55], np.float32), np.array([1, 2], np.int32), ["person", "vélo"],
                        ["12", ""])
    return matches_rclpy(sample, Header(frame_id="camera"))


# ---- sensor_msgs/Image --------------------------------------------------------------------------


@dataclass(frozen=True)
class SerializedImage:
    """The fields of a serialized sensor_msgs/Image (Header header, uint32 height, uint32 width,
    string encoding, uint8 is_bigendian, uint32 step, uint8[] data); ``data`` is a read-only view
    into the serialized message, ``header`` a std_msgs/Header.
    """

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        if len(data) < 4 or bytes(self.view[:4]) != _ENCAPSULATION:
            raise ImageError("serialized image is not little-endian CDR")
        self.offset = 4

    def take(self, size: int, align: int = 1) -> memoryview:
        self.offset += -(self.offset - 4) % align
        end = self.offset + size
        if end > len(self.view):
            raise ImageError(f"serialized image is truncated: {len(self.view)} bytes, field ends at {end}")
        field, self.offset = self.view[self.offset:end], end
        return field

    def u32(self) -> int:
        return int.from_bytes(self.take(4, 4), "little")

    def string(self) -> str:
        size = self.u32()
        raw = self.take(size)
        if size == 0 or raw[-1] != 0:
            raise ImageError("serialized image has a string without its terminating NUL")
        try:
            return bytes(raw[:-1]).decode()
        except UnicodeDecodeError as exc:
            raise ImageError(f"serialized image has a string that is not UTF-8: {exc}") from None


def read_image(data: bytes) -> SerializedImage:
    """The Image in ``data`` (a raw take); :class:`~trt_perception.core.image.ImageError` when the
    bytes are not a complete little-endian CDR Image.
    """
    reader = _Reader(data)
    sec = int.from_bytes(reader.take(4, 4), "little", signed=True)
    nanosec = reader.u32()
    header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=reader.string())
    height, width = reader.u32(), reader.u32()
    encoding = reader.string()
    is_bigendian = reader.take(1)[0]
    step = reader.u32()
    pixels = reader.take(reader.u32())
    return SerializedImage(header, height, width, encoding, is_bigendian, step, pixels)


@functools.lru_cache(maxsize=1)
def reads_images() -> bool:
    """Whether :func:`read_image` reads this middleware's serialized Images (rclpy initialized)."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    sample = Image(header=Header(stamp=Time(sec=-3, nanosec=7), frame_id="cam"), height=2, width=3,
                   encoding="rgb8", is_bigendian=1, step=9, data=bytes(range(18)))
    try:
        image = read_image(serialize_message(sample))
    except Exception:  # noqa: BLE001 - unreadable: not a match
        return False
    return (image.header == sample.header and (image.height, image.width, image.encoding, image.is_bigendian,
                                               image.step, bytes(image.data))
            == (sample.height, sample.width, sample.encoding, sample.is_bigendian, sample.step, bytes(sample.data)))
