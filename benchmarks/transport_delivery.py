"""Delivery of raw camera frames between two processes: sizes x reliability x Fast DDS transports.

A publisher process sends ``--frames`` bgr8 ``sensor_msgs/Image`` messages at ``--rate`` Hz (each
stamped with the wall clock when it is published) to a subscriber process, as a camera driver and
the node would run. For every image size, reliability (the publisher and the subscriber use the
same: best_effort, or reliable) and transport, the subscriber counts the frames it received and
their latency (receipt - header stamp, wall clock of the same machine). The subscriber takes
messages serialized (no Python conversion) in an executor callback with a KEEP_LAST queue of
``--depth`` frames, so what is missing was lost in transport, not dropped by a slow reader.

Transports (Fast DDS builtin transports, set for both processes through the environment):
``DEFAULT`` (Fast DDS's own: shared memory and UDPv4), ``SHM``, ``UDPv4``, ``LARGE_DATA`` (TCP
and shared memory, UDP for discovery only), ``profile`` = the profile shipped with the package
(``config/fastdds_large_frames.xml``, through ``FASTDDS_DEFAULT_PROFILES_FILE``) in both processes,
and ``profile_sink_only`` = that profile in the subscriber only (a camera driver started without it).

    .venv/bin/python benchmarks/transport_delivery.py [--frames 40] [--sizes 640x480,768x576,...]
        [--transports DEFAULT,SHM,UDPv4,LARGE_DATA,profile] [--out benchmarks/results/transport_delivery.md]

DDS stays on localhost (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID default 88).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_frames.xml"
SIZES = ("640x480", "768x576", "1280x720", "1920x1080")
TRANSPORTS = ("DEFAULT", "SHM", "UDPv4", "LARGE_DATA", "profile", "profile_sink_only")
RELIABILITIES = ("best_effort", "reliable")
TOPIC = "transport_delivery/image"


def qos(reliability: str, depth: int):  # type: ignore[no-untyped-def]
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                      else ReliabilityPolicy.RELIABLE)


def publish(args: argparse.Namespace) -> None:
    """Publisher role: wait for the subscriber, send the frames at the rate, linger a second."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    width, height = (int(v) for v in args.size.split("x"))
    rclpy.init()
    node = rclpy.create_node("transport_delivery_camera")
    pub = node.create_publisher(Image, TOPIC, qos(args.reliability, args.depth))
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let the match settle on both sides
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    msg = Image(height=height, width=width, encoding="bgr8", step=width * 3, data=pixels.tobytes())
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(args.frames):
        time.sleep(max(0.0, start + i * period - time.monotonic()))
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        msg.header.frame_id = str(i)
        pub.publish(msg)
    time.sleep(1.5)  # reliable: repairs go on after the last publish
    node.destroy_node()
    rclpy.shutdown()


def subscribe(args: argparse.Namespace) -> None:
    """Subscriber role: count frames (serialized) until ``--idle`` s pass without one after the
    first, or ``--timeout``; print ``{"received": n, "latency_ms": [...]}`` as JSON.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_delivery_sink")
    latencies: list[float] = []
    last = [time.monotonic()]

    def on_frame(raw: bytes) -> None:
        sec, nanosec = struct.unpack_from("<iI", raw, 4)  # CDR: 4-byte encapsulation, then the stamp
        latencies.append((time.time_ns() - (sec * 1_000_000_000 + nanosec)) / 1e6)
        last[0] = time.monotonic()

    node.create_subscription(Image, TOPIC, on_frame, qos(args.reliability, args.depth), raw=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
        if latencies and time.monotonic() - last[0] > args.idle:
            break
    print(json.dumps({"received": len(latencies), "latency_ms": latencies}))
    node.destroy_node()
    rclpy.shutdown()


def environment(transport: str, role: str) -> dict[str, str]:
    """The environment of ``role`` (pub, sub) for ``transport``."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", RMW_IMPLEMENTATION="rmw_fastrtps_cpp")
    env.setdefault("ROS_DOMAIN_ID", "88")
    for name in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    if transport == "profile" or (transport == "profile_sink_only" and role == "sub"):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    elif transport not in ("DEFAULT", "profile_sink_only"):
        env["FASTDDS_BUILTIN_TRANSPORTS"] = transport
    return env


def measure(size: str, reliability: str, transport: str, args: argparse.Namespace) -> dict:
    common = ["--size", size, "--reliability", reliability, "--frames", str(args.frames),
              "--rate", str(args.rate), "--depth", str(args.depth)]
    sink = subprocess.Popen([sys.executable, __file__, "--role", "sub", *common, "--timeout", "40"],
                            env=environment(transport, "sub"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    camera = subprocess.Popen([sys.executable, __file__, "--role", "pub", *common], env=environment(transport, "pub"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, camera_err = camera.communicate(timeout=90)
    out, sink_err = sink.communicate(timeout=90)
    if sink.returncode or camera.returncode:
        raise RuntimeError(f"{size} {reliability} {transport}: {camera_err[-500:]} {sink_err[-500:]}")
    result = json.loads(out.strip().splitlines()[-1])
    lat = sorted(result["latency_ms"])
    return {"size": size, "reliability": reliability, "transport": transport, "frames": args.frames,
            "received": result["received"], "p50_ms": lat[len(lat) // 2] if lat else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("main", "pub", "sub"), default="main")
    parser.add_argument("--size", default="768x576")
    parser.add_argument("--reliability", choices=RELIABILITIES, default="best_effort")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--depth", type=int, default=10, help="KEEP_LAST depth of both ends")
    parser.add_argument("--timeout", type=float, default=40.0)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transport_delivery.md"))
    args = parser.parse_args()
    if args.role == "pub":
        return publish(args)
    if args.role == "sub":
        return subscribe(args)

    from tqdm import tqdm
    cases = [(s, r, t) for t in args.transports.split(",") for r in RELIABILITIES for s in args.sizes.split(",")]
    rows = [measure(s, r, t, args) for s, r, t in tqdm(cases, desc="transport delivery", unit="case")]
    lines = ["# Raw frame delivery between two processes", "",
             "| size | reliability | transport | delivered | p50 latency ms |", "|---|---|---|---:|---:|"]
    for row in rows:
        p50 = "n/a" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}"
        lines.append(f"| {row['size']} | {row['reliability']} | {row['transport']} | "
                     f"{row['received']}/{row['frames']} | {p50} |")
    from importlib.metadata import version

    import rclpy  # noqa: F401 - only for the version line
    lines += ["", f"Each case: a publisher process sends {args.frames} bgr8 frames at {args.rate:g} Hz to a "
              f"subscriber process (KEEP_LAST depth {args.depth} on both ends, same reliability; the subscriber "
              "takes them serialized); latency = receipt - header stamp (wall clock). Transports as "
              "FASTDDS_BUILTIN_TRANSPORTS; profile = config/fastdds_large_frames.xml in both processes, "
              "profile_sink_only = in the subscriber only.",
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average "
              f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; Python {platform.python_version()}; "
              f"rclpy {version('ros-rclpy')}, rmw_fastrtps_cpp."]
    text = "\n".join(lines) + "\n"
    print(text)
    from trt_perception.core.io.atomic_write import atomic_write_text
    atomic_write_text(Path(args.out), text)
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
