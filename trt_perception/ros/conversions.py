"""Pure functions from core results to ROS messages; every output copies the input header.

Box and keypoint coordinates are source-image pixels (see :mod:`trt_perception.core.geometry`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker, MarkerArray

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.telemetry.latency import STAGES, StageClock
from trt_perception.msg import FrameLatency, Keypoint2D, Skeleton2D, Skeleton2DArray


def _duration(ns: int) -> Duration:
    return Duration(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def detections_to_msg(dets: Detections, header: Any) -> Detection2DArray:
    """vision_msgs 4.x Detection2DArray: bbox centre/size in source pixels, class_id = the label
    (the class index when the model has no labels file), score in [0, 1], id = the track id
    (empty when not tracked or of no confirmed track).
    """
    out = Detection2DArray(header=header)
    boxes = dets.boxes_xyxy.astype(np.float64)
    ids = dets.ids if dets.ids is not None else [""] * len(dets)
    for box, score, label, track_id in zip(boxes, dets.scores.tolist(), dets.labels, ids):
        det = Detection2D(header=header, id=track_id)
        det.bbox.center.position.x = float(box[0] + box[2]) / 2.0
        det.bbox.center.position.y = float(box[1] + box[3]) / 2.0
        det.bbox.size_x = float(box[2] - box[0])
        det.bbox.size_y = float(box[3] - box[1])
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = label
        hyp.hypothesis.score = float(score)
        hyp.pose.pose.position.x = det.bbox.center.position.x
        hyp.pose.pose.position.y = det.bbox.center.position.y
        det.results.append(hyp)
        out.detections.append(det)
    return out


def bgr_image_msg(pixels: np.ndarray, header: Any) -> Image:
    """sensor_msgs/Image (bgr8) of a uint8[H, W, 3] BGR array."""
    height, width = pixels.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0,
                step=width * 3)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def box_markers(dets: Detections, header: Any, namespace: str = "detections") -> MarkerArray:
    """One LINE_STRIP rectangle per box in image pixel coordinates (z = 0), plus a DELETEALL first
    so that markers of the previous frame disappear; after them, a TEXT_VIEW_FACING marker with the
    track id at the top-left corner of each tracked box (marker ids K + box index).
    """
    markers = MarkerArray()
    markers.markers.append(Marker(header=header, ns=namespace, action=Marker.DELETEALL))
    for i, box in enumerate(dets.boxes_xyxy.astype(np.float64)):
        marker = Marker(header=header, ns=namespace, id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
        marker.scale.x = 2.0
        marker.color = ColorRGBA(r=0.1, g=1.0, b=0.2, a=1.0)
        x0, y0, x1, y1 = box.tolist()
        marker.points = [Point(x=x, y=y, z=0.0) for x, y in
                         ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        markers.markers.append(marker)
    for i, (box, track_id) in enumerate(zip(dets.boxes_xyxy.astype(np.float64), dets.ids or ())):
        if track_id:
            text = Marker(header=header, ns=namespace, id=len(dets) + i, type=Marker.TEXT_VIEW_FACING,
                          action=Marker.ADD, text=track_id)
            text.pose.position = Point(x=float(box[0]), y=float(box[1]), z=0.0)
            text.scale.z = 12.0
            text.color = ColorRGBA(r=0.1, g=1.0, b=0.2, a=1.0)
            markers.markers.append(text)
    return markers


def stamp_ns(header: Any) -> int:
    """The header stamp in nanoseconds since the epoch (0 when unset)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def frame_latency_msg(header: Any, clock: StageClock, stamp_status: int, end_to_end_ns: int) -> FrameLatency:
    """FrameLatency for one frame: stage durations and the end-to-end latency checked by
    :func:`~trt_perception.core.telemetry.latency.check_stamp` (its status and value).
    """
    msg = FrameLatency(header=header, stamp_status=stamp_status, end_to_end=_duration(end_to_end_ns))
    for stage in STAGES:
        setattr(msg, stage, _duration(clock.stage_ns(stage)))
    return msg


def skeletons_to_msg(skeletons: Sequence[Any], part_names: Sequence[str], header: Any) -> Skeleton2DArray:
    """Skeleton2DArray from decoded skeletons (keypoints in source pixels): keypoint names from the
    topology, links as indices into each skeleton's keypoints.
    """
    out = Skeleton2DArray(header=header)
    for index, person in enumerate(skeletons):
        msg = Skeleton2D(id=index, score=float(person.score))
        position = {}
        for part, (x, y), score in zip(person.parts.tolist(), person.xy.tolist(), person.scores.tolist()):
            position[part] = len(msg.keypoints)
            msg.keypoints.append(Keypoint2D(name=part_names[part], part=part, x=float(x), y=float(y),
                                            score=float(score)))
        msg.link_start = [position[a] for a, _ in person.links.tolist()]
        msg.link_end = [position[b] for _, b in person.links.tolist()]
        out.skeletons.append(msg)
    return out


def skeleton_markers(skeletons: Sequence[Any], header: Any, namespace: str = "skeletons") -> MarkerArray:
    """One LINE_LIST per person (its links) in image pixel coordinates, after a DELETEALL."""
    markers = MarkerArray()
    markers.markers.append(Marker(header=header, ns=namespace, action=Marker.DELETEALL))
    for i, person in enumerate(skeletons):
        where = {part: xy for part, xy in zip(person.parts.tolist(), person.xy.tolist())}
        marker = Marker(header=header, ns=namespace, id=i, type=Marker.LINE_LIST, action=Marker.ADD)
        marker.scale.x = 2.0
        marker.color = ColorRGBA(r=1.0, g=0.6, b=0.1, a=1.0)
        for a, b in person.links.tolist():
            marker.points += [Point(x=where[a][0], y=where[a][1], z=0.0),
                              Point(x=where[b][0], y=where[b][1], z=0.0)]
        markers.markers.append(marker)
    return markers
