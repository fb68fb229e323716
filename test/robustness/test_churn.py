"""Lifecycle churn: configure/activate/deactivate/cleanup cycles through the lifecycle services
while frames keep arriving must not leak memory, threads or file descriptors.

A short version of ``benchmarks/churn.py`` (200 cycles, results in
``benchmarks/results/robustness_churn.md``): the bounds here catch a leaked model (about 30 MiB of
RSS per cycle), a worker thread or subscription that is never destroyed, or a file left open.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
from harness import LifecycleClient, wait_for
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from trt_perception.core.telemetry.process_stats import growth, sample
from trt_perception.ros.detector_node import DetectorNode

DATA = Path(__file__).resolve().parents[1] / "data"
WARMUP, CYCLES = 10, 30
RSS_BOUND_MIB = 64
SETTLE_S = 0.05  # a joined thread is listed in /proc until the OS has reaped it


def test_lifecycle_churn_while_frames_arrive_leaks_nothing(ros):
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1)]))
    lifecycle = LifecycleClient(ros, "detector_node")
    frame = cv2.imread(str(DATA / "vtest_300.jpg"))
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                data=frame.tobytes())
    publisher = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(1 / 30):
            publisher.publish(msg)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    samples, processed, pool_threads = [], [], []
    try:
        for _ in range(CYCLES):
            assert lifecycle.set("configure") and lifecycle.set("activate")
            assert wait_for(lambda: node.counters.processed > 0), "no frame processed while active"
            processed.append(node.counters.processed)
            assert lifecycle.set("deactivate") and lifecycle.set("cleanup")
            assert node.pipeline is None
            time.sleep(SETTLE_S)
            samples.append(sample())
            pool_threads.append(sum(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()))
    finally:
        stop.set()
        feeder.join()
    assert lifecycle.state() == "unconfigured" and min(processed) >= 1
    grew = growth(samples, WARMUP)
    # the harness executor starts its pool threads (up to 4) only when it gets busy enough
    assert grew.threads - (max(pool_threads) - pool_threads[WARMUP - 1]) <= 0 and grew.fds <= 0, grew
    assert grew.rss_mib < RSS_BOUND_MIB, [round(s.rss_mib) for s in samples]
