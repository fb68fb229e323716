"""A node's image input: one subscription, the newest message, decoded once, handed to a sink.

The subscription callback only stores the message (with its receive time) in a
:class:`~trt_perception.core.latest_worker.LatestWorker` slot; the worker thread decodes it
(:func:`~trt_perception.core.image.decode_image` / ``decode_compressed_image``) and calls
``sink(frame)``. With :attr:`FrameInput.keep_raw` (GPU preprocessing) a raw ``Image`` is only
checked (:meth:`~trt_perception.core.image.RawImage.create_from`): its bytes go to the GPU as they are
and pixels are decoded on the CPU only if something asks for them (a debug image). A message replaced before the worker took it is counted as *dropped because
busy*; one that cannot be decoded is *rejected* (a rate-limited warning) and counted; every
decoded frame counts as *converted*. The counts live in :attr:`FrameInput.stats`.
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
from trt_perception.core.latency_stats import InputStats, WindowSettings
from trt_perception.core.latest_worker import LatestWorker


@dataclass(frozen=True)
class Frame:
    """One checked input frame. ``pixels``: uint8[H, W, 3] in ``order`` ("rgb"/"bgr") or uint8[H, W]
    ("mono"), possibly a read-only view of the message's data (never write to it), or None when
    only ``image`` (the raw buffer, for GPU preprocessing) was kept; ``received_ns``:
    :func:`time.perf_counter_ns` when the message arrived; ``convert_ns``: from then to the end of
    decoding (waiting for the worker included)."""

    header: Any
    pixels: Optional[np.ndarray]
    order: str
    received_ns: int
    convert_ns: int
    image: Optional[RawImage] = None

    def decoded(self) -> tuple[np.ndarray, str]:
        """``(pixels, order)``, decoding the raw image on the CPU when only it was kept."""
        if self.pixels is not None:
            return self.pixels, self.order
        assert self.image is not None
        return self.image.decode()


class FrameInput:
    """Subscription + newest-message slot + decoding for ``node``; ``sink`` gets every decoded frame
    in the input's worker thread (it should return quickly or be the only consumer)."""

    def __init__(self, node: Node, sink: Callable[[Frame], None]) -> None:
        self._node = node
        self._sink = sink
        #: hand frames on as raw images (GPU preprocessing) rather than decoded pixels
        self.keep_raw = False
        self._subscription: Any = None
        self._worker: LatestWorker[tuple[Any, int]] = LatestWorker(
            self._decode, self._on_error, name=f"{node.get_name()}_input")
        self.stats = InputStats(WindowSettings(), time.monotonic_ns())

    def reset(self, settings: WindowSettings) -> None:
        """Fresh statistics with ``settings`` (at configure)."""
        self.stats = InputStats(settings, time.monotonic_ns())

    @property
    def topic_name(self) -> Optional[str]:
        return None if self._subscription is None else str(self._subscription.topic_name)

    def start(self, input_type: str, qos: QoSProfile) -> None:
        """Subscribe to ``image`` (``raw``) or ``image/compressed`` (``compressed``) and start decoding."""
        self.stats.start(time.monotonic_ns())
        self._worker.start()
        if input_type == "compressed":
            self._subscription = self._node.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos)
        else:
            self._subscription = self._node.create_subscription(Image, "image", self._on_image, qos)

    def stop(self) -> None:
        """Unsubscribe and stop the worker (a frame being handled finishes first). Idempotent."""
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None
        self._worker.stop()

    def _on_image(self, msg: Any) -> None:
        received = time.perf_counter_ns()
        now = time.monotonic_ns()
        self.stats.received.record(now)
        if self._worker.put((msg, received)):
            self.stats.dropped.record(now)

    def _decode(self, item: tuple[Any, int]) -> None:
        msg, received = item
        image: Optional[RawImage] = None
        pixels: Optional[np.ndarray] = None
        order = ""
        try:
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
                f"rejected frame ({self.stats.rejected.total} so far): {exc}", throttle_duration_sec=5.0)
            return
        self.stats.converted += 1
        self._sink(Frame(msg.header, pixels, order, received, time.perf_counter_ns() - received, image))

    def _on_error(self, exc: BaseException) -> None:
        self._node.get_logger().error(f"frame handling failed: {exc!r}", throttle_duration_sec=5.0)


_RAW_ENCODINGS = {"bgr": "bgr8", "rgb": "rgb8", "mono": "mono8"}


def raw_image_of(pixels: np.ndarray, order: str) -> RawImage:
    """Decoded ``pixels`` (uint8[H, W, 3] or [H, W], see :class:`Frame`) as a raw image without row padding."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return RawImage.create_from(np.ascontiguousarray(pixels).reshape(-1), _RAW_ENCODINGS[order], width, height,
                           width * channels)
