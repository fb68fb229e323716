"""Soak: detector_node on a looped bag replay for >= 20,000 frames, with bad frames mixed in.

Three processes, as on a vehicle: ``trt-perception run`` starts ``detector_node`` (ONNX Runtime,
CPU, 1 thread, reliable image QoS depth 100); ``trt-perception replay --loop N`` publishes a bag of
the sample video's 100 frames (scaled to ``--size``, stamps at ``--rate`` Hz) N times at its pace;
this script watches: it also publishes a malformed frame every ``--bad-every`` seconds on the same
topic, collects every ``latency`` message (processing time = the node's convert + preprocess +
inference + postprocess + publish stages), samples the node process's RSS, threads and open
descriptors every ``--block`` processed frames, and reads the node's frame totals from
``/diagnostics``.

Checks: the node process is alive at the end and exits cleanly; received == published (replay +
bad frames, reliable QoS); processed + dropped_busy + rejected + failed == received; 0 < rejected <=
bad frames (a bad frame replaced by a newer one before it was decoded counts as dropped); RSS growth
after the first block within ``--rss-bound-mib`` (see :func:`trt_perception.core.telemetry.process_stats.growth`),
threads and descriptors constant. Latency percentiles are reported per block. Writes
``benchmarks/results/robustness_soak.md``; exits 1 when a check fails.

    .venv/bin/python benchmarks/soak.py [--loops 200] [--rate 25] [--size 384x288]
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "85")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Optional  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.core.io.frames_to_bag import ImageBagOptions, write_image_bag  # noqa: E402
from trt_perception.core.telemetry.process_stats import ProcessSample, growth, sample  # noqa: E402
from trt_perception.msg import FrameLatency  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "/soak/image"
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
COUNTS = ("received", "processed", "dropped_busy", "rejected", "failed")
PARAMS = """/**/detector_node:
  ros__parameters:
    backend: onnxruntime
    threads: 1
    preprocess: cpu
    qos_reliability: reliable
    qos_depth: 100
    publish_latency: true
    diagnostics_period: 1.0
"""


def ms(duration: Any) -> float:
    return duration.sec * 1e3 + duration.nanosec / 1e6


class Watcher(Node):
    """Latency of every processed frame, node-process samples per block, the node's totals, bad frames."""

    def __init__(self, node_pid: int, block: int, bad_every: float) -> None:
        super().__init__("soak_watcher")
        self.node_pid, self.block = node_pid, block
        self.processing: list[float] = []
        self.inference: list[float] = []
        self.samples: list[ProcessSample] = []   # the node's, once active, then after every block
        self.totals: dict[str, int] = {}
        self.bad_sent = 0
        self.latency_topic = ""
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.images = self.create_publisher(Image, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._bad = Image(height=288, width=384, encoding="bgr8", step=384 * 3, data=bytes(1000))  # truncated
        self.bad_timer = self.create_timer(bad_every, self._publish_bad)
        self.bad_timer.cancel()

    def watch_latency(self) -> bool:
        """Subscribe to the node's FrameLatency topic under /soak once it exists (``run`` names it)."""
        if self.latency_topic:
            return True
        topics = [name for name, types in self.get_topic_names_and_types()
                  if name.startswith("/soak/") and "trt_perception/msg/FrameLatency" in types]
        if topics:
            self.latency_topic = topics[0]
            self.create_subscription(FrameLatency, self.latency_topic, self._on_latency, RELIABLE)
        return bool(topics)

    def _on_latency(self, msg: FrameLatency) -> None:
        self.processing.append(sum(ms(getattr(msg, s)) for s in ("convert", "preprocess", "inference",
                                                                  "postprocess", "publish")))
        self.inference.append(ms(msg.inference))
        if len(self.processing) % self.block == 0:
            self.samples.append(sample(self.node_pid))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("frame rate"):
                values = {kv.key: kv.value for kv in status.values}
                self.totals = {c: int(values[f"frames {c}"]) for c in COUNTS if f"frames {c}" in values}

    def _publish_bad(self) -> None:
        self._bad.header.stamp = self.get_clock().now().to_msg()
        self.images.publish(self._bad)
        self.bad_sent += 1


def make_bag(path: Path, size: tuple[int, int], rate: float) -> int:
    capture = cv2.VideoCapture(str(ROOT / "data" / "vtest_sample.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append((len(frames), cv2.resize(frame, size, interpolation=cv2.INTER_AREA)))
    options = ImageBagOptions(topic=TOPIC, frame_id="soak", rate=rate, start_ns=time.time_ns())
    return write_image_bag(frames, path, options)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)
    return predicate()


def block_rows(watcher: Watcher, block: int) -> list[str]:
    rows = []
    for index, sampled in enumerate(watcher.samples[1:]):
        first, end = index * block, min((index + 1) * block, len(watcher.processing))
        proc, infer = np.asarray(watcher.processing[first:end]), np.asarray(watcher.inference[first:end])
        p50, p95, p99 = np.percentile(proc, [50, 95, 99])
        rows.append(f"| {first + 1}-{end} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
                    f"{proc.max():.1f} | {np.median(infer):.1f} | {sampled.rss_mib:.1f} | {sampled.threads} | "
                    f"{sampled.fds} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=200, help="times the 100-frame bag is played")
    parser.add_argument("--rate", type=float, default=25.0, help="frames per second of the replay")
    parser.add_argument("--size", default="384x288", help="frame size WxH (the model input is 300x300)")
    parser.add_argument("--block", type=int, default=2000, help="processed frames per table row")
    parser.add_argument("--bad-every", type=float, default=3.0, help="seconds between malformed frames")
    parser.add_argument("--rss-bound-mib", type=float, default=16.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness_soak.md"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    scratch = Path(tempfile.mkdtemp(prefix="soak_"))
    frames = make_bag(scratch / "bag", size, args.rate)
    (scratch / "params.yaml").write_text(PARAMS)
    cli = [sys.executable, "-m", "trt_perception.cli"]
    node = subprocess.Popen(cli + ["run", "--params", str(scratch / "params.yaml"), "--cameras", "/soak",
                                   "--image-topic", "image"], stdout=(scratch / "node.log").open("w"),
                            stderr=subprocess.STDOUT, cwd=ROOT)
    rclpy.init()
    watcher = Watcher(node.pid, args.block, args.bad_every)
    executor = SingleThreadedExecutor()
    executor.add_node(watcher)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    if not wait_until(lambda: watcher.count_subscribers(TOPIC) > 0, 120) or not wait_until(watcher.watch_latency, 30):
        sys.exit(f"detector_node did not subscribe to {TOPIC} or publish its latency; see {scratch / 'node.log'}")
    watcher.samples.append(sample(node.pid))

    total = frames * args.loops
    start = time.monotonic()
    replay = subprocess.Popen(cli + ["replay", "--bag", str(scratch / "bag"), "--loop", str(args.loops),
                                     "--rate", "1", "--report", str(scratch / "replay.json")],
                              stdout=(scratch / "replay.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
    watcher.bad_timer.reset()
    with tqdm(total=total, unit="frame", desc="soak (frames processed)") as bar:
        while replay.poll() is None:
            time.sleep(1.0)
            bar.update(len(watcher.processing) - bar.n)
    watcher.bad_timer.cancel()
    elapsed = time.monotonic() - start
    report = json.loads((scratch / "replay.json").read_text()) if replay.returncode == 0 else {}
    replayed = sum(section["published"] for section in report.get("inputs", {}).values())
    published = replayed + watcher.bad_sent
    wait_until(lambda: watcher.totals.get("received") == published and sum(
        watcher.totals.get(c, 0) for c in COUNTS[1:]) == published, 30)
    time.sleep(2.0)
    t = watcher.totals
    if len(watcher.processing) % args.block:  # the last, partial block
        watcher.samples.append(sample(node.pid))
    machine = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other "
               f"jobs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end of the run; "
               f"Python {platform.python_version()}.")
    alive: Optional[int] = node.poll()
    node.send_signal(signal.SIGINT)
    exit_code = node.wait(timeout=60)
    grew = growth(watcher.samples, 2) if len(watcher.samples) >= 6 else None
    checks = {
        "node process alive until stopped": alive is None,
        "node process exits cleanly on SIGINT": exit_code in (0, 130),
        "replay completed": replay.returncode == 0 and replayed == total,
        "received == published (replay + bad frames)": t.get("received") == published,
        "processed + dropped_busy + rejected + failed == received":
            sum(t.get(c, 0) for c in COUNTS[1:]) == t.get("received"),
        # a malformed frame taken together with a newer one (the newest is decoded) counts as dropped_busy
        "0 < rejected <= malformed frames sent": 0 < t.get("rejected", 0) <= watcher.bad_sent,
        "failed == 0": t.get("failed") == 0,
        f"RSS growth after the first block <= {args.rss_bound_mib:g} MiB":
            grew is not None and grew.rss_mib <= args.rss_bound_mib,
        "threads and open fds constant after the first block": grew is not None and grew.threads <= 0 and grew.fds <= 0,
    }
    lines = ["# Soak (benchmarks/soak.py)", "",
             f"`trt-perception run` (detector_node: ONNX Runtime CPU, 1 thread, bundled SSDLite model, reliable "
             f"image QoS depth 100) fed by `trt-perception replay --loop {args.loops} --rate 1` with a bag of the "
             f"sample video's {frames} frames scaled to {size[0]}x{size[1]} bgr8 at {args.rate:g} Hz, plus a "
             f"malformed frame (data truncated) every {args.bad_every:g} s from the watcher; {elapsed:.0f} s.", "",
             "| frames (processed) | processing p50 ms | p95 | p99 | max | inference p50 ms | node RSS MiB | "
             "threads | open fds |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             *block_rows(watcher, args.block), "",
             f"Node process once active, before the replay: RSS {watcher.samples[0].rss_mib:.1f} MiB, "
             f"{watcher.samples[0].threads} threads, {watcher.samples[0].fds} fds. Growth after the first block: "
             + (f"RSS {grew.rss_mib:+.2f} MiB (median of the last quarter of the blocks minus the first), threads "
                f"{grew.threads:+d}, fds {grew.fds:+d}." if grew else "too few blocks to tell."), "",
             f"Frames: published {published} ({replayed} by the replay + {watcher.bad_sent} malformed); node totals "
             + ", ".join(f"{c} {t.get(c)}" for c in COUNTS) + ".", "",
             "| check | result |", "|---|---|",
             *(f"| {name} | {'PASS' if ok else 'FAIL'} |" for name, ok in checks.items()),
             "", "Processing = the node's convert + preprocess + inference + postprocess + publish stages of each "
             "frame (its `latency` topic); convert: from the image taken off the subscription to decoded.", machine]
    executor.shutdown()
    spinner.join(timeout=10)
    watcher.destroy_node()
    rclpy.shutdown()
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
