"""Replay both ways: one bag of two cameras of different resolutions, the second stopping half-way,
replayed into multi_camera_node (batched) and into a detector_node per camera (the single-camera
pipeline); both record the same detections for every frame of every camera."""

from pathlib import Path

import cv2
import pytest
from harness import RosHarness
from rosbags.highlevel import AnyReader

from trt_perception.cli import main
from trt_perception.core.io.bag_writer import package_typestore
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.io.frames_to_bag import ImageBagOptions, write_image_topics
from trt_perception.ros.system import system_plan
from trt_perception.ros.system_runner import InProcessSystem

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ("/**/detector_node:\n  ros__parameters: {backend: onnxruntime, threads: 1}\n"
          "/**/multi_camera_node:\n  ros__parameters: {backend: onnxruntime, threads: 1, batch_timeout_ms: 300.0}\n")


def detections(bag, topic):
    """(stamp ns, frame_id, [(cx, cy, w, h, label, score)]) of each Detection2DArray on ``topic``."""
    with AnyReader([Path(bag)], default_typestore=package_typestore()) as reader:
        out = []
        for conn, _, raw in reader.messages(connections=[c for c in reader.connections if c.topic == topic]):
            msg = reader.deserialize(raw, conn.msgtype)
            out.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.header.frame_id,
                        [(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
                          d.results[0].hypothesis.class_id, d.results[0].hypothesis.score) for d in msg.detections]))
        return sorted(out)


def replay_into(nodes, params, bag, record):
    """Start ``nodes`` (plan kinds) on /cam_a,/cam_b, replay ``bag`` at its pace, record the outputs."""
    harness = RosHarness()
    running = InProcessSystem(system_plan(nodes, "/cam_a,/cam_b", [str(params)]), harness.context)
    try:
        assert running.start() == []
        running.spin_in_background()
        assert main(["replay", "--bag", str(bag), "--record", str(record), "--wait", "30", "--timeout", "10"]) == 0
        return [node for _, node in running.nodes]
    finally:
        running.close()
        harness.close()


def test_batched_node_records_what_a_node_per_camera_records(tmp_path):
    frames = [px for _, px in open_frames(ROOT / "test" / "data")]
    small = [cv2.resize(px, (384, 288)) for px in frames[:2]]   # other resolution, stops after 2 frames
    start = 1_700_000_000 * 10**9
    bag = tmp_path / "two_cameras"
    write_image_topics([(ImageBagOptions(topic="/cam_a/image_raw", frame_id="a", rate=2.0, start_ns=start),
                         list(enumerate(frames))),
                        (ImageBagOptions(topic="/cam_b/image_raw", frame_id="b", rate=2.0, start_ns=start,
                                         encoding="rgb8"), list(enumerate(small)))], bag)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    batched = replay_into(["batch"], params, bag, tmp_path / "batched")
    replay_into(["detector"], params, bag, tmp_path / "separate")

    (node,) = batched
    assert node.batch_stats.sizes()[2] >= 1, "frames of both cameras ran in one batch"
    for topic, count in (("/cam_a/detections", len(frames)), ("/cam_b/detections", len(small))):
        got, want = detections(tmp_path / "batched", topic), detections(tmp_path / "separate", topic)
        assert len(got) == len(want) == count
        for (stamp, frame_id, boxes), (stamp_1, frame_id_1, boxes_1) in zip(got, want):
            assert (stamp, frame_id) == (stamp_1, frame_id_1)
            assert len(boxes) == len(boxes_1)
            for box, box_1 in zip(boxes, boxes_1):
                assert box[4] == box_1[4]
                assert box[:4] == pytest.approx(box_1[:4], abs=1e-3) and box[5] == pytest.approx(box_1[5], abs=1e-5)
    assert sum(len(boxes) for _, _, boxes in detections(tmp_path / "separate", "/cam_a/detections")) > 0
