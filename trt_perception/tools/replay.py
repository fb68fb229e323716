"""``trt-perception replay``: play a bag's image topics into the running nodes, record their
outputs, report frames in/out, drops, latency per stage and objects per frame.

The nodes must be running (``trt-perception run`` or ``ros2 launch``) in the same ROS domain.
Images are published with their original bytes and header stamps, at the bag's pace times
``--rate``, or with ``--rate 0`` one frame at a time as fast as the nodes answer (deterministic).
Outputs (detections, skeletons, latency) are found by type in the cameras' namespaces, or named
with ``--outputs``. ``--record`` writes them into a new bag, atomically; ``--report`` the report
as JSON (see :func:`~trt_perception.tools.replay_report.replay_report`); ``--plot`` a PNG of the
latency of every frame. ``--rate-hz`` / ``--find-peak`` measure instead as NVIDIA's ros2_benchmark
does (:mod:`.replay_benchmark`): fixed-rate runs and the peak rate, with the node's CPU and RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Iterable, Iterator, Optional

from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.bag_message_reader import BagImage, BagImageMessages
from trt_perception.core.io.bag_writer import STORAGES, BagRecorder, atomic_bag, package_typestore
from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.ros.resources import share_dir
from trt_perception.tools import replay_benchmark
from trt_perception.tools.latency_plot import write_plot
from trt_perception.tools.replay_report import LATENCY_TYPE, ReplayedFrame, format_report, replay_report
from trt_perception.tools.ros_env import apply_local_defaults, frame_transport_profile


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``replay`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "replay", help="replay a bag's images into the running nodes, record and report their outputs",
        description="Publish the image topics of a rosbag2 bag into the running perception nodes, "
                    "record their outputs and report frames in/out, drops, latency and detections.")
    parser.add_argument("--bag", required=True, help="rosbag2 bag (directory, .db3 or .mcap)")
    parser.add_argument("--topics", nargs="+", default=[], metavar="TOPIC",
                        help="image topics of the bag to play (default: every Image/CompressedImage topic)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="publish bag topic FROM as TO (repeatable)")
    parser.add_argument("--rate", type=float, default=1.0, metavar="X",
                        help="X times the bag's pace (default 1.0); 0: as fast as processed, each frame "
                             "after the previous frame's outputs arrived (deterministic)")
    parser.add_argument("--loop", type=int, default=1, metavar="N", help="play the bag N times (default 1)")
    parser.add_argument("--outputs", nargs="+", default=[], metavar="TOPIC",
                        help="output topics to record and wait for (default: every Detection2DArray, "
                             "Skeleton2DArray and FrameLatency topic in the cameras' namespaces)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for a frame's outputs (rate 0) and for the last ones "
                             "(default 5); a frame without them counts as dropped")
    parser.add_argument("--wait", type=float, default=60.0, metavar="S",
                        help="seconds to wait for the nodes to subscribe and publish (default 60)")
    parser.add_argument("--record", metavar="BAG", help="write the outputs into this new bag")
    parser.add_argument("--storage", choices=list(STORAGES), default="sqlite3",
                        help="storage of the --record bag (default sqlite3)")
    parser.add_argument("--report", metavar="JSON", help="write the report as JSON")
    parser.add_argument("--plot", metavar="PNG", help="draw the latency of every frame into a PNG")
    replay_benchmark.add_arguments(parser)
    parser.set_defaults(func=run)


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """``["/a:=/b"]`` -> ``{"/a": "/b"}``; raises ValueError for an item that is not FROM:=TO."""
    remaps = {}
    for item in items:
        source, sep, target = item.partition(":=")
        if not sep or not source.startswith("/") or not target.startswith("/"):
            raise ValueError(f"--remap takes /FROM:=/TO (absolute topics), got {item!r}")
        remaps[source] = target
    return remaps


def latency_series(frames: list[ReplayedFrame], outputs: dict[str, str]) -> dict[str, list[float]]:
    """Plot series (ms per frame, NaN where missing): the replay's round trip per result topic, the
    node's inference and total (sum of stages) per latency topic.
    """
    series: dict[str, list[float]] = {}
    for topic, msgtype in outputs.items():
        answered = [f for f in frames if topic in f.expected]
        if msgtype != LATENCY_TYPE:
            series[f"round trip {topic}"] = [f.round_trip_ms(topic) for f in answered]
            continue
        stages = [f.results[topic].stages_ms if topic in f.results else None for f in answered]
        series[f"inference {topic}"] = [s["inference"] if s else float("nan") for s in stages]
        series[f"node total {topic}"] = [sum(v for k, v in s.items() if k != "end_to_end") if s else float("nan")
                                         for s in stages]
    return series


def _counted(messages: Iterable[BagImage], bar: Any, recorder: Optional[BagRecorder]) -> Iterator[BagImage]:
    """``messages``, advancing ``bar`` and writing what ``recorder`` got after each one."""
    for image in messages:
        yield image
        bar.update(1)
        if recorder is not None:
            recorder.flush()


def _benchmark(args: argparse.Namespace, replayer: Any, messages: list[BagImage], remaps: dict[str, str],
               rates: list[float], peak_range: tuple[float, float], settings: dict[str, Any]) -> int:
    """The rate benchmark (:mod:`.replay_benchmark`) instead of a plain replay."""
    trial = replay_benchmark.trial_runner(replayer, messages, args, remaps)
    fixed, peak = replay_benchmark.run_benchmark(trial, rates, peak_range if args.find_peak else None, args)
    print(replay_benchmark.format_benchmark(fixed, peak, args.max_unanswered))
    settings = {**settings, "trial_s": args.trial_s, "node_pid": args.node_pid, "repeats": args.repeats,
                "peak_range_hz": list(peak_range), "max_unanswered": args.max_unanswered}
    if args.report:
        report = replay_benchmark.benchmark_report(fixed, peak, settings)
        atomic_write_text(args.report, json.dumps(report, indent=1) + "\n")
    if args.plot:
        title = "round trip by fixed rate" if fixed else "peak search trials"
        write_plot(args.plot, replay_benchmark.plot_series(fixed, peak), f"{title}: {args.bag}",
                   "trial" if not fixed else "fixed-rate run (" + ", ".join(f"{r:g}" for r in rates) + " Hz)",
                   "ms" if fixed else "% / Hz")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception replay`` with the parsed ``args``; returns the process exit status."""
    try:
        if args.rate < 0 or args.loop < 1 or args.timeout <= 0 or args.wait <= 0:
            raise ValueError("--rate must be >= 0, --loop >= 1, --timeout and --wait > 0")
        remaps = parse_remaps(args.remap)
        rates, peak_range = replay_benchmark.parse_rates(args)
        messages = BagImageMessages(args.bag, args.topics)
        inputs = {remaps.get(topic, topic): msgtype for topic, msgtype in messages.msgtypes.items()}
    except (ValueError, FrameSourceError) as exc:
        print(f"trt-perception replay: error: {exc}", file=sys.stderr)
        return 1
    apply_local_defaults()
    os.environ.update(frame_transport_profile(str(share_dir() / "config")))
    from rclpy.utilities import get_default_context  # after the environment defaults

    from trt_perception.ros.replay import Replayer, ReplayError
    from trt_perception.ros.session import rclpy_session

    settings = {"bag": str(args.bag), "rate": args.rate, "loops": args.loop, "timeout_s": args.timeout,
                "inputs": inputs}
    try:
        with rclpy_session([]), contextlib.ExitStack() as stack:
            recorder = None
            if args.record:
                recorder = BagRecorder(stack.enter_context(atomic_bag(args.record, args.storage)), package_typestore())
            replayer = Replayer(get_default_context(), recorder)
            try:
                replayer.connect(inputs, args.outputs, args.wait)
                if replay_benchmark.wanted(args):
                    return _benchmark(args, replayer, list(messages), remaps, rates, peak_range, settings)
                print(f"replaying {len(messages)} frames x {args.loop} of {', '.join(inputs)}; outputs: "
                      f"{', '.join(replayer.outputs)}", flush=True)
                start = time.monotonic()
                with tqdm(total=len(messages) * args.loop, unit="frame", disable=None) as bar:
                    for loop in range(args.loop):
                        replayer.play(_counted(messages, bar, recorder), args.rate, loop, args.timeout, remaps)
                replayer.drain(args.timeout)
                wall_s = time.monotonic() - start
            finally:
                replayer.close()   # no output callback (recorder) after this
            if recorder is not None:
                recorder.flush()
        report = replay_report(replayer.frames, replayer.outputs, replayer.unmatched, wall_s, settings)
        print(format_report(report))
        if args.record:
            print(f"outputs recorded in {args.record}")
        if args.report:
            atomic_write_text(args.report, json.dumps(report, indent=1) + "\n")
        if args.plot:
            mode = "as fast as processed" if args.rate == 0 else f"rate {args.rate:g}"
            write_plot(args.plot, latency_series(replayer.frames, replayer.outputs),
                       f"latency per frame: {args.bag} ({mode})", "frame", "ms")
    except (ReplayError, ValueError, FrameSourceError, OSError) as exc:   # BagWriteError is a ValueError
        print(f"trt-perception replay: error: {exc}", file=sys.stderr)
        return 1
    return 0
