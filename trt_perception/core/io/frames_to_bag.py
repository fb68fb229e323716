"""Frames -> a rosbag2 bag of image topics (``sensor_msgs/Image`` or ``CompressedImage``), one or
one per camera (:func:`write_image_topics`).

Frames are ``(frame_index, uint8[H, W, 3] BGR)`` items as :mod:`~trt_perception.core.io.frame_sources`
yields them. The k-th frame written (k = 0, 1, ...) gets the header stamp
``start_ns + round(k * 1e9 / rate)`` and the given ``frame_id``; the bag's log time of each message
is its header stamp. Raw images are stored in ``encoding`` (one of :data:`ENCODINGS`, rows not
padded); compressed images as JPEG or PNG with the ``format`` string image_transport uses
(``"bgr8; jpeg compressed bgr8"``), on the topic as given (by convention ``<camera topic>/compressed``).
The bag is written atomically (:func:`~trt_perception.core.io.bag_writer.atomic_bag`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from trt_perception.core.io.bag_writer import atomic_bag, package_typestore
from trt_perception.core.io.frame_sources import Frame

#: raw encodings written, with the OpenCV conversion from BGR (None: stored as is)
ENCODINGS: dict[str, Optional[int]] = {
    "bgr8": None,
    "rgb8": cv2.COLOR_BGR2RGB,
    "bgra8": cv2.COLOR_BGR2BGRA,
    "rgba8": cv2.COLOR_BGR2RGBA,
    "mono8": cv2.COLOR_BGR2GRAY,
}

#: compression formats, with the OpenCV file suffix
COMPRESSIONS = {"jpeg": ".jpg", "png": ".png"}

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"


@dataclass(frozen=True)
class ImageBagOptions:
    """What :func:`write_image_bag` writes: topic, frame_id, rate (frames per second of the stamps),
    first stamp (ns since the epoch), and either ``compressed`` (jpeg, png; ``jpeg_quality`` 0..100)
    or a raw ``encoding``; ``storage`` sqlite3 or mcap.
    """

    topic: str = "/camera/image_raw"
    frame_id: str = "camera"
    rate: float = 10.0
    start_ns: int = 0
    compressed: Optional[str] = None
    encoding: str = "bgr8"
    jpeg_quality: int = 90
    storage: str = "sqlite3"

    def check(self) -> None:
        """Raise ValueError naming the first bad option."""
        if not self.topic.startswith("/"):
            raise ValueError(f"topic must be absolute (start with '/'), got {self.topic!r}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 frames per second, got {self.rate}")
        if self.start_ns <= 0:
            raise ValueError(f"start stamp must be > 0 (a zero stamp means 'not stamped'), got {self.start_ns}")
        if self.compressed is not None and self.compressed not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compressed!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be in [0, 100], got {self.jpeg_quality}")

    @property
    def msgtype(self) -> str:
        """The ROS message type written: ``sensor_msgs/msg/CompressedImage`` or ``sensor_msgs/msg/Image``."""
        return COMPRESSED_IMAGE if self.compressed else IMAGE


def _header(typestore: Any, stamp_ns: int, frame_id: str) -> Any:
    time_type = typestore.types["builtin_interfaces/msg/Time"]
    stamp = time_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return typestore.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_message(typestore: Any, bgr: np.ndarray, header: Any, options: ImageBagOptions) -> Any:
    """The Image or CompressedImage message of uint8[H, W, 3] BGR ``bgr`` (see the module docstring)."""
    if options.compressed:
        params = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality] if options.compressed == "jpeg" else []
        ok, data = cv2.imencode(COMPRESSIONS[options.compressed], bgr, params)
        if not ok:
            raise ValueError(f"OpenCV could not encode a {bgr.shape} frame as {options.compressed}")
        return typestore.types[COMPRESSED_IMAGE](
            header=header, format=f"bgr8; {options.compressed} compressed bgr8", data=data.reshape(-1))
    code = ENCODINGS[options.encoding]
    pixels = np.ascontiguousarray(bgr if code is None else cv2.cvtColor(bgr, code))
    height, width = pixels.shape[:2]
    return typestore.types[IMAGE](
        header=header, height=height, width=width, encoding=options.encoding, is_bigendian=0,
        step=pixels.strides[0], data=pixels.reshape(-1))


def write_image_bag(frames: Iterable[Frame], output: Union[str, Path], options: ImageBagOptions) -> int:
    """Write ``frames`` to a new bag at ``output``; returns the number of messages written.

    Raises ValueError for bad options, :class:`~trt_perception.core.io.bag_writer.BagWriteError` when
    ``output`` exists, and whatever the frame source raises (nothing is left at ``output`` then).
    """
    return write_image_topics([(options, frames)], output)[options.topic]


def write_image_topics(topics: Sequence[tuple[ImageBagOptions, Iterable[Frame]]],
                       output: Union[str, Path]) -> dict[str, int]:
    """Several image topics (e.g. one per camera) into one new bag at ``output``, as
    :func:`write_image_bag` writes one: each topic's k-th frame gets the stamp of its own options.
    Messages are written in stamp order (equal stamps: in the order of ``topics``), frames read
    lazily. All topics must be distinct and share one ``storage``. Returns messages per topic.
    """
    if not topics:
        raise ValueError("no image topic to write")
    names = [options.topic for options, _ in topics]
    if len(set(names)) != len(names):
        raise ValueError(f"image topics must be distinct, got {names}")
    storages = {options.storage for options, _ in topics}
    if len(storages) != 1:
        raise ValueError(f"all topics go into one bag of one storage, got {sorted(storages)}")
    for options, _ in topics:
        options.check()
    typestore = package_typestore(())
    counts = dict.fromkeys(names, 0)

    def stamped(position: int, options: ImageBagOptions,
                frames: Iterable[Frame]) -> Iterator[tuple[int, int, np.ndarray]]:
        for k, (_, bgr) in enumerate(frames):
            yield options.start_ns + round(k * 1e9 / options.rate), position, bgr

    with atomic_bag(output, storages.pop()) as writer:
        connections = [writer.add_connection(options.topic, options.msgtype, typestore=typestore)
                       for options, _ in topics]
        merged = heapq.merge(*(stamped(i, options, frames) for i, (options, frames) in enumerate(topics)),
                             key=lambda item: item[:2])
        for stamp_ns, position, bgr in merged:
            options = topics[position][0]
            msg = image_message(typestore, bgr, _header(typestore, stamp_ns, options.frame_id), options)
            writer.write(connections[position], stamp_ns, typestore.serialize_cdr(msg, options.msgtype))
            counts[options.topic] += 1
    return counts
