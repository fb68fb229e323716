"""perception_node: both models on one image stream, each frame decoded once; and every node's
parameter file documents exactly the node's parameters."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from harness import LifecycleClient, wait_for
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from test_pose_node import MAP, fields_model, model_config, people  # noqa: F401 - pytest fixtures
from vision_msgs.msg import Detection2DArray

from trt_perception.core.pipeline import Pipeline
from trt_perception.msg import FrameLatency, Skeleton2DArray
from trt_perception.ros.detector_node import DEFAULT_MODEL, DetectorNode
from trt_perception.ros.multi_camera_node import MultiCameraNode
from trt_perception.ros.pose_node import PoseNode
from trt_perception.ros.resources import share_dir
from trt_perception.ros.shared_node import SharedPerceptionNode
from trt_perception.ros.task_node import COMMON_PARAMS

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "test" / "data"
FRAMES = ("vtest_000.jpg", "vtest_150.jpg", "vtest_300.jpg")


def image_msg(pixels: np.ndarray, stamp_sec: int) -> Image:
    header = Header(frame_id="cam_shared")
    header.stamp.sec = stamp_sec
    h, w = pixels.shape[:2]
    return Image(header=header, height=h, width=w, encoding="bgr8", step=w * 3, data=pixels.tobytes())


@pytest.fixture
def shared(ros, model_config):  # noqa: F811 - the imported fixture
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("qos_reliability", value="reliable"), Parameter("qos_depth", value=10),
                 Parameter("diagnostics_period", value=0.2),
                 Parameter("pose.model_config", value=str(model_config))]
    node = ros.add(SharedPerceptionNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "perception_node")
    return node, lifecycle


def collect(ros, msg_type, topic):
    got = []
    ros.node.create_subscription(msg_type, topic, got.append, 10)
    return got


def test_both_models_on_each_frame_decoded_once(ros, shared, people):  # noqa: F811 - the imported fixture
    node, lifecycle = shared
    detections, skeletons = collect(ros, Detection2DArray, "detections"), collect(ros, Skeleton2DArray, "skeletons")
    det_latency = collect(ros, FrameLatency, "detector/latency")
    pose_latency = collect(ros, FrameLatency, "pose/latency")
    images = ros.node.create_publisher(Image, "image", 10)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert wait_for(lambda: images.get_subscription_count() > 0)

    frames = [cv2.imread(str(DATA / name)) for name in FRAMES]
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        expected = [pipeline.run(frame, "bgr")[0] for frame in frames]
    for i, frame in enumerate(frames):  # one at a time: every frame reaches both tasks
        images.publish(image_msg(frame, 100 + i))
        assert wait_for(lambda: len(detections) > i and len(skeletons) > i and len(det_latency) > i
                        and len(pose_latency) > i, timeout=20), f"frame {i}: not every output arrived"

    for i, (frame, dets) in enumerate(zip(frames, expected)):
        got = detections[i]
        assert got.header.stamp.sec == 100 + i and got.header.frame_id == "cam_shared"
        assert len(got.detections) == len(dets) >= 1  # as detector_node gives: the pipeline's people
        for det, box, score in zip(got.detections, dets.boxes_xyxy, dets.scores):
            assert det.results[0].hypothesis.score == pytest.approx(float(score), abs=1e-6)
            assert det.bbox.center.position.x == pytest.approx(float(box[0] + box[2]) / 2, abs=1e-3)
            assert det.bbox.size_y == pytest.approx(float(box[3] - box[1]), abs=1e-3)
        assert skeletons[i].header.stamp.sec == 100 + i and len(skeletons[i].skeletons) == len(people)
        xs = [kp.x for skeleton in skeletons[i].skeletons for kp in skeleton.keypoints]
        assert 0 < min(xs) and max(xs) < frame.shape[1]  # source pixels of the 768-wide frame
        # one decode per frame: both tasks' latency messages carry the same convert duration
        assert det_latency[i].header.stamp.sec == pose_latency[i].header.stamp.sec == 100 + i
        assert det_latency[i].convert == pose_latency[i].convert
        assert det_latency[i].inference.nanosec > 0 and pose_latency[i].inference.nanosec > 0

    stats = node.input.stats
    assert stats.received.total == stats.converted == len(frames)
    for task in node.tasks:
        counts = task.counters(stats)
        assert (counts.received, counts.processed, counts.dropped_busy, counts.rejected, counts.failed) == \
            (len(frames), len(frames), 0, 0, 0)


def test_a_burst_keeps_the_per_task_accounting_exact(ros, shared):
    node, lifecycle = shared
    images = ros.node.create_publisher(Image, "image", 10)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert wait_for(lambda: images.get_subscription_count() > 0)
    msg = image_msg(cv2.imread(str(DATA / "vtest_000.jpg")), 1)
    bad = Image(header=msg.header, height=2, width=2, encoding="weird8", step=2, data=bytes(4))
    for i in range(12):  # the last one is bad: the newest frame is always decoded, so it is rejected
        images.publish(bad if i % 4 == 3 else msg)
    stats = node.input.stats
    seen = []

    def settled():  # every received frame accounted for by both tasks, twice in a row 0.5 s apart
        counts = [task.counters(stats) for task in node.tasks]
        seen.append(stats.received.total)
        return len(seen) > 1 and seen[-1] == seen[-2] > 0 and all(
            c.processed + c.dropped_busy + c.rejected + c.failed == c.received for c in counts)

    assert wait_for(settled, timeout=30, period=0.5)
    # decoded once: every frame is either dropped before decoding, rejected, or converted once,
    # and each task handled or dropped every converted frame
    assert stats.converted == stats.received.total - stats.dropped.total - stats.rejected.total
    assert stats.rejected.total >= 1
    for task in node.tasks:
        assert task.stats.frames.total + task.stats.dropped.total + task.stats.failed.total == stats.converted


def test_prefixed_runtime_parameters_reach_their_task_only(ros, shared):
    node, lifecycle = shared
    assert lifecycle.set("configure")
    detector, pose = node.tasks
    assert node.set_parameters([Parameter("detector.score_threshold", value=0.8)])[0].successful
    assert detector.pipeline.decoder.runtime_params()["score_threshold"] == 0.8
    assert node.set_parameters([Parameter("pose.peak_threshold", value=0.3)])[0].successful
    assert pose.pipeline.decoder.runtime_params()["peak_threshold"] == 0.3
    bad = node.set_parameters([Parameter("pose.peak_threshold", value=2.0)])[0]
    assert not bad.successful and "pose.peak_threshold" in bad.reason
    bad = node.set_parameters([Parameter("detector.class_filter", value=["bicycle"])])[0]
    assert not bad.successful and bad.reason.startswith("detector: ") and "bicycle" in bad.reason
    bad = node.set_parameters([Parameter("pose.latency_warn_ms", value=500.0)])[0]  # above the error bound
    assert not bad.successful and bad.reason.startswith("pose: latency_warn_ms")
    # an atomic set that the second task's decoder refuses (link_threshold must be < 1) changes neither
    bad = node.set_parameters_atomically([Parameter("detector.score_threshold", value=0.4),
                                          Parameter("pose.link_threshold", value=1.0)])
    assert not bad.successful and bad.reason.startswith("pose: ") and "link_threshold" in bad.reason
    assert detector.pipeline.decoder.runtime_params()["score_threshold"] == 0.8
    assert node.get_parameter("detector.score_threshold").value == 0.8
    assert not node.set_parameters([Parameter("pose.model_config", value="other.yaml")])[0].successful


def test_diagnostics_name_each_task(ros, shared):
    _, lifecycle = shared
    diagnostics = collect(ros, DiagnosticArray, "/diagnostics")
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert wait_for(lambda: bool(diagnostics))
    assert [s.name for s in diagnostics[-1].status] == [
        "/perception_node: detector latency", "/perception_node: detector frame rate",
        "/perception_node: pose latency", "/perception_node: pose frame rate", "/perception_node: device"]


def flatten(mapping, prefix=""):
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("node_type, config", [(DetectorNode, "detector.yaml"), (PoseNode, "pose.yaml"),
                                               (SharedPerceptionNode, "perception.yaml"),
                                               (MultiCameraNode, "multi_camera.yaml")])
def test_parameter_files_list_every_parameter_with_its_default(ros, node_type, config):
    """Every parameter with its declared default, except the decoder thresholds (``from_model``):
    set in a shipped file, they would override every model config's ``decoder:`` values."""
    node = ros.add(node_type(context=ros.context))
    (section,) = yaml.safe_load((ROOT / "config" / config).read_text()).values()
    in_file = flatten(section["ros__parameters"])
    specs = COMMON_PARAMS + node.EXTRA_PARAMS + tuple(s for t in node.tasks for s in t.specs)
    defaults = {spec.name: spec.default for spec in specs if not spec.from_model}
    assert set(in_file) == set(defaults)
    for name, value in in_file.items():
        # an empty string array cannot be written in a parameter file: [""] stands for it
        assert value == defaults[name] or (value == [""] and defaults[name] == []), name
