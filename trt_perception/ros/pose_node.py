"""``pose_node``: camera images -> trt_perception/Skeleton2DArray with a PAF pose model.

Same parameters, QoS, lifecycle and error handling as ``detector_node``
(:mod:`trt_perception.ros.perception_node`). Publishes ``skeletons`` (Skeleton2DArray with the
input header; keypoints in source-image pixels), ``latency``, and optionally ``debug_image`` and
``markers``. No pose weights ship with the package: export trt_pose's models with
``trt-perception export-trt-pose`` and point ``model_config`` at the YAML it writes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from trt_perception.core.draw import draw_skeletons, to_bgr
from trt_perception.msg import Skeleton2DArray
from trt_perception.ros.conversions import bgr_image_msg, skeleton_markers, skeletons_to_msg
from trt_perception.ros.node_main import run_node
from trt_perception.ros.parameters import ParamSpec
from trt_perception.ros.perception_node import PerceptionNode
from trt_perception.ros.resources import share_dir

DEFAULT_MODEL = "models/trt_pose/resnet18_baseline_att_224x224.yaml"


class PoseNode(PerceptionNode):
    """PAF human-pose lifecycle node (see the module docstring)."""

    TASK_PARAMS = (
        ParamSpec("peak_threshold", 0.1, "Minimum confidence-map value of a keypoint.",
                  float_range=(0.0, 1.0), runtime=True),
        ParamSpec("link_threshold", 0.1, "Minimum PAF score of a link between two keypoints.",
                  float_range=(0.0, 1.0), runtime=True),
        ParamSpec("min_parts", 3, "People with fewer keypoints are not reported.",
                  int_range=(1, 1000), runtime=True),
        ParamSpec("min_score", 0.0, "People with a lower score are not reported.",
                  float_range=(0.0, 1.0), runtime=True),
        ParamSpec("max_people", 100, "Most people reported per image (highest scores).",
                  int_range=(1, 1000), runtime=True),
    )

    def __init__(self, node_name: str = "pose_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._skeletons_pub: Any = None
        self._debug_pub: Any = None
        self._markers_pub: Any = None

    def default_model_config(self) -> str:
        return str(share_dir() / DEFAULT_MODEL)

    def create_task_publishers(self) -> list[Any]:
        self._skeletons_pub = self.create_lifecycle_publisher(Skeleton2DArray, "skeletons", 10)
        made = [self._skeletons_pub]
        self._debug_pub = self._markers_pub = None
        if self.params["publish_debug_image"]:
            self._debug_pub = self.create_lifecycle_publisher(Image, "debug_image", 1)
            made.append(self._debug_pub)
        if self.params["publish_markers"]:
            self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "markers", 1)
            made.append(self._markers_pub)
        return made

    def publish_result(self, result: Any, header: Any, pixels: Any, order: str) -> None:
        names = self.pipeline.decoder.topology.parts
        self._skeletons_pub.publish(skeletons_to_msg(result, names, header))
        if self._debug_pub is not None:
            self._debug_pub.publish(bgr_image_msg(draw_skeletons(to_bgr(pixels, order), result), header))
        if self._markers_pub is not None:
            self._markers_pub.publish(skeleton_markers(result, header))


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pose_node`` executable."""
    return run_node(PoseNode, args)
