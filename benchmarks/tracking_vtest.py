"""Track ids on a real street video (no ground truth), in the core and through ROS replay.

1. Core: the bundled SSDLite pedestrian detector (ONNX Runtime, CPU) runs once over the video, then
   its detections are tracked with several tracker settings; stamps are frame index / frame rate.
2. ROS replay, the path a user takes: the video is made into a bag (``trt-perception make-bag
   --compressed jpeg``, header stamps 1 / frame rate apart), then twice, each time with a new node:
   ``trt-perception run`` (detector_node, ONNX Runtime, compressed input, ``tracking: true``, the
   same decoder threshold) and ``trt-perception replay --rate 0 --record``; the ids of the recorded
   ``Detection2DArray`` messages give the same statistics. Checked: the two replays publish the
   same boxes and ids in every frame (determinism), and the same as the core's tracker run on the
   bag's own frames (JPEG-decoded) and header stamps.

Statistics per run: ids given, track lengths (frames with the id), detections published with an
id, tracks re-found after a gap, and "jumps": consecutive boxes of one id that do not overlap (IoU
< 0.1 between the last and the next box of the id), the visible kind of identity switch. Without
ground truth, switches between two overlapping pedestrians are not counted: the numbers describe
behaviour, they do not score it.

Run (about 10 minutes on a shared 2-core machine)::

    ROS_DOMAIN_ID=44 .venv/bin/python benchmarks/tracking_vtest.py --input ../shared/data/vtest.avi

-> benchmarks/results/tracking_vtest.md and .json. ``--no-replay``: the core part only (no rclpy
needed). The bag and the recorded outputs go to a temporary directory (``--work DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.bag_message_reader import BagImageMessages
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.tracking import Tracker, TrackerParams
from trt_perception.core.tracking.association import iou_matrix

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "tracking_vtest"
CLI = [sys.executable, "-m", "trt_perception.cli"]
TOPIC = "/camera/image_raw"                 #: make-bag's topic; the bag holds TOPIC + "/compressed"

#: one frame's published detections: boxes float[K, 4] xyxy and their ids ("" for none)
Frame = tuple[np.ndarray, list[str]]


def detect_all(frames: Any, score_threshold: float) -> list[Detections]:
    """The detector's output for every (index, BGR pixels) of ``frames``."""
    out = []
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=0) as pipeline:
        pipeline.decoder.set_params({"score_threshold": score_threshold})
        for _, pixels in tqdm(frames, total=len(frames), unit="frame", disable=None):
            out.append(pipeline.run(pixels, "bgr")[0])
    return out


def track(dets: list[Detections], stamps: list[int], params: TrackerParams) -> list[Frame]:
    """Each frame's published boxes and ids from one tracker."""
    tracker = Tracker(params)
    out = []
    for frame, stamp in zip(dets, stamps):
        result = tracker.update(frame, stamp)
        assert result.ids is not None
        out.append((result.boxes_xyxy.astype(np.float64), result.ids))
    return out


def describe(frames: list[Frame]) -> dict[str, Any]:
    """Track statistics of one run (module docstring)."""
    seen: dict[str, list[tuple[int, np.ndarray]]] = {}
    published = with_id = 0
    for index, (boxes, ids) in enumerate(frames):
        published += len(ids)
        for box, track_id in zip(boxes, ids):
            if track_id:
                with_id += 1
                seen.setdefault(track_id, []).append((index, box))
    lengths = np.array([len(v) for v in seen.values()]) if seen else np.zeros(1, int)
    refound = jumps = 0
    for history in seen.values():
        for (i0, b0), (i1, b1) in zip(history, history[1:]):
            refound += i1 - i0 > 1
            jumps += iou_matrix(b0[None], b1[None])[0, 0] < 0.1
    return {"ids": len(seen), "published": published, "with_id": with_id,
            "length_median": float(np.median(lengths)), "length_max": int(lengths.max()),
            "length_mean": float(lengths.mean()), "tracks_10_frames": int((lengths >= 10).sum()),
            "refound": int(refound), "jumps": int(jumps)}


def same_frames(a: list[Frame], b: list[Frame], tolerance_px: float = 0.01) -> tuple[int, int]:
    """(frames whose ids are equal, frames whose ids and boxes, within ``tolerance_px``, are equal)."""
    same_ids = same = 0
    for (boxes_a, ids_a), (boxes_b, ids_b) in zip(a, b):
        if ids_a == ids_b:
            same_ids += 1
            same += boxes_a.shape == boxes_b.shape and bool(np.all(np.abs(boxes_a - boxes_b) <= tolerance_px))
    return same_ids, same


# ROS replay ------------------------------------------------------------------------------------


def ros_env(domain_id: str) -> dict[str, str]:
    """This process's environment with ROS traffic kept on this machine."""
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=domain_id)


def make_bag(video: Path, bag: Path, fps: float, env: dict[str, str]) -> None:
    """``trt-perception make-bag``: every frame of ``video`` as JPEG CompressedImage, stamps 1/fps apart."""
    subprocess.run(CLI + ["make-bag", "--input", str(video), "--output", str(bag), "--topic", TOPIC,
                          "--rate", f"{fps:g}", "--compressed", "jpeg"], check=True, env=env)


def replay_once(bag: Path, params: Path, record: Path, log: Path, env: dict[str, str]) -> dict[str, Any]:
    """A new node (``trt-perception run``), one ``replay --rate 0 --record``, the node stopped; the
    replay's report.
    """
    report = record.with_suffix(".json")
    with open(log, "w") as log_file:
        node = subprocess.Popen(CLI + ["run", "--params", str(ROOT / "config" / "detector.yaml"),
                                       "--params", str(params)], stdout=log_file, stderr=subprocess.STDOUT,
                                env=env)
        try:
            subprocess.run(CLI + ["replay", "--bag", str(bag), "--rate", "0", "--record", str(record),
                                  "--report", str(report), "--outputs", "/camera/detections"],
                           check=True, env=env)
        finally:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def recorded_frames(record: Path, stamps: list[int]) -> tuple[list[Frame], int]:
    """The recorded detections as one Frame per input stamp (an empty frame where none was recorded),
    and the number of input frames without a recorded answer.
    """
    from rosbags.highlevel import AnyReader

    from trt_perception.core.io.bag_writer import package_typestore
    by_stamp: dict[int, Frame] = {}
    with AnyReader([record], default_typestore=package_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == "/camera/detections"]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            centre = np.array([[d.bbox.center.position.x, d.bbox.center.position.y]
                               for d in msg.detections]).reshape(-1, 2)
            size = np.array([[d.bbox.size_x, d.bbox.size_y] for d in msg.detections]).reshape(-1, 2)
            boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
            by_stamp[stamp] = (boxes, [d.id for d in msg.detections])
    missing = sum(stamp not in by_stamp for stamp in stamps)
    return [by_stamp.get(stamp, (np.zeros((0, 4)), [])) for stamp in stamps], missing


def replay_section(args: argparse.Namespace, fps: float, work: Path) -> tuple[list[str], dict[str, Any]]:
    """Lines and JSON of the ROS replay part (module docstring)."""
    env = ros_env(args.domain_id)
    bag = work / "vtest_bag"
    make_bag(args.input, bag, fps, env)
    params = work / "tracking_params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    backend: onnxruntime\n    input_type: compressed\n"
                      f"    score_threshold: {args.score_threshold}\n    tracking: true\n")
    stamps = [m.stamp_ns for m in BagImageMessages(bag, [TOPIC + "/compressed"])]
    runs, reports = [], []
    for i in (1, 2):
        reports.append(replay_once(bag, params, work / f"replay_{i}", work / f"run_{i}.log", env))
        runs.append(recorded_frames(work / f"replay_{i}", stamps))
    core = track(detect_all(RosbagFrames(bag, TOPIC + "/compressed"), args.score_threshold), stamps, TrackerParams())
    stats = [describe(frames) for frames, _ in runs] + [describe(core)]
    replays_same = same_frames(runs[0][0], runs[1][0])
    core_same = same_frames(runs[0][0], core)
    n = len(stamps)
    names = ["ROS replay 1", "ROS replay 2", "core on the bag's frames"]
    lines = [
        "## Through ROS replay",
        "",
        f"The video as a bag (`trt-perception make-bag --compressed jpeg --rate {fps:g}`, {n} frames), "
        "`trt-perception run` (detector_node, ONNX Runtime, `tracking: true`, `score_threshold: "
        f"{args.score_threshold}`, tracker defaults) and `trt-perception replay --rate 0 --record`, "
        "twice, a new node each time.",
        "",
        "| run | frames answered | ids | detections published | with an id | track length median / mean / max | "
        "tracks >= 10 frames | re-found after a gap | jumps (IoU < 0.1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {name} | {n - missing if missing is not None else n}/{n} | {r['ids']} | {r['published']} | "
          f"{r['with_id'] / max(r['published'], 1):.0%} | {r['length_median']:g} / {r['length_mean']:.1f} / "
          f"{r['length_max']} | {r['tracks_10_frames']} | {r['refound']} | {r['jumps']} |"
          for name, r, missing in zip(names, stats, [runs[0][1], runs[1][1], None])],
        "",
        f"- Determinism: replay 2 published the same ids as replay 1 in {replays_same[0]}/{n} frames, the "
        f"same ids and boxes (within 0.01 px) in {replays_same[1]}/{n}.",
        f"- ROS against the core: replay 1 and the core's tracker on the same JPEG frames and stamps agree on "
        f"the ids in {core_same[0]}/{n} frames, on ids and boxes in {core_same[1]}/{n}.",
        "",
    ]
    data = {"frames": n, "runs": dict(zip(names, stats)), "missing": [runs[0][1], runs[1][1]],
            "replays_same_ids": replays_same[0], "replays_same_ids_and_boxes": replays_same[1],
            "core_same_ids": core_same[0], "core_same_ids_and_boxes": core_same[1],
            "replay_reports_frames_out": [r.get("frames_out") for r in reports]}
    return lines, data


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=ROOT.parent / "shared" / "data" / "vtest.avi",
                        help="video (default ../shared/data/vtest.avi, OpenCV's vtest.avi)")
    parser.add_argument("--fps", type=float, help="frame rate of the stamps (default: the video's)")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="decoder threshold: the tracker's low-score detections lie between it and "
                             "high_threshold (default 0.3)")
    parser.add_argument("--no-replay", action="store_true", help="the core part only")
    parser.add_argument("--domain-id", default=os.environ.get("ROS_DOMAIN_ID", "44"),
                        help="ROS_DOMAIN_ID of the replay (default $ROS_DOMAIN_ID or 44)")
    parser.add_argument("--work", type=Path, help="keep the bag and recordings here (default: a temporary dir)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    frames = open_frames(args.input)
    fps = args.fps or float(getattr(frames, "fps", 0.0)) or 10.0
    started = time.time()
    dets = detect_all(frames, args.score_threshold)
    stamps = [round(index * 1e9 / fps) for index in range(len(dets))]
    variants = {"default": TrackerParams(), "no motion gate": TrackerParams(motion_gate=False),
                "min_hits 2": TrackerParams(min_hits=2)}
    results = {name: describe(track(dets, stamps, params)) for name, params in variants.items()}
    name = args.input.name
    lines = [
        f"# Track ids on {name} (no ground truth)",
        "",
        f"`benchmarks/tracking_vtest.py --input {args.input.name}{f' --fps {args.fps:g}' if args.fps else ''}`: "
        f"{len(dets)} frames, stamps at {fps:g} frames/s, decoder score_threshold {args.score_threshold}. "
        "Behaviour, not a score (see the script's docstring for the statistics).",
        "",
        "## Core: detector, then the tracker with three settings",
        "",
        "| tracker | ids | detections published | with an id | track length median / mean / max | "
        "tracks >= 10 frames | re-found after a gap | jumps (IoU < 0.1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {r['ids']} | {r['published']} | {r['with_id'] / max(r['published'], 1):.0%} | "
          f"{r['length_median']:g} / {r['length_mean']:.1f} / {r['length_max']} | {r['tracks_10_frames']} | "
          f"{r['refound']} | {r['jumps']} |" for n, r in results.items()],
        "",
    ]
    data: dict[str, Any] = {"input": name, "frames": len(dets), "fps": fps, "score_threshold": args.score_threshold,
                            "core": results}
    if not args.no_replay:
        with tempfile.TemporaryDirectory(prefix="tracking_vtest_") as tmp:
            work = args.work or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            replay_lines, data["replay"] = replay_section(args, fps, work)
        lines += replay_lines
    lines += [f"Run time {time.time() - started:.0f} s.", ""]
    atomic_write_text(args.output.with_suffix(".md"), "\n".join(lines))
    atomic_write_text(args.output.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
