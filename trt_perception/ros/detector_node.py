"""``detector_node``: camera images -> vision_msgs/Detection2DArray with an SSD model.

Topics (relative names; remap them): subscribes ``image`` (sensor_msgs/Image) or
``image/compressed`` (sensor_msgs/CompressedImage); publishes ``detections``
(vision_msgs/Detection2DArray, the input header, an empty array when nothing is found),
``latency`` (trt_perception/FrameLatency), and optionally ``debug_image`` (bgr8) and ``markers``.
Parameters: :data:`~trt_perception.ros.task_node.COMMON_PARAMS`,
:data:`~trt_perception.ros.perception_task.TASK_PARAMS`, the thresholds below, which may change
at runtime, and :data:`TRACK_PARAMS` (``tracking``, off by default: a stable per-camera track id
in each Detection2D.id; ``track_*``: the tracker's parameters, runtime).
Diagnostics on ``/diagnostics``: "detector_node: detector latency", "detector_node: detector frame
rate", "detector_node: device".
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from vision_msgs.msg import Detection2DArray

from trt_perception.core.decode.ssd.decoder import SSD_PARAMS
from trt_perception.core.draw import draw_detections
from trt_perception.core.param_spec import ParamSpec
from trt_perception.core.pipeline import StageTimes
from trt_perception.core.tracking import ENABLE_ROW, PARAM_ROWS, Tracker, TrackerParams
from trt_perception.ros.conversions import box_markers, detections_to_msg, stamp_ns
from trt_perception.ros.frame_input import Frame
from trt_perception.ros.node_main import run_node
from trt_perception.ros.perception_task import PerceptionTask
from trt_perception.ros.serialized import detections_cdr, writes_detections
from trt_perception.ros.task_node import TaskNode

DEFAULT_MODEL = "models/ssdlite_pedestrian/ssdlite_pedestrian.yaml"

#: node parameter name of tracker parameter ``name``: ``track_<name>``
TRACK_PREFIX = "track_"
#: ``tracking`` (read at configure) and the tracker's parameters as ``track_*`` (runtime)
TRACK_PARAMS: tuple[ParamSpec, ...] = (ENABLE_ROW,) + tuple(spec.renamed(TRACK_PREFIX + spec.name)
                                                           for spec in PARAM_ROWS)


def tracker_values(values: dict[str, Any]) -> dict[str, Any]:
    """The tracker parameters among the task's parameter ``values`` (``track_`` prefix removed)."""
    return {name[len(TRACK_PREFIX):]: value for name, value in values.items() if name.startswith(TRACK_PREFIX)}


class DetectorTask(PerceptionTask):
    """SSD detection: Detection2DArray on ``detections``, boxes drawn, box markers."""

    LABEL = "detector"
    RESULT_TYPE = Detection2DArray
    DEFAULT_MODEL = DEFAULT_MODEL
    RESULT_TOPIC = "detections"

    DECODER_PARAMS = SSD_PARAMS
    FEATURE_PARAMS = TRACK_PARAMS

    #: published as bytes from :func:`~trt_perception.ros.serialized.detections_cdr` (checked
    #: against the middleware at configure) rather than as rclpy message objects
    serialized = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The base task (same arguments) with an idle tracker."""
        super().__init__(*args, **kwargs)
        #: the camera's tracker, run on each frame's detections while ``tracking`` is true
        self.tracker = Tracker()
        self.tracking = False

    def configure(self, *args: Any, **kwargs: Any) -> None:
        """Configure the task, the tracker (ValueError: inconsistent ``track_*`` values) and the
        detections writer (serialized CDR where the middleware allows).
        """
        super().configure(*args, **kwargs)
        self.tracker.reset()
        self.tracker.params = TrackerParams(**tracker_values(self.params))
        self.tracking = bool(self.params["tracking"])
        self.serialized = writes_detections()
        if not self.serialized:
            self.logger.info("detections published as rclpy messages: this middleware's serialized "
                             "Detection2DArray differs from the direct writer's")

    def release(self) -> None:
        """Release the task and forget every track (ids start again at "1")."""
        super().release()
        self.tracker.reset()

    def check_changes(self, changes: dict[str, Any]) -> Optional[str]:
        """The base checks, and whether the ``track_*`` changes make consistent tracker parameters."""
        problem = super().check_changes(changes)
        track = tracker_values(changes)
        if problem is None and track:
            try:
                self.tracker.params.replaced(track)
            except ValueError as exc:
                return self.reason(exc)
        return problem

    def apply_changes(self, changes: dict[str, Any]) -> None:
        """Apply the base changes, then the checked ``track_*`` ones to the tracker."""
        super().apply_changes(changes)
        track = tracker_values(changes)
        if track and self.pipeline is not None:
            self.tracker.set_params(track)

    def finish(self, frame: Frame, result: Any, stages: StageTimes, batch_wait_ns: int = 0) -> None:
        """With ``tracking``, give ``result`` its track ids (the header stamp in ns), then publish it."""
        if self.tracking:
            result = self.tracker.update(result, stamp_ns(frame.header))
        super().finish(frame, result, stages, batch_wait_ns)

    def decoder_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The decoder parameters from the node's ``values`` (class ids given as strings become ints; empty entries
        dropped).
        """
        if "class_filter" in values:  # ids may be given as strings in a string array
            values = dict(values, class_filter=[int(v) if str(v).isdigit() else v
                                                for v in values["class_filter"] if v != ""])
        return values

    def result_msg(self, result: Any, header: Any) -> Any:
        """The ``vision_msgs/Detection2DArray`` of ``result`` (serialized or an object) with ``header``."""
        return detections_cdr(result, header) if self.serialized else detections_to_msg(result, header)

    def draw(self, bgr: Any, result: Any) -> Any:
        """``bgr`` with the detection boxes drawn on it."""
        return draw_detections(bgr, result)

    def markers(self, result: Any, header: Any) -> Any:
        """The box outlines of ``result`` as a ``visualization_msgs/MarkerArray`` with ``header``."""
        return box_markers(result, header)


class DetectorNode(TaskNode):
    """SSD detection lifecycle node (see the module docstring)."""

    NODE_NAME = "detector_node"
    TASKS = ((DetectorTask, ""),)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``detector_node`` executable."""
    return run_node(DetectorNode, args)
