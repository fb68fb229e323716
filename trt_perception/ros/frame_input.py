"""A node's image input: one subscription, the newest message, decoded once, handed to a sink.

A :class:`~trt_perception.ros.subscription_reader.SubscriptionReader` thread takes the messages
queued on the subscription (at most ``qos_depth`` wait while the node is busy), decodes the newest
(:func:`~trt_perception.core.image.decode_image` / ``decode_compressed_image``) and calls
``sink(frame)`` in the same thread. With :attr:`FrameInput.keep_raw` (set when a task's pipeline
``takes_raw_images``: GPU preprocessing) a raw
``Image`` is only checked (:meth:`~trt_perception.core.image.RawImage.create_from`): its bytes go
to the GPU as they are and pixels are decoded on the CPU only if something asks for them (a debug
image). Raw images are taken serialized and read in place
(:func:`~trt_perception.ros.serialized.read_image`: the pixels are a view into the message's
bytes, one copy fewer than rclpy's message) where the middleware's format is the one that
function reads.

Counts (in :attr:`FrameInput.stats`): every message taken is *received*; the older messages of a
batch are *dropped because busy*. Gaps in each publisher's sequence numbers are split by
:class:`~trt_perception.core.telemetry.sequence_gaps.LossCounter`: messages the middleware discarded from
the full queue while the node was busy are *dropped because busy* (and counted as received too);
messages that never arrived while the node was idle are *lost in transport*. Publishers are told
apart by the ``publisher_gid`` rclpy reports (Kilted); where it reports none (Jazzy: sequence
numbers only), gaps are counted while the topic has exactly one publisher, and not at all (a
warning says so) while it has several. A message that cannot be decoded is *rejected* (a
rate-limited warning); every decoded frame counts as *converted*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image

from trt_perception.core.image import ImageError, RawImage, decode_compressed_image
from trt_perception.core.pipeline import SourceFrame
from trt_perception.core.telemetry.latency_stats import InputStats, WindowSettings
from trt_perception.core.telemetry.sequence_gaps import Arrival, LossCounter
from trt_perception.ros.serialized import read_image, reads_images
from trt_perception.ros.subscription_reader import Batch, SubscriptionReader


@dataclass(frozen=True, kw_only=True)
class Frame(SourceFrame):
    """One checked input frame: the :class:`~trt_perception.core.pipeline.SourceFrame` a pipeline
    takes (``pixels`` in ``order``, or only ``image``, the raw buffer, when a pipeline takes raw
    images), with the message ``header``; ``received_ns``: :func:`time.perf_counter_ns` when the
    message arrived; ``convert_ns``: from then to the end of decoding (waiting for the worker
    included).
    """

    header: Any
    received_ns: int
    convert_ns: int


class FrameInput:
    """Subscription + newest message + decoding for ``node``; ``sink`` gets every decoded frame in
    the input's reader thread (frames wait in the subscription's queue while it runs).
    """

    def __init__(self, node: Node, sink: Callable[[Frame], None], name: str = "input") -> None:
        self._node = node
        self._name = name
        self._sink = sink
        #: hand frames on as raw images (GPU preprocessing) rather than decoded pixels
        self.keep_raw = False
        self._reader: Optional[SubscriptionReader] = None
        #: raw images are taken serialized and read in place (serialized.read_image)
        self._serialized = False
        self._losses = LossCounter(1)
        self._idle_since_ns: Optional[int] = None   # time.time_ns() when the last batch was handled
        self._unattributed_warned = False
        self.stats = InputStats(WindowSettings(), time.monotonic_ns())

    def reset(self, settings: WindowSettings) -> None:
        """Fresh statistics with ``settings`` (at configure)."""
        self.stats = InputStats(settings, time.monotonic_ns())

    @property
    def topic_name(self) -> Optional[str]:
        """The resolved image topic while subscribed, else None."""
        return None if self._reader is None else self._reader.topic_name

    def start(self, input_type: str, qos: QoSProfile, image_topic: str = "image") -> None:
        """Subscribe to ``image_topic`` (``raw``) or ``<image_topic>/compressed`` (``compressed``)
        and start reading.
        """
        self.stats.start(time.monotonic_ns())
        self._losses = LossCounter(qos.depth)
        self._idle_since_ns = None
        self._unattributed_warned = False
        compressed = input_type == "compressed"
        msg_type, topic = (CompressedImage, f"{image_topic}/compressed") if compressed else (Image, image_topic)
        self._serialized = msg_type is Image and reads_images()
        if self._reader is None:  # one reader thread for the node's life, across activations
            self._reader = SubscriptionReader(self._node, self._on_messages, self._on_error,
                                              name=f"{self._node.get_name()}_{self._name}")
        self._reader.subscribe(msg_type, topic, qos, raw=self._serialized)

    def stop(self) -> None:
        """Stop reading (a frame being handled finishes first) and unsubscribe. Idempotent."""
        if self._reader is not None:
            self._reader.unsubscribe()

    def close(self) -> None:
        """Unsubscribe and end the reader thread (at the node's end). Idempotent."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _on_messages(self, batch: Batch, taken_ns: int) -> None:
        """Count ``batch`` (oldest first) and what it skipped, decode the newest message."""
        now = time.monotonic_ns()
        losses = self._losses.count(self._arrivals(batch), self._idle_since_ns)
        self.stats.received.record(now, count=len(batch) + losses.dropped_busy)
        self.stats.dropped.record(now, count=len(batch) - 1 + losses.dropped_busy)
        if losses.lost_in_transport:
            self.stats.lost.record(now, count=losses.lost_in_transport)
        try:
            self._decode(batch[-1][0], taken_ns)
        finally:
            self._idle_since_ns = time.time_ns()  # the middleware's reception times use this clock

    def _arrivals(self, batch: Batch) -> list[Arrival]:
        """Publisher, sequence number and reception time of each message (see the module docstring)."""
        sole: Optional[bool] = None
        arrivals = []
        for _, info in batch:
            gid = info.get("publisher_gid")
            if isinstance(gid, dict):
                publisher: Optional[Any] = bytes(gid.get("data", b""))
            else:  # no publisher ids: one publisher on the topic, or nothing can be counted
                if sole is None:
                    sole = self._sole_publisher()
                publisher = "the only publisher" if sole else None
            arrivals.append(Arrival(publisher, info.get("publication_sequence_number"),
                                    info.get("received_timestamp") or None))
        return arrivals

    def _sole_publisher(self) -> bool:
        topic = self.topic_name
        publishers = self._node.count_publishers(topic) if topic else 0
        if publishers > 1 and not self._unattributed_warned:
            self._unattributed_warned = True
            self._node.get_logger().warning(
                f"{publishers} publishers on {topic} and this rclpy reports no publisher ids: frames "
                "lost in transport or discarded by the full queue cannot be counted while there is "
                "more than one (ROS 2 Kilted reports them)")
        return publishers == 1

    def _decode(self, msg: Any, received: int) -> None:
        image: Optional[RawImage] = None
        pixels: Optional[np.ndarray] = None
        order = ""
        try:
            if self._serialized:
                msg = read_image(msg)
            if isinstance(msg, CompressedImage):
                pixels, order = decode_compressed_image(msg.data, msg.format)
                if self.keep_raw:
                    image = raw_image_of(pixels, order)
            else:
                image = RawImage.create_from(msg.data, msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian)
                if not self.keep_raw:
                    (pixels, order), image = image.decode(), None
        except ImageError as exc:
            self.stats.rejected.record(time.monotonic_ns())
            self._node.get_logger().warning(
                f"rejected frame ({self.stats.rejected.total} so far on {self.topic_name}): {exc}",
                throttle_duration_sec=5.0)
            return
        self.stats.converted += 1
        self._sink(Frame(pixels, order, image, header=msg.header, received_ns=received,
                         convert_ns=time.perf_counter_ns() - received))

    def _on_error(self, exc: BaseException) -> None:
        self._node.get_logger().error(f"frame handling failed: {exc!r}", throttle_duration_sec=5.0)


_RAW_ENCODINGS = {"bgr": "bgr8", "rgb": "rgb8", "mono": "mono8"}


def raw_image_of(pixels: np.ndarray, order: str) -> RawImage:
    """Decoded ``pixels`` (uint8[H, W, 3] or [H, W], see :class:`Frame`) as a raw image without row padding."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return RawImage.create_from(np.ascontiguousarray(pixels).reshape(-1), _RAW_ENCODINGS[order], width, height,
                           width * channels)
