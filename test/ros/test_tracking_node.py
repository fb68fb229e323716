"""detector_node with ``tracking``: track ids in the published Detection2DArray, runtime tracker
parameters, tracks forgotten at cleanup (real frames of vtest.avi, ONNX Runtime)."""

import cv2
from harness import LifecycleClient, wait_for
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from test_detector_node import DATA, bgr_msg, collect
from vision_msgs.msg import Detection2DArray

from trt_perception.ros.detector_node import DetectorNode


def test_tracking_publishes_stable_ids_and_takes_runtime_parameters(ros):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("tracking", value=True)]
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "detector_node")
    detections = collect(ros, Detection2DArray, "detections")
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    frame = cv2.imread(str(DATA / "vtest_150.jpg"))
    assert lifecycle.set("configure") and lifecycle.set("activate")
    stamp = [0]

    def tracked(count: int) -> bool:
        """Publish the next frame (stamps 1 s apart); whether ``count`` arrays with ids arrived."""
        stamp[0] += 1
        images.publish(bgr_msg(frame, stamp[0]))
        return sum(any(det.id for det in msg.detections) for msg in detections) >= count

    assert wait_for(lambda: tracked(2), timeout=30.0, period=0.3), "no track id published"
    with_ids = [msg for msg in detections if any(det.id for det in msg.detections)]
    first, second = ({det.id for det in msg.detections if det.id} for msg in with_ids[:2])
    ids = [det.id for det in with_ids[0].detections if det.id]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == len(ids)
    assert second == first, "the same people (the same frame again) keep their ids"
    assert stamp[0] >= 3, "ids come once a track has min_hits (3) frames"

    task = node.tasks[0]
    assert node.set_parameters([Parameter("track_min_hits", value=5)])[0].successful
    assert task.tracker.params.min_hits == 5
    bad = node.set_parameters([Parameter("track_low_threshold", value=0.9)])[0]
    assert not bad.successful and "low_threshold" in bad.reason
    assert task.tracker.params.low_threshold == 0.1

    assert lifecycle.set("deactivate") and lifecycle.set("cleanup")
    assert task.tracker.track_count == 0
