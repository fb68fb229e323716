"""Track ids in the published messages: Detection2D.id from the tracker, in rclpy's message and in
the directly written CDR bytes, and as text markers beside the boxes."""

import numpy as np
from rclpy.serialization import deserialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray
from visualization_msgs.msg import Marker

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.tracking import Tracker, TrackerParams
from trt_perception.ros.conversions import box_markers, detections_to_msg
from trt_perception.ros.serialized import detections_cdr, matches_rclpy


def tracked_frames() -> list[Detections]:
    """Two pedestrians over three frames (10 Hz), then a third appears: ids "1", "2" and ""."""
    tracker = Tracker(TrackerParams(min_hits=2))
    outs = []
    for i in range(3):
        boxes = [[100.0 + 5 * i, 50, 140 + 5 * i, 150], [300.0 - 5 * i, 60, 345 - 5 * i, 170]]
        if i == 2:
            boxes.append([500.0, 40, 530, 120])
        dets = Detections(np.array(boxes, np.float32), np.array([0.9, 0.8, 0.7][:len(boxes)], np.float32),
                          np.ones(len(boxes), np.int32), ["pedestrian"] * len(boxes))
        outs.append(tracker.update(dets, i * 100_000_000))
    return outs


def test_the_track_id_is_detection2d_id(context):
    first, _, last = tracked_frames()
    header = Header(frame_id="camera")
    assert [d.id for d in detections_to_msg(first, header).detections] == ["", ""]
    msg = detections_to_msg(last, header)
    assert [d.id for d in msg.detections] == ["1", "2", ""]
    from_bytes = deserialize_message(detections_cdr(last, header), Detection2DArray)
    assert from_bytes == msg and [d.id for d in from_bytes.detections] == ["1", "2", ""]
    assert matches_rclpy(last, header)
    untracked = Detections(last.boxes_xyxy, last.scores, last.class_ids, last.labels)
    assert [d.id for d in detections_to_msg(untracked, header).detections] == ["", "", ""]


def test_markers_label_tracked_boxes_with_their_id():
    last = tracked_frames()[-1]
    markers = box_markers(last, Header(frame_id="camera")).markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.type == Marker.LINE_STRIP]
    texts = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == 3 and [t.text for t in texts] == ["1", "2"]
    assert len({m.id for m in boxes + texts}) == 5
    assert (texts[0].pose.position.x, texts[0].pose.position.y) == (float(last.boxes_xyxy[0, 0]),
                                                                    float(last.boxes_xyxy[0, 1]))
