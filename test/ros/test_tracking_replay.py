"""Tracking through replay: data/vtest_bag -> ``trt-perception replay --rate 0`` -> detector_node with
``tracking: true`` -> the ids of the core Tracker run on the bag's frames and header stamps (the
stamps drive the tracker, not the arrival times); the same bag replayed again into the same node
(its stamps jump back) gives the same tracks under new ids (the counter goes on)."""

from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader
from test_replay import BAG, TOPIC, replay, running_detectors

from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.bag_message_reader import BagImageMessages
from trt_perception.core.io.bag_writer import package_typestore
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.tracking import Tracker
from trt_perception.ros.detector_node import DEFAULT_MODEL
from trt_perception.ros.resources import share_dir


@pytest.fixture(scope="module")
def tracking_node(tmp_path_factory):
    """detector_node on /camera: compressed input, ONNX Runtime, one thread, tracking on."""
    with running_detectors(tmp_path_factory, "/camera", "/**/detector_node:\n  ros__parameters: {backend: "
                           "onnxruntime, threads: 1, input_type: compressed, tracking: true}\n") as harness:
        yield harness


def recorded_ids(bag: Path) -> list[tuple[int, list[str]]]:
    """(stamp ns, the ids of its detections) per recorded /camera/detections message."""
    with AnyReader([bag], default_typestore=package_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/detections"]
        out = []
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            out.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, [d.id for d in msg.detections]))
        return out


def test_replayed_ids_are_the_core_trackers_and_a_second_replay_repeats_the_tracks(tracking_node, tmp_path):
    report, out = replay(tmp_path, "first", "--rate", "0", "--outputs", "/camera/detections")
    assert report["frames_out"] == 40
    first = recorded_ids(out / "bag")
    stamps = [m.stamp_ns for m in BagImageMessages(BAG, [TOPIC])]
    assert [s for s, _ in first] == stamps

    tracker = Tracker()
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        core = [tracker.update(pipeline.run(pixels, "bgr")[0], stamp).ids
                for (_, pixels), stamp in zip(RosbagFrames(BAG, TOPIC), stamps)]
    assert [ids for _, ids in first] == core
    given = {i for _, ids in first for i in ids if i}
    assert len(given) >= 3

    report, out = replay(tmp_path, "second", "--rate", "0", "--outputs", "/camera/detections")
    assert report["frames_out"] == 40
    second = recorded_ids(out / "bag")
    renamed: dict[str, str] = {}
    for (_, ids1), (_, ids2) in zip(first, second):
        assert len(ids1) == len(ids2) and [i == "" for i in ids1] == [i == "" for i in ids2]
        for a, b in zip(ids1, ids2):
            if a:
                assert renamed.setdefault(a, b) == b
    assert len(set(renamed.values())) == len(renamed) == len(given)
    assert min(int(b) for b in renamed.values()) > max(int(a) for a in given)      # the counter went on
