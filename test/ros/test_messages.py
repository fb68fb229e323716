"""The package's messages and vision_msgs: pub/sub between two nodes, (de)serialization, type hashes."""

import json
from pathlib import Path

import pytest
from harness import wait_for
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from trt_perception.msg import FrameLatency, Keypoint2D, Skeleton2D, Skeleton2DArray

# Upstream vision_msgs 4.x Detection2DArray type hash (as generated from ros-perception/vision_msgs).
UPSTREAM_DETECTION2DARRAY_HASH = "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"


def make_skeletons() -> Skeleton2DArray:
    msg = Skeleton2DArray(header=Header(frame_id="cam0"))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    person = Skeleton2D(id=0, score=0.875)
    person.keypoints = [Keypoint2D(name="nose", part=0, x=10.5, y=20.25, score=0.75),
                        Keypoint2D(name="neck", part=17, x=11.0, y=40.0, score=0.5)]
    person.link_start, person.link_end = [0], [1]
    msg.skeletons.append(person)
    return msg


def make_detections() -> Detection2DArray:
    msg = Detection2DArray(header=Header(frame_id="cam0"))
    det = Detection2D(header=msg.header, id="7")
    det.bbox.center.position.x, det.bbox.center.position.y = 100.5, 50.25
    det.bbox.size_x, det.bbox.size_y = 30.0, 60.0
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = "pedestrian", 0.75
    det.results.append(hyp)
    msg.detections.append(det)
    return msg


def make_latency() -> FrameLatency:
    msg = FrameLatency(header=Header(frame_id="cam0"), stamp_status=FrameLatency.STAMP_FUTURE)
    msg.inference.nanosec = 1_500_000
    msg.end_to_end.sec = 1
    return msg


SAMPLES = [make_skeletons, make_detections, make_latency,
           lambda: Keypoint2D(name="x", part=3, x=1.0, y=2.0, score=0.5)]


@pytest.mark.parametrize("make", SAMPLES)
def test_serialize_round_trip(make):
    msg = make()
    data = serialize_message(msg)
    assert deserialize_message(data, type(msg)) == msg
    assert deserialize_message(data, type(msg)) != type(msg)()


@pytest.mark.parametrize("make", SAMPLES[:3])
def test_publish_between_two_nodes(ros, make):
    from rclpy.node import Node

    sent = make()
    received = []
    receiver = ros.add(Node("receiver", context=ros.context))
    receiver.create_subscription(type(sent), "round_trip", received.append, 10)
    publisher = ros.node.create_publisher(type(sent), "round_trip", 10)
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    assert wait_for(lambda: (publisher.publish(sent), bool(received))[1], timeout=10, period=0.1)
    assert received[0] == sent


def test_vision_msgs_is_the_v4_layout():
    det = make_detections().detections[0]
    assert det.bbox.center.position.x == 100.5  # vision_msgs/Pose2D with position (4.x)
    assert isinstance(det.results[0].hypothesis.class_id, str)


def test_vision_msgs_type_hash_matches_upstream():
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        description = Path(get_package_share_directory("vision_msgs")) / "msg" / "Detection2DArray.json"
    except PackageNotFoundError:
        pytest.skip("vision_msgs is importable but not in the ament index")
    if not description.is_file():
        pytest.skip("this vision_msgs has no type description (ROS 2 before Iron has no type hashes)")
    hashes = {t["type_name"]: t["hash_string"] for t in json.loads(description.read_text())["type_hashes"]}
    assert hashes["vision_msgs/msg/Detection2DArray"] == UPSTREAM_DETECTION2DARRAY_HASH
