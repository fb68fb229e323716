"""pose_node on a small ONNX model with trt_pose's output layout whose outputs are known fields."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from harness import LifecycleClient, wait_for
from onnx import TensorProto, helper, numpy_helper
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from trt_perception.core.decode.pose.topology import COCO18
from trt_perception.msg import Skeleton2DArray
from trt_perception.ros.pose_node import PoseNode
from trt_perception.testing.pose_fields import random_person, render_fields

TOPOLOGY = Path(__file__).resolve().parents[2] / "models" / "trt_pose" / "human_pose.json"
MAP = 56


def fields_model(path: Path, cmap: np.ndarray, paf: np.ndarray) -> None:
    """ONNX model: input float[1,3,224,224] -> cmap/paf = the given fields (+ 0 * mean(input))."""
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=1),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["cmap_fields", "nothing"], ["cmap"]),
             helper.make_node("Add", ["paf_fields", "nothing"], ["paf"])]
    graph = helper.make_graph(
        nodes, "fields",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("cmap", TensorProto.FLOAT, [1, 18, MAP, MAP]),
         helper.make_tensor_value_info("paf", TensorProto.FLOAT, [1, 42, MAP, MAP])],
        [zero, numpy_helper.from_array(cmap[None].astype(np.float32), "cmap_fields"),
         numpy_helper.from_array(paf[None].astype(np.float32), "paf_fields")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture
def people():
    rng = np.random.default_rng(3)
    return np.stack([random_person(rng, 30.0, (16.0, 28.0)), random_person(rng, 26.0, (40.0, 30.0))])


@pytest.fixture
def model_config(tmp_path, people):
    cmap, paf = render_fields(people, COCO18, MAP, MAP)
    fields_model(tmp_path / "fields.onnx", cmap, paf)
    config = {"task": "pose", "model": "fields.onnx", "input": "input",
              "outputs": {"cmap": "cmap", "paf": "paf"},
              "preprocess": {"width": 224, "height": 224, "resize": "stretch", "color_order": "rgb",
                             "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
              "decoder": {"topology": str(TOPOLOGY)}}
    path = tmp_path / "fields.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_pose_node_publishes_the_skeletons_of_the_fields_in_image_pixels(ros, model_config, people):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("model_config", value=str(model_config))]
    ros.add(PoseNode(context=ros.context, parameter_overrides=overrides))
    lifecycle = LifecycleClient(ros, "pose_node")
    got = []
    ros.node.create_subscription(Skeleton2DArray, "skeletons", got.append, 10)
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    assert lifecycle.set("configure") and lifecycle.set("activate")

    width, height = 640, 480
    header = Header(frame_id="cam_pose")
    header.stamp.sec = 99
    image = Image(header=header, width=width, height=height, encoding="rgb8", step=width * 3,
                  data=bytes(width * height * 3))
    assert wait_for(lambda: (images.publish(image), bool(got))[1], timeout=15, period=0.2)
    msg = got[0]
    assert msg.header.stamp.sec == 99 and msg.header.frame_id == "cam_pose"
    assert len(msg.skeletons) == len(people)

    truth_px = people.copy()
    truth_px[:, :, 0] *= width / MAP
    truth_px[:, :, 1] *= height / MAP
    tolerance = 0.3 * width / MAP  # 0.3 map cells
    for skeleton in msg.skeletons:
        xy = {kp.part: (kp.x, kp.y) for kp in skeleton.keypoints}
        # match the skeleton to the true person nearest to its first keypoint
        first = next(iter(xy))
        person = int(np.nanargmin(np.linalg.norm(truth_px[:, first] - xy[first], axis=1)))
        visible = set(np.flatnonzero(~np.isnan(people[person, :, 0])).tolist())
        assert set(xy) == visible
        for part, (x, y) in xy.items():
            assert np.hypot(x - truth_px[person, part, 0], y - truth_px[person, part, 1]) < tolerance
        for kp in skeleton.keypoints:
            assert kp.name == COCO18.parts[kp.part] and 0 < kp.score <= 1.0
        links = {(skeleton.keypoints[a].part, skeleton.keypoints[b].part)
                 for a, b in zip(skeleton.link_start, skeleton.link_end)}
        expected = {tuple(link) for link in COCO18.links.tolist() if set(link) <= visible}
        assert links == expected
        assert 0 < skeleton.score <= 1.0


def test_pose_node_without_exported_weights_fails_configure_with_the_reason(ros):
    node = ros.add(PoseNode(context=ros.context, parameter_overrides=[Parameter("backend", value="onnxruntime")]))
    lifecycle = LifecycleClient(ros, "pose_node")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and node.pipeline is None
