"""detector_node through the standard lifecycle services, on real frames of vtest.avi."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import LifecycleClient, wait_for
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.core.pipeline import Pipeline
from trt_perception.msg import FrameLatency
from trt_perception.ros.detector_node import DEFAULT_MODEL, DetectorNode
from trt_perception.ros.resources import share_dir

DATA = Path(__file__).resolve().parents[1] / "data"


def bgr_msg(pixels: np.ndarray, stamp_sec: int, frame_id: str = "cam0") -> Image:
    header = Header(frame_id=frame_id)
    header.stamp.sec = stamp_sec
    h, w = pixels.shape[:2]
    return Image(header=header, height=h, width=w, encoding="bgr8", step=w * 3, data=pixels.tobytes())


@pytest.fixture
def detector(ros):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1)]
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    yield node


def collect(ros, msg_type, topic):
    got = []
    ros.node.create_subscription(msg_type, topic, got.append, 10)
    return got


def publish_until(ros, publisher, msg, received, count=1, timeout=15.0):
    return wait_for(lambda: (publisher.publish(msg), len(received) >= count)[1], timeout=timeout, period=0.2)


def test_lifecycle_through_services_publishes_only_while_active(ros, detector):
    frame = cv2.imread(str(DATA / "vtest_150.jpg"))
    lifecycle = LifecycleClient(ros, "detector_node")
    detections = collect(ros, Detection2DArray, "detections")
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)

    assert lifecycle.state() == "unconfigured"
    assert lifecycle.set("configure")
    assert lifecycle.state() == "inactive"
    for _ in range(5):  # inactive: not subscribed, publishes nothing
        images.publish(bgr_msg(frame, 1))
    assert not wait_for(lambda: bool(detections), timeout=1.0)

    assert lifecycle.set("activate")
    assert lifecycle.state() == "active"
    assert publish_until(ros, images, bgr_msg(frame, 42), detections)
    assert detections[0].header.stamp.sec == 42 and detections[0].header.frame_id == "cam0"

    assert lifecycle.set("deactivate")
    assert lifecycle.state() == "inactive"
    seen = len(detections)
    for _ in range(5):
        images.publish(bgr_msg(frame, 43))
    assert not wait_for(lambda: len(detections) > seen, timeout=1.0)

    assert lifecycle.set("cleanup")
    assert lifecycle.state() == "unconfigured"
    assert detector.pipeline is None
    assert lifecycle.set("shutdown")
    assert lifecycle.state() == "finalized"


@pytest.mark.parametrize("name", ["vtest_000.jpg", "vtest_300.jpg"])
def test_node_publishes_the_pipelines_people_in_source_pixels(ros, detector, name):
    frame = cv2.imread(str(DATA / name))
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        expected, _ = pipeline.run(frame, "bgr")
    assert len(expected) >= 1, "the frame shows pedestrians"

    lifecycle = LifecycleClient(ros, "detector_node")
    detections = collect(ros, Detection2DArray, "detections")
    latency = collect(ros, FrameLatency, "latency")
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert publish_until(ros, images, bgr_msg(frame, 7), detections)
    got = detections[0]
    assert len(got.detections) == len(expected)
    for det, box, score, label in zip(got.detections, expected.boxes_xyxy, expected.scores, expected.labels):
        assert det.results[0].hypothesis.class_id == label == "pedestrian"
        assert det.results[0].hypothesis.score == pytest.approx(float(score), abs=1e-6)
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        assert (det.bbox.center.position.x, det.bbox.center.position.y) == pytest.approx(centre, abs=1e-3)
        assert (det.bbox.size_x, det.bbox.size_y) == pytest.approx((box[2] - box[0], box[3] - box[1]), abs=1e-3)
        assert 0 <= box[0] < box[2] <= frame.shape[1] and 0 <= box[1] < box[3] <= frame.shape[0]
    assert wait_for(lambda: bool(latency))
    assert latency[0].header.stamp.sec == 7 and latency[0].inference.nanosec > 0


def test_bad_frames_are_rejected_and_counted_and_the_node_keeps_serving(ros, detector):
    frame = cv2.imread(str(DATA / "vtest_450.jpg"))
    lifecycle = LifecycleClient(ros, "detector_node")
    detections = collect(ros, Detection2DArray, "detections")
    images = ros.node.create_publisher(Image, "image", 10)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    good = bgr_msg(frame, 5)
    bad = [
        Image(header=good.header, height=4, width=4, encoding="weird8", step=4, data=bytes(16)),
        Image(header=good.header, height=576, width=768, encoding="bgr8", step=2304, data=bytes(1000)),
        Image(header=good.header, height=0, width=0, encoding="bgr8", step=0, data=b""),
    ]
    for msg in bad:
        images.publish(msg)
        assert wait_for(lambda: detector.counters.rejected + detector.counters.dropped_busy
                        >= bad.index(msg) + 1, timeout=5)
    assert lifecycle.state() == "active"
    assert publish_until(ros, images, good, detections)
    assert detections[-1].header.stamp.sec == 5 and len(detections[-1].detections) >= 1
    assert detector.counters.rejected >= 1
    assert detector.counters.failed == 0


def test_compressed_input(ros):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("input_type", value="compressed")]
    ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "detector_node")
    detections = collect(ros, Detection2DArray, "detections")
    images = ros.node.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
    jpeg = (DATA / "vtest_000.jpg").read_bytes()
    assert lifecycle.set("configure") and lifecycle.set("activate")
    msg = CompressedImage(header=Header(frame_id="cam1"), format="jpeg", data=jpeg)
    assert publish_until(ros, images, msg, detections)
    assert detections[0].header.frame_id == "cam1" and len(detections[0].detections) >= 1


def test_configure_fails_cleanly_on_a_missing_model_and_can_be_retried(ros, tmp_path):
    overrides = [Parameter("backend", value="onnxruntime"),
                 Parameter("model_config", value=str(tmp_path / "missing.yaml"))]
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "detector_node")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured"
    assert node.pipeline is None
    assert not lifecycle.set("configure")  # retry possible, same clear failure
    assert lifecycle.state() == "unconfigured"


def test_runtime_thresholds_are_validated(ros, detector):
    lifecycle = LifecycleClient(ros, "detector_node")
    assert lifecycle.set("configure")
    ok = detector.set_parameters([Parameter("score_threshold", value=0.8)])[0]
    assert ok.successful and detector.pipeline.decoder.runtime_params()["score_threshold"] == 0.8
    bad = detector.set_parameters([Parameter("score_threshold", value=1.5)])[0]
    assert not bad.successful and "score_threshold" in bad.reason
    bad = detector.set_parameters([Parameter("class_filter", value=["bicycle"])])[0]
    assert not bad.successful and "bicycle" in bad.reason
    ro = detector.set_parameters([Parameter("backend", value="tensorrt")])[0]
    assert not ro.successful
    assert detector.pipeline.decoder.runtime_params()["score_threshold"] == 0.8


def test_debug_image_and_markers_when_enabled(ros):
    from visualization_msgs.msg import MarkerArray

    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("publish_debug_image", value=True), Parameter("publish_markers", value=True)]
    ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "detector_node")
    debug = collect(ros, Image, "debug_image")
    markers = collect(ros, MarkerArray, "markers")
    detections = collect(ros, Detection2DArray, "detections")
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    frame = cv2.imread(str(DATA / "vtest_000.jpg"))
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert publish_until(ros, images, bgr_msg(frame, 3), detections)
    assert wait_for(lambda: bool(debug) and bool(markers))
    drawn = np.frombuffer(bytes(debug[0].data), np.uint8).reshape(frame.shape)
    assert debug[0].encoding == "bgr8" and debug[0].header.stamp.sec == 3
    assert np.count_nonzero(np.any(drawn != frame, axis=2)) > 100  # boxes were drawn
    boxes = [m for m in markers[0].markers if m.action == m.ADD]
    assert len(boxes) == len(detections[0].detections)


def test_tensorrt_backend_without_tensorrt_fails_configure_with_the_reason(ros):
    from trt_perception.core.backends import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed: this checks the failure path without it")
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=[
        Parameter("backend", value="tensorrt"), Parameter("precision", value="fp16")]))
    lifecycle = LifecycleClient(ros, "detector_node")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and node.pipeline is None


def test_the_model_configs_decoder_thresholds_apply_unless_the_node_parameter_is_set(ros, tmp_path):
    """Review defect 3: the node's parameter defaults silently replaced the model YAML's
    ``decoder:`` values; an unset node parameter must leave the model's value, a set one wins."""
    import shutil
    model_dir = shutil.copytree(share_dir() / Path(DEFAULT_MODEL).parent, tmp_path / "model")
    config = model_dir / Path(DEFAULT_MODEL).name
    text = config.read_text().replace("score_threshold: 0.5", "score_threshold: 0.3")
    config.write_text(text.replace("  top_k: 100\n", "  top_k: 7\n"))
    node = ros.add(DetectorNode("detector_model", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("model_config", value=str(config)), Parameter("nms_iou_threshold", value=0.4)]))
    lifecycle = LifecycleClient(ros, "detector_model")
    assert lifecycle.set("configure")
    params = node.pipeline.decoder.runtime_params()
    assert (params["score_threshold"], params["top_k"]) == (0.3, 7), params     # the model's
    assert params["nms_iou_threshold"] == 0.4                                    # set on the node
    assert node.set_parameters([Parameter("score_threshold", value=0.8)])[0].successful
    assert node.pipeline.decoder.runtime_params()["score_threshold"] == 0.8


def undeclared_node(ros, tmp_path, strict):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    backend: onnxruntime\n    threads: 1\n"
                      f"    score_treshold: 0.7\n    strict_parameters: {str(strict).lower()}\n")
    return ros.add(DetectorNode(context=ros.context, cli_args=[
        "--ros-args", "--params-file", str(params), "-p", "frobnicate:=3"]))


def test_undeclared_parameters_are_named_with_the_closest_declared_one(ros, tmp_path, capfd):
    node = undeclared_node(ros, tmp_path, strict=False)
    lifecycle = LifecycleClient(ros, "detector_node")
    assert lifecycle.set("configure")           # a warning, not a failure
    err = capfd.readouterr().err
    assert ("2 parameter(s) given to /detector_node that it does not declare: frobnicate, "
            "score_treshold (did you mean score_threshold?)") in err
    assert node.pipeline.decoder.runtime_params()["score_threshold"] != 0.7   # rclpy did ignore it


def test_strict_parameters_fails_configure_on_an_undeclared_parameter(ros, tmp_path, capfd):
    node = undeclared_node(ros, tmp_path, strict=True)
    lifecycle = LifecycleClient(ros, "detector_node")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and node.pipeline is None
    assert "score_treshold (did you mean score_threshold?)" in capfd.readouterr().err
