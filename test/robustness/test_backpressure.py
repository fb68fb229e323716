"""Backpressure: input faster than the model and a slow consumer of the outputs.

The node keeps one frame in flight and one waiting (the newest): a burst of frames is dropped and
counted, memory stays flat, and the last frame of the burst is processed right after the frame in
flight, not after a queue. A subscriber that takes a second per message does not slow the node.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
from harness import LifecycleClient, wait_for
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.core.telemetry.process_stats import sample
from trt_perception.ros.detector_node import DetectorNode

DATA = Path(__file__).resolve().parents[1] / "data"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BURST = 300
WARMUP = 5
#: RSS growth allowed over a burst: DDS keeps its sample pools; a queue of the burst would be 380 MiB
RSS_BOUND_MIB = 96


def frame_msg() -> Image:
    """A 768x576 bgr8 frame; publishers set ``header.stamp.sec`` before each publish."""
    frame = cv2.imread(str(DATA / "vtest_150.jpg"))
    return Image(header=Header(frame_id="cam"), height=frame.shape[0], width=frame.shape[1], encoding="bgr8",
                 step=frame.shape[1] * 3, data=frame.tobytes())


def publish(publisher, msg: Image, stamp: int) -> None:
    msg.header.stamp.sec = stamp
    publisher.publish(msg)


def active_detector(ros):
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("qos_reliability", value="reliable"), Parameter("qos_depth", value=10)]))
    lifecycle = LifecycleClient(ros, "detector_node")
    assert lifecycle.set("configure") and lifecycle.set("activate")
    publisher = ros.node.create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    return node, publisher


def test_a_burst_faster_than_the_model_is_dropped_and_counted_and_the_newest_frame_wins(ros):
    node, publisher = active_detector(ros)
    stamps: list[int] = []
    ros.node.create_subscription(Detection2DArray, "detections", lambda m: stamps.append(m.header.stamp.sec),
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    msg = frame_msg()
    round_trips = []
    for stamp in range(10_000, 10_000 + WARMUP):  # warm-up (allocator, DDS pools) and the node's pace
        started = time.monotonic()
        publish(publisher, msg, stamp)
        assert wait_for(lambda: stamp in stamps, timeout=20)
        round_trips.append(time.monotonic() - started)
    per_frame = min(round_trips)
    before = sample()

    for stamp in range(1, BURST + 1):  # five times what the node does, and slow enough for DDS to deliver
        publish(publisher, msg, stamp)
        time.sleep(per_frame / 5)
    processed_at_last_publish = node.counters.processed
    assert wait_for(lambda: BURST in stamps, timeout=30), "the newest frame of the burst was not processed"
    after = sample()
    assert wait_for(lambda: node.input.stats.converted == node.counters.processed + node.counters.failed)

    counts = node.counters
    assert BURST // 2 <= counts.received - WARMUP <= BURST and counts.rejected == 0 and counts.failed == 0
    assert counts.processed + counts.dropped_busy == counts.received  # every frame accounted for
    assert counts.dropped_busy >= counts.received // 3  # the burst was far more than the model could take
    # no queue: after the last publish only the frame in flight, and the newest, were processed
    # (plus at most two taken while messages still trickled in from the DDS queue of depth 10)
    assert counts.processed - processed_at_last_publish <= 4
    assert stamps[:WARMUP] == list(range(10_000, 10_000 + WARMUP))
    assert stamps[-1] == BURST and stamps[WARMUP:] == sorted(stamps[WARMUP:])
    assert (after.rss_bytes - before.rss_bytes) / 2**20 < RSS_BOUND_MIB


def test_a_slow_subscriber_on_the_outputs_does_not_stall_processing(ros):
    node, publisher = active_detector(ros)
    slow_node = Node("slow_consumer", context=ros.context)
    slow_got: list[int] = []

    def slow(msg: Detection2DArray) -> None:
        slow_got.append(msg.header.stamp.sec)
        time.sleep(1.0)

    slow_node.create_subscription(Detection2DArray, "detections", slow, RELIABLE)
    slow_executor = SingleThreadedExecutor(context=ros.context)
    slow_executor.add_node(slow_node)
    threading.Thread(target=slow_executor.spin, daemon=True).start()
    fast_got: list[int] = []
    ros.node.create_subscription(Detection2DArray, "detections", lambda m: fast_got.append(m.header.stamp.sec),
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    assert wait_for(lambda: ros.node.count_subscribers("/detections") >= 2)
    msg = frame_msg()
    try:
        frames = 30
        for stamp in range(1, frames + 1):  # one at a time: each must be processed while the slow one sleeps
            before = node.counters.processed
            publish(publisher, msg, stamp)
            assert wait_for(lambda: node.counters.processed == before + 1, timeout=10), f"frame {stamp} stalled"
        assert wait_for(lambda: len(fast_got) == frames)
        assert fast_got == list(range(1, frames + 1))
        assert 1 <= len(slow_got) < frames // 2  # the slow subscriber is far behind, and nobody waited for it
    finally:
        slow_executor.shutdown()
        slow_node.destroy_node()
