"""``perception_node``: the detector and the pose model in one process on one image stream.

One subscription; each frame is decoded once (:mod:`~trt_perception.ros.frame_input`) and handed
to both tasks, each with its own worker thread, so a slower model drops frames (counted per task)
without delaying the other. Common parameters (backend, TensorRT options, input and QoS, stamp
checks, diagnostics) are given once; task parameters are prefixed with the task:
``detector.model_config``, ``detector.score_threshold``, ``pose.model_config``,
``pose.peak_threshold``, ``detector.latency_warn_ms``, ... (nested mappings in the parameter file,
see ``config/perception.yaml``).

Topics: subscribes ``image`` or ``image/compressed``; publishes ``detections``, ``skeletons``,
``detector/latency``, ``pose/latency``, optionally ``detector/debug_image``, ``pose/debug_image``,
``detector/markers``, ``pose/markers``, and ``/diagnostics`` ("perception_node: detector latency",
"perception_node: detector frame rate", "perception_node: pose latency", "perception_node: pose
frame rate", "perception_node: device").
"""

from __future__ import annotations

from typing import Optional, Sequence

from trt_perception.ros.detector_node import DetectorTask
from trt_perception.ros.node_main import run_node
from trt_perception.ros.pose_node import PoseTask
from trt_perception.ros.task_node import TaskNode


class SharedPerceptionNode(TaskNode):
    """Detection and pose on one decoded image stream (see the module docstring)."""

    NODE_NAME = "perception_node"
    TASKS = ((DetectorTask, DetectorTask.LABEL), (PoseTask, PoseTask.LABEL))


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``perception_node`` executable."""
    return run_node(SharedPerceptionNode, args)
