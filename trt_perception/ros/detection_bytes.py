"""Detection2DArray written straight to its serialized (CDR) form, for ``publisher.publish(bytes)``.

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

import struct
from typing import Any

import numpy as np

from trt_perception.core.decode.ssd.detections import Detections

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
    every detection."""
    stamp = (int(header.stamp.sec), int(header.stamp.nanosec))
    frame_id = str(header.frame_id).encode()
    writer = _Writer()
    writer.header(stamp, frame_id)
    writer.u32(len(dets))
    boxes = dets.boxes_xyxy.astype(np.float64)
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2.0).tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    for (cx, cy), (w, h), score, label in zip(centres, sizes, dets.scores.tolist(), dets.labels):
        writer.header(stamp, frame_id)
        writer.u32(1)                                # one hypothesis
        writer.string(label.encode())
        writer.doubles(_SCORE, score)
        writer.doubles(_POSE, cx, cy, 0.0, 0.0, 0.0, 0.0, 1.0)
        writer.out += _ZERO_COVARIANCE               # aligned: follows float64s
        writer.doubles(_BBOX, cx, cy, 0.0, w, h)
        writer.string(b"")                           # id
    return bytes(writer.out)


def matches_rclpy(sample: Detections, header: Any) -> bool:
    """Whether :func:`detections_cdr` is the serialization of the same message on this middleware
    (padding bytes aside, which rmw_fastrtps leaves uninitialized)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection2DArray

    from trt_perception.ros.conversions import detections_to_msg
    expected = detections_to_msg(sample, header)
    ours = detections_cdr(sample, header)
    try:
        return len(ours) == len(serialize_message(expected)) and deserialize_message(ours, Detection2DArray) == expected
    except Exception:  # noqa: BLE001 - bytes the middleware cannot read: not a match
        return False
