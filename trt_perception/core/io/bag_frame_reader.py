"""Frames of one image topic of a recorded bag, for calibration and offline tools.

Reads rosbag2 recordings (a directory with ``metadata.yaml``, or a single ``.db3``/``.mcap``
file; sqlite3 and mcap storage) and ROS 1 ``.bag`` files with the ``rosbags`` library, no ROS
installation needed. The topic must carry ``sensor_msgs/Image`` (any encoding
:func:`~trt_perception.core.image.decode_image` supports) or ``sensor_msgs/CompressedImage``
(JPEG/PNG).

Like the sources of :mod:`trt_perception.core.io.frame_sources`, a :class:`RosbagFrames` is an
iterable of ``(frame_index, uint8[H, W, 3] BGR)``: ``frame_index`` counts the topic's messages
in time order from 0, and with ``every=N`` only messages 0, N, 2N, ... are decoded and yielded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Union

import cv2
import numpy as np

from trt_perception.core.image import ImageError, decode_compressed_image, decode_image
from trt_perception.core.io.frame_sources import Frame, FrameSourceError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")


def _to_bgr(pixels: np.ndarray, order: str) -> np.ndarray:
    if order == "bgr":
        return pixels
    if order == "rgb":
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)


def message_pixels(msg: Any, msgtype: str) -> np.ndarray:
    """uint8[H, W, 3] BGR pixels of a deserialized Image or CompressedImage message."""
    if msgtype in COMPRESSED_TYPES:
        pixels, order = decode_compressed_image(msg.data, msg.format)
    else:
        pixels, order = decode_image(msg.data, msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian)
    return _to_bgr(pixels, order)


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Any]:
    """An open ``rosbags`` ``AnyReader`` of the bag at ``path`` (standard message types of the
    latest ROS 2 distribution); raises FrameSourceError when it cannot be opened.
    """
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    except (AnyReaderError, OSError, ValueError) as exc:
        raise FrameSourceError(f"cannot open bag {path}: {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


class RosbagFrames:
    """The images of ``topic`` in the bag at ``path`` (see the module docstring).

    Raises :class:`~trt_perception.core.io.frame_sources.FrameSourceError` when the bag cannot be
    opened, lacks the topic (the message lists the image topics it has) or the topic is not an
    image topic; iterating raises it for a message that cannot be decoded, naming its index.
    """

    def __init__(self, path: Union[str, Path], topic: str, every: int = 1) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise FrameSourceError(f"every must be an integer >= 1, got {every!r}")
        self.path = Path(path).expanduser()
        self.topic = topic
        self.every = every
        if not self.path.exists():
            raise FrameSourceError(f"bag {self.path} does not exist")
        with open_bag(self.path) as reader:
            topics = reader.topics
            images = sorted(name for name, info in topics.items()
                            if info.msgtype in IMAGE_TYPES + COMPRESSED_TYPES)
            if topic not in topics:
                raise FrameSourceError(f"bag {self.path} has no topic {topic!r}; image topics: {images or 'none'}")
            info = topics[topic]
            if info.msgtype not in IMAGE_TYPES + COMPRESSED_TYPES:
                raise FrameSourceError(f"topic {topic!r} in {self.path} carries {info.msgtype}, not "
                                       f"sensor_msgs/Image or CompressedImage; image topics: {images or 'none'}")
            self.msgtype: str = info.msgtype
            self.message_count: int = info.msgcount

    def __len__(self) -> int:
        return (self.message_count + self.every - 1) // self.every

    def __iter__(self) -> Iterator[Frame]:
        with open_bag(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for index, (connection, _, raw) in enumerate(reader.messages(connections=connections)):
                if index % self.every:
                    continue
                try:
                    pixels = message_pixels(reader.deserialize(raw, connection.msgtype), connection.msgtype)
                except ImageError as exc:
                    raise FrameSourceError(f"message {index} of {self.topic} in {self.path}: {exc}") from exc
                yield index, pixels
