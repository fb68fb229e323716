"""Benchmark of detector_node's overhead around the model, in one process, on vtest.avi frames.

A test publisher sends 768x576 bgr8 frames of OpenCV's ``vtest.avi`` to ``detector_node``
(ONNX Runtime, CPU, one thread) one at a time, waiting for each Detection2DArray. Per frame:

- end-to-end: publish call -> detections received by the subscriber (``time.perf_counter_ns``);
- model: the node's own ``inference`` stage (from its ``latency`` topic);
- node overhead = end-to-end - model: message transport both ways, image conversion,
  preprocessing, decoding, message building (target: <= 2 ms p50, <= 4 ms p99);
- the node's convert / preprocess / postprocess / publish stages, and the transport around them:
  the publish call, from its return to the node's input having taken the image, and from the
  node's publish of the detections to their receipt by the client.

``--client reader`` (a lean camera and consumer, as C++ ones would be: the frame serialized before
the clock starts, the detections taken serialized by a thread of their own) measures what the node
adds; ``--client executor`` (an rclpy camera and an rclpy executor callback) adds the Python client's
own costs, about 0.5 ms. Prints a table and writes it to ``--out``. DDS stays on localhost.

    .venv/bin/python benchmarks/detector_node.py [--client reader|executor] [--video PATH] [--frames 200]
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "87")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from trt_perception.msg import FrameLatency  # noqa: E402
from trt_perception.ros.detector_node import DetectorNode  # noqa: E402
from trt_perception.ros.subscription_reader import SubscriptionReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def frames(video: str, count: int, every: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(video)
    out, index = [], 0
    while len(out) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            out.append(frame)
        index += 1
    if not out:
        sys.exit(f"cannot read frames from {video}")
    return out


def ns(duration) -> int:
    """builtin_interfaces/Duration -> nanoseconds."""
    return duration.sec * 10**9 + duration.nanosec


def serialized_stamp_nanosec(data: bytes) -> int:
    """header.stamp.nanosec of a serialized message with a Header first: bytes 8-11 (after the
    4-byte encapsulation header and stamp.sec).
    """
    return int.from_bytes(data[8:12], "little")


def stats(values_ns: list[int]) -> tuple[float, float]:
    ms = np.asarray(values_ns, dtype=np.float64) / 1e6
    return float(np.median(ms)), float(np.percentile(ms, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "vtest.avi"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--client", choices=("executor", "reader"), default="reader",
                        help="reader: the test client publishes pre-serialized frames and takes the "
                             "detections serialized in a SubscriptionReader thread (a lean camera and "
                             "consumer, like C++ ones); executor: it publishes Image messages and receives "
                             "the detections in a callback of its SingleThreadedExecutor")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "detector_node.md"))
    args = parser.parse_args()
    images = frames(args.video, args.frames + args.warmup, args.every)

    rclpy.init()
    detector = DetectorNode(parameter_overrides=[Parameter("backend", value="onnxruntime"),
                                                 Parameter("threads", value=1)])
    client = Node("benchmark_client")
    # as deployed: the node alone in a SingleThreadedExecutor (node_main.run_node); the test client
    # (camera publisher, result subscriber) spins in its own executor thread of the same process
    executors = [SingleThreadedExecutor(), SingleThreadedExecutor()]
    executors[0].add_node(detector)
    executors[1].add_node(client)

    received = threading.Event()
    arrival: dict[int, int] = {}
    stages: dict[int, FrameLatency] = {}

    def on_detections(msg: Detection2DArray) -> None:
        arrival[msg.header.stamp.nanosec] = time.perf_counter_ns()
        received.set()

    def on_serialized(batch: list, taken_ns: int) -> None:
        for data, _ in batch:
            arrival[serialized_stamp_nanosec(data)] = taken_ns
        received.set()

    # where the rest of the overhead goes: when the node's input had taken the image (its handler,
    # wrapped before activate, which starts the input), and when the publish call returned
    delivered: dict[int, int] = {}
    on_messages = detector.input._on_messages

    def timed_on_messages(batch: list, taken_ns: int) -> None:
        newest = batch[-1][0]  # serialized bytes or a message
        nanosec = serialized_stamp_nanosec(newest) if isinstance(newest, bytes) else newest.header.stamp.nanosec
        delivered[nanosec] = time.perf_counter_ns()
        on_messages(batch, taken_ns)

    detector.input._on_messages = timed_on_messages  # type: ignore[method-assign]
    if args.client == "executor":
        client.create_subscription(Detection2DArray, "detections", on_detections, 10)
    else:
        reader = SubscriptionReader(client, on_serialized, lambda exc: print(f"client: {exc!r}"), name="client_reader")
        reader.subscribe(Detection2DArray, "detections", QoSProfile(depth=10), raw=True)
    # stage timings: kept serialized while frames run (no Python message work competing with the
    # node for the interpreter), read after the run
    latency_bytes: list[bytes] = []
    latency_reader = SubscriptionReader(client, lambda batch, _: latency_bytes.extend(data for data, _ in batch),
                                        lambda exc: print(f"client: {exc!r}"), name="latency_reader")
    latency_reader.subscribe(FrameLatency, "latency", QoSProfile(depth=10), raw=True)
    publisher = client.create_publisher(Image, "image", 10)
    detector.trigger_configure()
    detector.trigger_activate()
    def spin(executor: SingleThreadedExecutor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:  # rclpy.shutdown() at the end
            pass

    spinners = [threading.Thread(target=spin, args=(executor,)) for executor in executors]
    for spinner in spinners:
        spinner.start()
    while publisher.get_subscription_count() == 0:
        time.sleep(0.01)

    sent: dict[int, int] = {}
    returned: dict[int, int] = {}
    for i, frame in enumerate(images):
        h, w = frame.shape[:2]
        msg = Image(height=h, width=w, encoding="bgr8", step=w * 3, data=frame.tobytes())
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(time.time()), i
        if args.client == "reader":  # a lean camera too: the frame serialized before the clock starts
            msg = serialize_message(msg)
        received.clear()
        sent[i] = time.perf_counter_ns()
        publisher.publish(msg)
        returned[i] = time.perf_counter_ns()
        if not received.wait(5.0):
            sys.exit(f"no detections for frame {i}")
    deadline = time.monotonic() + 5
    while len(latency_bytes) < len(images) and time.monotonic() < deadline:
        time.sleep(0.01)
    for data in latency_bytes:
        latency = deserialize_message(data, FrameLatency)
        stages[latency.header.stamp.nanosec] = latency

    keep = [i for i in range(args.warmup, len(images)) if i in stages]
    e2e = [arrival[i] - sent[i] for i in keep]
    model = [ns(stages[i].inference) for i in keep]
    overhead = [a - b for a, b in zip(e2e, model)]
    rows = [("end-to-end (publish -> detections received)", e2e), ("model (inference stage)", model),
            ("node overhead = end-to-end - model", overhead)]
    for stage in ("convert", "preprocess", "postprocess", "publish"):
        rows.append((f"node stage: {stage}", [ns(getattr(stages[i], stage)) for i in keep]))
    node_total = {i: sum(ns(getattr(stages[i], s)) for s in ("convert", "preprocess", "inference", "postprocess",
                                                             "publish")) for i in keep}
    rows += [("transport: publish call (message to DDS)", [returned[i] - sent[i] for i in keep]),
             ("transport: publish returned -> image taken by the node", [delivered[i] - returned[i] for i in keep]),
             ("transport: detections published -> received by the client",
              [arrival[i] - delivered[i] - node_total[i] for i in keep])]
    lines = ["# detector_node overhead benchmark", "",
             "| quantity | median ms | p99 ms |", "|---|---:|---:|"]
    lines += ["| {} | {:.3f} | {:.3f} |".format(name, *stats(v)) for name, v in rows]
    lines += ["", f"Frames: {len(keep)} measured after {args.warmup} warm-up (768x576 bgr8 from vtest.avi, every "
              f"{args.every}), one at a time; ONNX Runtime CPU, 1 thread; rmw_fastrtps_cpp, one process: "
              f"the node in its own "
              f"SingleThreadedExecutor (as run_node runs it; its image input read by its own thread), the test "
              f"client's publisher in another; "
              + ("the client publishes Image messages and receives the detections in an executor callback "
                 "(deserialized)." if args.client == "executor" else
                 "the client publishes frames serialized before the clock starts and receives the detections "
                 "in a SubscriptionReader thread (serialized bytes)."),
              "Targets: node overhead <= 2 ms p50, <= 4 ms p99.",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    latency_reader.close()
    if args.client == "reader":
        reader.close()
    detector.trigger_deactivate()
    detector.close()
    rclpy.shutdown()  # ends the executors' spin
    for spinner in spinners:
        spinner.join()
    for executor in executors:
        executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
