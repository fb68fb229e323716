"""Lifecycle churn: detector_node configured, activated, deactivated and cleaned up over and over
while frames keep arriving; memory, threads and open files must not grow.

One process: ``detector_node`` (ONNX Runtime, CPU, 1 thread) and a driver node whose thread
publishes 768x576 bgr8 frames of vtest.avi at ``--rate`` Hz the whole time. Each cycle runs
configure -> activate -> (wait until the node has processed a frame) -> deactivate -> cleanup
through the node's lifecycle transitions. After every cycle the process's resident memory,
thread count and open file descriptors are sampled (``/proc/self``). After ``--warmup`` cycles,
RSS must not grow by more than ``--rss-bound-mib`` (median of the last quarter of the cycles
minus median of the first quarter after the warm-up, see
:func:`trt_perception.core.telemetry.process_stats.growth`) and threads/descriptors must not grow at all.
Writes ``benchmarks/results/robustness_churn.md``; exits 1 when a bound is broken.

    .venv/bin/python benchmarks/churn.py [--cycles 200] [--warmup 20] [--rate 30]
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "86")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.core.telemetry.process_stats import growth, sample  # noqa: E402
from trt_perception.ros.detector_node import DetectorNode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUCCESS = TransitionCallbackReturn.SUCCESS
#: pause before sampling: a joined thread is still listed in /proc until the OS has reaped it
SETTLE_S = 0.05


def publish_frames(publisher, frame, rate_hz: float, stop: threading.Event) -> None:
    """Publish ``frame`` (bgr8) at ``rate_hz`` with increasing stamps until ``stop`` is set."""
    h, w = frame.shape[:2]
    msg = Image(height=h, width=w, encoding="bgr8", step=w * 3, data=frame.tobytes())
    msg.header.frame_id = "camera"
    index = 0
    while not stop.wait(1.0 / rate_hz):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(index, 1000)[0], index % 1000
        publisher.publish(msg)
        index += 1


def one_cycle(node: DetectorNode, timeout: float = 10.0) -> int:
    """configure, activate, wait for a processed frame, deactivate, cleanup; frames processed."""
    for transition in (node.trigger_configure, node.trigger_activate):
        if transition() != SUCCESS:
            sys.exit(f"{transition.__name__} failed")
    deadline = time.monotonic() + timeout
    while node.counters.processed == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    processed = node.counters.processed
    for transition in (node.trigger_deactivate, node.trigger_cleanup):
        if transition() != SUCCESS:
            sys.exit(f"{transition.__name__} failed")
    return processed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second published")
    parser.add_argument("--every", type=int, default=20, help="table row every N cycles")
    parser.add_argument("--rss-bound-mib", type=float, default=16.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness_churn.md"))
    args = parser.parse_args()

    frame = cv2.imread(str(ROOT / "test" / "data" / "vtest_150.jpg"))
    context = Context()
    rclpy.init(context=context)
    detector = DetectorNode(context=context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1)])
    driver = Node("churn_driver", context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(detector)
    executor.add_node(driver)
    threading.Thread(target=executor.spin, daemon=True).start()
    stop = threading.Event()
    publisher = driver.create_publisher(Image, "image", qos_profile_sensor_data)
    feeder = threading.Thread(target=publish_frames, args=(publisher, frame, args.rate, stop), daemon=True)
    feeder.start()

    samples, processed = [sample()], []
    start = time.monotonic()
    for _ in tqdm(range(args.cycles), desc="lifecycle cycles", unit="cycle"):
        processed.append(one_cycle(detector))
        time.sleep(SETTLE_S)
        samples.append(sample())
    elapsed = time.monotonic() - start
    stop.set()
    feeder.join()

    grew = growth(samples, args.warmup + 1)  # samples[0] is before the first cycle
    ok = grew.rss_mib <= args.rss_bound_mib and grew.threads <= 0 and grew.fds <= 0
    lines = ["# Lifecycle churn (benchmarks/churn.py)", "",
             f"{args.cycles} cycles of configure -> activate -> first processed frame -> deactivate -> "
             f"cleanup on detector_node (ONNX Runtime CPU, 1 thread, bundled SSDLite model) while a "
             f"driver thread publishes 768x576 bgr8 frames at {args.rate:g} Hz; {elapsed:.0f} s, "
             f"{sum(processed)} frames processed (every cycle processed at least one: "
             f"{'yes' if min(processed) > 0 else 'NO'}). Process resources after the cycle:", "",
             "| after cycle | RSS MiB | threads | open fds |", "|---:|---:|---:|---:|"]
    for cycle in [0, *range(args.every, args.cycles + 1, args.every)]:
        s = samples[cycle]
        lines.append(f"| {cycle} | {s.rss_mib:.1f} | {s.threads} | {s.fds} |")
    after = samples[args.warmup + 1:]
    lines += ["", f"Growth after the {args.warmup}-cycle warm-up: RSS {grew.rss_mib:+.2f} MiB (median of "
              f"the last quarter of cycles {args.warmup + 1}..{args.cycles} minus median of the first "
              f"quarter; bound {args.rss_bound_mib:g} MiB; RSS ranged "
              f"{min(s.rss_mib for s in after):.1f}..{max(s.rss_mib for s in after):.1f} MiB), "
              f"threads {grew.threads:+d} and open fds {grew.fds:+d} (largest value minus cycle "
              f"{args.warmup}; bound 0): **{'PASS' if ok else 'FAIL'}**.",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}, "
              f"{os.environ.get('RMW_IMPLEMENTATION', 'default rmw')}."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)
    detector.close()
    executor.shutdown()
    rclpy.shutdown(context=context)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
