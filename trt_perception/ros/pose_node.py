"""``pose_node``: camera images -> trt_perception/Skeleton2DArray with a PAF pose model.

Same parameters, QoS, lifecycle and error handling as ``detector_node``
(:mod:`trt_perception.ros.task_node`). Publishes ``skeletons`` (Skeleton2DArray with the
input header; keypoints in source-image pixels), ``latency``, and optionally ``debug_image`` and
``markers``, and diagnostics ("pose_node: pose latency", "pose_node: pose frame rate",
"pose_node: device"). No pose weights ship with the package: export trt_pose's models with
``trt-perception export-trt-pose`` and point ``model_config`` at the YAML it writes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from trt_perception.core.decode.pose import POSE_PARAMS, PoseDecoder
from trt_perception.core.draw import draw_skeletons
from trt_perception.msg import Skeleton2DArray
from trt_perception.ros.conversions import skeleton_markers, skeletons_to_msg
from trt_perception.ros.node_main import run_node
from trt_perception.ros.perception_task import PerceptionTask
from trt_perception.ros.task_node import TaskNode

DEFAULT_MODEL = "models/trt_pose/resnet18_baseline_att_224x224.yaml"


class PoseTask(PerceptionTask):
    """PAF pose: Skeleton2DArray on ``skeletons``, skeletons drawn, link markers."""

    LABEL = "pose"
    RESULT_TYPE = Skeleton2DArray
    DEFAULT_MODEL = DEFAULT_MODEL
    RESULT_TOPIC = "skeletons"

    DECODER_PARAMS = POSE_PARAMS

    def result_msg(self, result: Any, header: Any) -> Any:
        """The ``Skeleton2DArray`` of ``result`` (keypoints named by the model's topology) with ``header``."""
        assert self.pipeline is not None, "results come only from a configured task"
        decoder = self.pipeline.decoder
        assert isinstance(decoder, PoseDecoder), "the pose task's pipeline decodes with a PoseDecoder"
        return skeletons_to_msg(result, decoder.topology.parts, header)

    def draw(self, bgr: Any, result: Any) -> Any:
        """``bgr`` with the skeletons drawn on it."""
        return draw_skeletons(bgr, result)

    def markers(self, result: Any, header: Any) -> Any:
        """The skeletons of ``result`` as a ``visualization_msgs/MarkerArray`` with ``header``."""
        return skeleton_markers(result, header)


class PoseNode(TaskNode):
    """PAF human-pose lifecycle node (see the module docstring)."""

    NODE_NAME = "pose_node"
    TASKS = ((PoseTask, ""),)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pose_node`` executable."""
    return run_node(PoseNode, args)
