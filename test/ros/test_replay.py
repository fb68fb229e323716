"""End to end: the sample bag -> `trt-perception replay` -> detector nodes started by the system
runner -> recorded bag and report; real-time pacing, raw images, loops and remaps; errors."""

import contextlib
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import RosHarness
from rosbags.highlevel import AnyReader

from trt_perception.cli import main
from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.bag_writer import package_typestore
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.io.frames_to_bag import ImageBagOptions, write_image_bag, write_image_topics
from trt_perception.core.pipeline import Pipeline
from trt_perception.ros.detector_node import DEFAULT_MODEL
from trt_perception.ros.resources import share_dir
from trt_perception.ros.system import system_plan
from trt_perception.ros.system_runner import InProcessSystem

ROOT = Path(__file__).resolve().parents[2]
BAG = ROOT / "data" / "vtest_bag"
TOPIC = "/camera/image_raw/compressed"
#: centres of the people in frame 20 of the sample bag, read off the image by hand (x, y pixels)
PEOPLE_FRAME_20 = [(52, 207), (174, 187), (343, 260), (497, 216), (547, 296), (638, 163)]


@contextlib.contextmanager
def running_detectors(tmp_path_factory, cameras: str, params_yaml: str):
    """detector_node on each of ``cameras`` (comma list) with config/detector.yaml and then
    ``params_yaml`` (text of a parameter file), spinning in the background; yields the harness.
    """
    params = tmp_path_factory.mktemp("params") / "replay.yaml"
    params.write_text(params_yaml)
    harness = RosHarness()
    running = InProcessSystem(system_plan(["detector"], cameras,
                                          [str(ROOT / "config" / "detector.yaml"), str(params)]), harness.context)
    try:
        assert running.start() == []
        running.spin_in_background()
        yield harness
    finally:
        running.close()
        harness.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """detector_node on /camera (compressed input, per-namespace section) and /raw_cam (raw)."""
    with running_detectors(tmp_path_factory, "/camera,/raw_cam",
                           "/**/detector_node:\n  ros__parameters: {backend: onnxruntime, threads: 1}\n"
                           "/camera/detector_node:\n  ros__parameters: {input_type: compressed}\n") as harness:
        yield harness


def recorded(bag, topic):
    """(stamp ns, frame_id, [(cx, cy, w, h, label, score)]) per Detection2DArray on ``topic``."""
    with AnyReader([Path(bag)], default_typestore=package_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        out = []
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            boxes = [(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
                      d.results[0].hypothesis.class_id, d.results[0].hypothesis.score) for d in msg.detections]
            out.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.header.frame_id, boxes))
        return out, {c.topic: c.digest for c in reader.connections}


def replay(tmp_path, name, *args):
    out = tmp_path / name
    code = main(["replay", "--bag", str(BAG), "--record", str(out / "bag"), "--report", str(out / "report.json"),
                 "--plot", str(out / "latency.png"), "--wait", "30", *args])
    assert code == 0
    return json.loads((out / "report.json").read_text()), out


def test_every_frame_answered_with_its_header_people_where_they_are_and_replays_identical(system, tmp_path):
    report, out = replay(tmp_path, "first", "--rate", "0")
    assert (report["frames_in"], report["frames_out"], report["dropped"]) == (40, 40, 0)
    assert set(report["outputs"]) == {"/camera/detections", "/camera/detector/latency"}   # not /raw_cam
    latency = report["outputs"]["/camera/detector/latency"]
    assert latency["answered"] == 40 and latency["stages_ms"]["inference"]["count"] == 40
    assert latency["stages_ms"]["inference"]["p50"] > 0
    assert cv2.imread(str(out / "latency.png")).shape == (560, 1000, 3)

    detections, digests = recorded(out / "bag", "/camera/detections")
    with AnyReader([BAG]) as reader:
        inputs = [(reader.deserialize(raw, c.msgtype).header.stamp, c) for c, _, raw in reader.messages()]
    assert [(s, f) for s, f, _ in detections] == [(st.sec * 10**9 + st.nanosec, "camera") for st, _ in inputs]
    published = {f"RIHS{i.topic_type_hash.version:02d}_{i.topic_type_hash.value.hex()}"
                 for i in system.node.get_publishers_info_by_topic("/camera/detections")}
    assert published == {digests["/camera/detections"]}   # the bag's type hash is rosidl's

    # the same people as `trt-perception detect` finds on the same frames (same model, backend, threads)
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        for (_, pixels), (_, _, boxes) in zip(RosbagFrames(BAG, TOPIC), detections):
            want = pipeline.run(pixels, "bgr")[0]
            assert len(boxes) == len(want.scores)
            for (cx, cy, w, h, label, score), box, want_score, want_label in zip(
                    boxes, want.boxes_xyxy, want.scores, want.labels):
                np.testing.assert_allclose([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], box, atol=1e-3)
                assert score == pytest.approx(want_score, abs=1e-5) and label == want_label
    for x, y in PEOPLE_FRAME_20:
        assert any(abs(x - cx) < w / 2 and abs(y - cy) < h / 2 for cx, cy, w, h, _, _ in detections[20][2]), (x, y)
    counts = [len(boxes) for _, _, boxes in detections]
    assert report["outputs"]["/camera/detections"]["objects_per_frame"]["total"] == sum(counts)
    assert min(counts) >= 3

    again, out2 = replay(tmp_path, "second", "--rate", "0")
    assert again["frames_out"] == 40
    assert recorded(out2 / "bag", "/camera/detections")[0] == detections


def test_raw_images_at_the_bags_pace_looped_and_remapped(system, tmp_path):
    frames = [(i, px) for i, (_, px) in enumerate(open_frames(ROOT / "test" / "data"))]
    bag = tmp_path / "raw_bag"
    write_image_bag(frames, bag, ImageBagOptions(topic="/camera/image_raw", frame_id="raw_optical", rate=5.0,
                                                 start_ns=1_700_000_000 * 10**9, storage="mcap"))
    out = tmp_path / "out"
    assert main(["replay", "--bag", str(bag), "--remap", "/camera/image_raw:=/raw_cam/image_raw", "--rate", "2",
                 "--loop", "2", "--record", str(out / "bag"), "--report", str(out / "report.json"),
                 "--storage", "mcap", "--wait", "30"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["outputs"]) == {"/raw_cam/detections", "/raw_cam/detector/latency"}
    assert report["frames_in"] == 8 and report["inputs"]["/raw_cam/image_raw"]["published"] == 8
    # 4 frames 0.2 s apart at twice the pace: 0.3 s from first to last in each of the two loops
    assert report["wall_s"] >= 0.6
    detections, _ = recorded(out / "bag", "/raw_cam/detections")
    assert report["frames_out"] == len(detections) >= 1
    assert report["frames_out"] + report["dropped"] == 8
    assert {frame_id for _, frame_id, _ in detections} == {"raw_optical"}
    assert [f["loop"] for f in report["frames"]] == [0] * 4 + [1] * 4


def test_replay_errors_are_named(system, tmp_path, capsys):
    assert main(["replay", "--bag", str(BAG), "--remap", f"{TOPIC}:=/nobody/image_raw/compressed",
                 "--wait", "1"]) == 1
    assert "no node subscribes to /nobody/image_raw/compressed" in capsys.readouterr().err
    assert main(["replay", "--bag", str(BAG), "--topics", "/camera/image_raw"]) == 1
    assert f"image topics: ['{TOPIC}']" in capsys.readouterr().err
    assert main(["replay", "--bag", str(BAG), "--remap", "camera:=/x"]) == 1
    assert "--remap takes /FROM:=/TO" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["replay", "--bag", str(BAG), "--record", str(tmp_path / "taken"), "--wait", "1"]) == 1
    assert "exists already" in capsys.readouterr().err


def test_the_command_line_is_not_read_as_ros_arguments(tmp_path, capfd, monkeypatch):
    """rclpy.init() read sys.argv: replay's ``--remap /a:=/b`` became a deprecated rcl remap rule of the
    replay node itself, with a warning telling the user to write ``--ros-args --remap``."""
    monkeypatch.setattr(sys, "argv", ["trt-perception", "replay", "--bag", str(BAG), "--remap",
                                      f"{TOPIC}:=/nobody/image_raw/compressed", "--wait", "1"])
    assert main() == 1
    err = capfd.readouterr().err
    assert "no node subscribes to /nobody/image_raw/compressed" in err
    assert "remap rule" not in err


def test_named_outputs_are_expected_for_every_frame(system, tmp_path):
    frames = [(i, px) for i, (_, px) in enumerate(open_frames(ROOT / "test" / "data"))]
    bag = tmp_path / "raw_bag"
    write_image_bag(frames, bag, ImageBagOptions(topic="/camera/image_raw", frame_id="raw_optical", rate=5.0,
                                                 start_ns=1_700_000_000 * 10**9))
    out = tmp_path / "out"
    assert main(["replay", "--bag", str(bag), "--remap", "/camera/image_raw:=/raw_cam/image_raw", "--rate", "0",
                 "--outputs", "/raw_cam/detections", "--report", str(out / "report.json"), "--wait", "30"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["outputs"]) == {"/raw_cam/detections"}
    assert report["frames_in"] == report["frames_out"] == 4 and report["dropped"] == 0


def test_two_cameras_with_equal_stamps_and_frame_ids_are_matched_per_camera(system, tmp_path):
    """One bag, two cameras (compressed /camera, raw /raw_cam) showing different frames under the
    same stamps and frame_id: each frame is answered by its own camera's outputs only, with the
    detections of its own image, discovered or named with --outputs."""
    frames = [(i, px) for i, (_, px) in enumerate(open_frames(ROOT / "test" / "data"))]
    shifted = frames[2:] + frames[:2]
    bag = tmp_path / "two_cameras"
    start = 1_700_000_000 * 10**9
    write_image_topics([(ImageBagOptions(topic=TOPIC, frame_id="same", start_ns=start, compressed="jpeg"), frames),
                        (ImageBagOptions(topic="/raw_cam/image_raw", frame_id="same", start_ns=start), shifted)],
                       bag)
    want = {}
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        for topic in (TOPIC, "/raw_cam/image_raw"):
            want[topic] = [len(pipeline.run(pixels, "bgr")[0].scores) for _, pixels in RosbagFrames(bag, topic)]
    assert want[TOPIC] != want["/raw_cam/image_raw"]   # the cameras see different things
    for named in ([], ["--outputs", "/camera/detections", "/raw_cam/detections"]):
        out = tmp_path / f"out{len(named)}"
        assert main(["replay", "--bag", str(bag), "--rate", "0", "--report", str(out / "report.json"),
                     "--wait", "30", *named]) == 0
        report = json.loads((out / "report.json").read_text())
        assert (report["frames_in"], report["frames_out"], report["dropped"]) == (8, 8, 0)
        assert all(section["unmatched"] == 0 for section in report["outputs"].values())
        for frame in report["frames"]:
            own = "/camera/detections" if frame["input"] == TOPIC else "/raw_cam/detections"
            assert own in frame["results"] and not any(
                t.endswith("detections") and t != own for t in frame["results"])
            assert frame["results"][own]["objects"] == want[frame["input"]][frame["index"]]


def test_fixed_rate_runs_and_peak_search_on_a_real_node(system, tmp_path, capsys):
    """ros2_benchmark-style replay against the /camera node of this process: a 4 Hz run, then a
    one-rate peak search; per-camera counts, the node's CPU and RSS, JSON, table and PNG."""
    out = tmp_path / "bench"
    assert main(["replay", "--bag", str(BAG), "--rate-hz", "4", "--trial-s", "1", "--timeout", "2",
                 "--find-peak", "--peak-range", "2,2", "--repeats", "1", "--node-pid", str(os.getpid()),
                 "--report", str(out / "bench.json"), "--plot", str(out / "bench.png"), "--wait", "30"]) == 0
    report = json.loads((out / "bench.json").read_text())
    (run,) = report["fixed_rate"]
    camera = run["cameras"][TOPIC]
    assert run["rate_hz"] == 4 and camera["published"] == 4
    assert 0 <= camera["answered"] <= 4 and camera["unanswered"] == (4 - camera["answered"]) / 4
    if camera["answered"]:
        assert camera["round_trip_ms"]["p50"] > 0
    assert run["cpu_percent"] > 0 and run["rss_mib"] > 50
    (peak_trial,) = report["peak"]["trials"]
    assert peak_trial["rate_hz"] == 2 and peak_trial["cameras"][TOPIC]["published"] == 2
    assert report["peak"]["peak_hz"] == (2 if peak_trial["unanswered"] <= 0.05 else None)
    printed = capsys.readouterr().out
    assert "fixed-rate runs" in printed and "peak rate with <= 5 % unanswered" in printed
    assert cv2.imread(str(out / "bench.png")).shape == (560, 1000, 3)


def test_fixed_rate_run_publishes_every_camera_at_the_rate(system, tmp_path):
    """Two cameras of different lengths (4 and 2 frames) at 3 Hz for 2 s: 6 frames each, the
    shorter one cycled; each answered by its own node."""
    frames = [(i, px) for i, (_, px) in enumerate(open_frames(ROOT / "test" / "data"))]
    bag = tmp_path / "two_cameras"
    start = 1_700_000_000 * 10**9
    write_image_topics([(ImageBagOptions(topic=TOPIC, frame_id="a", start_ns=start, compressed="jpeg"), frames),
                        (ImageBagOptions(topic="/raw_cam/image_raw", frame_id="b", start_ns=start), frames[:2])],
                       bag)
    out = tmp_path / "bench.json"
    assert main(["replay", "--bag", str(bag), "--rate-hz", "3", "--trial-s", "2", "--timeout", "3",
                 "--report", str(out), "--wait", "30"]) == 0
    (run,) = json.loads(out.read_text())["fixed_rate"]
    assert set(run["cameras"]) == {TOPIC, "/raw_cam/image_raw"}
    for camera in run["cameras"].values():
        assert camera["published"] == 6 and camera["answered"] >= 1
    assert run["cpu_percent"] is None and run["rss_mib"] is None   # no --node-pid
