"""multi_camera_node: per camera, the detections the single-camera pipeline gives, in the camera's
namespace with its header; cameras of different sizes and encodings, a camera that stops, a camera
sending bad frames; counts per camera and batch diagnostics."""

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
from trt_perception.ros.detector_node import DEFAULT_MODEL
from trt_perception.ros.multi_camera_node import MultiCameraNode, camera_list, check_image_topic
from trt_perception.ros.resources import share_dir
from trt_perception.ros.system import system_plan

DATA = Path(__file__).resolve().parents[1] / "data"
CAMERAS = ["/cam_a", "/cam_b", "/cam_c"]


def frames():
    """Each camera its own source: full-size BGR, half-size RGB, a 300x400 grey crop."""
    images = [cv2.imread(str(p)) for p in sorted(DATA.glob("vtest_*.jpg"))]
    return {
        "/cam_a": [(img, "bgr8") for img in images],
        "/cam_b": [(cv2.cvtColor(cv2.resize(img, (384, 288)), cv2.COLOR_BGR2RGB), "rgb8") for img in images],
        "/cam_c": [(np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[100:400, 200:500]), "mono8")
                   for img in images],
    }


def image_msg(pixels, encoding, stamp_sec, frame_id):
    header = Header(frame_id=frame_id)
    header.stamp.sec = stamp_sec
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    return Image(header=header, height=h, width=w, encoding=encoding, step=w * channels, data=pixels.tobytes())


@pytest.fixture(scope="module")
def single():
    with Pipeline.from_config(share_dir() / DEFAULT_MODEL, "onnxruntime", threads=1) as pipeline:
        yield pipeline


def expected_of(single, pixels, encoding):
    order = {"bgr8": "bgr", "rgb8": "rgb", "mono8": "mono"}[encoding]
    return single.run(pixels, order)[0]


def assert_same(msg, expected):
    assert len(msg.detections) == len(expected)
    for det, box, score, label in zip(msg.detections, expected.boxes_xyxy, expected.scores, expected.labels):
        assert det.results[0].hypothesis.class_id == label
        assert det.results[0].hypothesis.score == pytest.approx(float(score), abs=1e-5)
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        assert (det.bbox.center.position.x, det.bbox.center.position.y) == pytest.approx(centre, abs=1e-3)
        assert (det.bbox.size_x, det.bbox.size_y) == pytest.approx((box[2] - box[0], box[3] - box[1]), abs=1e-3)


def make_node(ros, cameras, **params):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("cameras", value=cameras), Parameter("image_topic", value="image_raw")]
    overrides += [Parameter(name, value=value) for name, value in params.items()]
    return ros.add(MultiCameraNode(context=ros.context, parameter_overrides=overrides))


class Cameras:
    """A publisher of ``<camera>/image_raw`` and subscriptions of the camera's outputs."""

    def __init__(self, ros, cameras):
        self.ros = ros
        self.pubs = {c: ros.node.create_publisher(Image, f"{c}/image_raw", qos_profile_sensor_data) for c in cameras}
        self.detections = {c: [] for c in cameras}
        self.latency = {c: [] for c in cameras}
        for c in cameras:
            ros.node.create_subscription(Detection2DArray, f"{c}/detections", self.detections[c].append, 50)
            ros.node.create_subscription(FrameLatency, f"{c}/detector/latency", self.latency[c].append, 50)

    def answered(self, camera, stamp):
        return [m for m in self.detections[camera] if m.header.stamp.sec == stamp]

    def send(self, messages, timeout=20.0):
        """Publish ``{camera: msg}`` together (again every 0.3 s) until every camera's answer came."""
        def all_answered():
            missing = [c for c, m in messages.items() if not self.answered(c, m.header.stamp.sec)]
            for camera in missing:
                self.pubs[camera].publish(messages[camera])
            return not missing
        assert wait_for(all_answered, timeout=timeout, period=0.3), f"no answer to {list(messages)}"


def test_each_camera_gets_the_single_camera_pipelines_detections_in_its_namespace(ros, single):
    node = make_node(ros, CAMERAS, batch_timeout_ms=200.0)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    cams = Cameras(ros, CAMERAS)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    sources = frames()
    for index in range(len(sources["/cam_a"])):
        cams.send({c: image_msg(*sources[c][index], 100 + index, c.strip("/")) for c in CAMERAS})
    for camera in CAMERAS:
        for index, (pixels, encoding) in enumerate(sources[camera]):
            (msg, *_) = cams.answered(camera, 100 + index)
            assert msg.header.frame_id == camera.strip("/")
            assert_same(msg, expected_of(single, pixels, encoding))
    assert sum(len(expected_of(single, *f)) for c in CAMERAS for f in sources[c]) > 0, "the frames show people"
    assert wait_for(lambda: all(cams.latency[c] for c in CAMERAS))
    latency = cams.latency["/cam_a"][-1]
    assert latency.inference.nanosec > 0 and latency.header.frame_id == "cam_a"
    sizes = node.batch_stats.sizes()
    assert sum(size * count for size, count in sizes.items()) >= 3 * len(sources["/cam_a"])
    for task in node.tasks:
        counters = node.input_stats(task).received.total
        assert counters >= len(sources["/cam_a"]) and task.stats.failed.total == 0
    names = [s.task for s in node.health_statuses()]
    assert names == ["detector /cam_a latency", "detector /cam_a frame rate", "detector /cam_b latency",
                     "detector /cam_b frame rate", "detector /cam_c latency", "detector /cam_c frame rate",
                     "batches", names[-1]]


def test_a_camera_that_stops_does_not_stall_the_others(ros, single):
    node = make_node(ros, CAMERAS[:2], batch_timeout_ms=50.0)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    cams = Cameras(ros, CAMERAS[:2])
    assert lifecycle.set("configure") and lifecycle.set("activate")
    sources = frames()
    cams.send({c: image_msg(*sources[c][0], 1, c) for c in CAMERAS[:2]})
    for index in range(1, len(sources["/cam_a"])):   # /cam_b has stopped
        cams.send({"/cam_a": image_msg(*sources["/cam_a"][index], 1 + index, "a")})
        (msg, *_) = cams.answered("/cam_a", 1 + index)
        assert_same(msg, expected_of(single, *sources["/cam_a"][index]))
    assert len(cams.detections["/cam_b"]) >= 1 and not cams.answered("/cam_b", 2)
    assert node.batch_stats.sizes()[1] >= len(sources["/cam_a"]) - 1
    assert wait_for(lambda: any(m.header.stamp.sec == 2 for m in cams.latency["/cam_a"]))
    waited = [m for m in cams.latency["/cam_a"] if m.header.stamp.sec == 2][0].batch_wait
    assert waited.sec * 1e3 + waited.nanosec / 1e6 >= 45.0, "alone, a frame waits for the batch timeout"


def test_bad_frames_of_one_camera_are_rejected_for_it_and_the_others_are_served(ros, single):
    node = make_node(ros, CAMERAS[:2], batch_timeout_ms=50.0)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    cams = Cameras(ros, CAMERAS[:2])
    assert lifecycle.set("configure") and lifecycle.set("activate")
    good = image_msg(*frames()["/cam_a"][0], 3, "a")
    bad = Image(header=good.header, height=576, width=768, encoding="bgr8", step=2304, data=bytes(1000))
    task_b = node.tasks[1]
    assert wait_for(lambda: (cams.pubs["/cam_b"].publish(bad), node.input_stats(task_b).rejected.total >= 3)[1],
                    timeout=10, period=0.1)
    cams.send({"/cam_a": good})
    assert node.input_stats(node.tasks[0]).rejected.total == 0
    assert task_b.stats.failed.total == 0 and not cams.detections["/cam_b"]


def test_compressed_input_and_topics_of_a_namespaced_camera(ros, single):
    make_node(ros, ["/site/cam_a"], input_type="compressed", publish_debug_image=True)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    detections, debug = [], []
    ros.node.create_subscription(Detection2DArray, "/site/cam_a/detections", detections.append, 10)
    ros.node.create_subscription(Image, "/site/cam_a/detector/debug_image", debug.append, 10)
    pub = ros.node.create_publisher(CompressedImage, "/site/cam_a/image_raw/compressed", qos_profile_sensor_data)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    pixels = frames()["/cam_a"][1][0]
    msg = CompressedImage(format="png", data=cv2.imencode(".png", pixels)[1].tobytes())
    msg.header.stamp.sec = 9
    assert wait_for(lambda: (pub.publish(msg), bool(detections))[1], timeout=15, period=0.3)
    assert_same(detections[0], expected_of(single, pixels, "bgr8"))
    assert wait_for(lambda: bool(debug)) and (debug[0].height, debug[0].width) == pixels.shape[:2]


@pytest.mark.parametrize("cameras, params", [(["/cam_a", "cam_a"], {}), (["/"], {}),
                                             (["/cam_a"], {"image_topic": "/abs/image"}),
                                             (["/cam_a", "/cam_b"], {"preprocess": "gpu"})])
def test_bad_parameters_fail_configure_and_leave_the_node_unconfigured(ros, cameras, params):
    node = make_node(ros, cameras, **params)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and not node.tasks and node.batch_pipeline is None


def test_runtime_parameters_are_checked_and_reach_every_camera(ros):
    node = make_node(ros, ["/cam_a", "/cam_b"])
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    assert lifecycle.set("configure") and [t.camera for t in node.tasks] == ["/cam_a", "/cam_b"]
    assert not node.set_parameters([Parameter("score_threshold", value=2.0)])[0].successful
    assert node.set_parameters([Parameter("score_threshold", value=0.7)])[0].successful
    assert node.batch_pipeline.decoder.runtime_params()["score_threshold"] == 0.7
    assert node.set_parameters([Parameter("latency_warn_ms", value=5.0)])[0].successful
    assert [t.bounds.latency_warn_ms for t in node.tasks] == [5.0, 5.0]


def test_camera_list_and_image_topic_checks():
    assert camera_list(["cam_a", "/cam_b/", ""]) == ["/cam_a", "/cam_b"]
    for bad in (["/"], [], ["/cam_a", "/cam_a"], ["/1cam"]):
        with pytest.raises(ValueError):
            camera_list(bad)
    assert check_image_topic("image_raw") == "image_raw"
    with pytest.raises(ValueError):
        check_image_topic("/abs/image")


def test_system_plan_runs_one_batch_node_for_all_cameras():
    plan = system_plan(["batch", "pose"], "/cam_a,/cam_b", ["x.yaml"], "image", "compressed")
    batch = [spec for spec in plan if spec.kind == "batch"]
    assert len(batch) == 1 and batch[0].fqn == "/multi_camera_node"
    assert dict(batch[0].overrides) == {"cameras": ["/cam_a", "/cam_b"], "image_topic": "image",
                                        "input_type": "compressed"}
    assert [spec.fqn for spec in plan if spec.kind == "pose"] == ["/cam_a/pose_node", "/cam_b/pose_node"]
    with pytest.raises(ValueError, match="detector"):
        system_plan(["batch", "detector"], "/cam_a", [])
    with pytest.raises(ValueError, match="root"):
        system_plan(["batch"], "/", [])


def test_a_frame_that_cannot_be_published_is_counted_failed_and_the_other_cameras_are_served(ros, single):
    """Fault injection: publishing /cam_a's results raises; /cam_b's frames are still published and
    /cam_a's are counted as failed (never lost uncounted)."""
    node = make_node(ros, CAMERAS[:2], batch_timeout_ms=200.0)
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    cams = Cameras(ros, CAMERAS[:2])
    assert lifecycle.set("configure") and lifecycle.set("activate")
    task_a = node.tasks[0]

    def broken(*args, **kwargs):
        raise RuntimeError("publisher gone")
    task_a.finish = broken
    sources = frames()
    cams.send({"/cam_b": image_msg(*sources["/cam_b"][0], 7, "b")}, timeout=20.0)
    cams.pubs["/cam_a"].publish(image_msg(*sources["/cam_a"][0], 7, "a"))
    assert wait_for(lambda: task_a.stats.failed.total >= 1, timeout=20.0)
    assert not cams.detections["/cam_a"] and node.tasks[1].stats.failed.total == 0
