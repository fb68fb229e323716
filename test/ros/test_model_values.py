"""Decoder thresholds left unset read the model's values while configured (ros/model_values.py):
what ``ros2 param get`` (the node's get_parameters service) shows, and that a shown value never
becomes an override: after cleanup the next configure takes the model's value again.
"""

import shutil
from pathlib import Path

import pytest
from harness import LifecycleClient
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter, parameter_value_to_python

from trt_perception.ros.detector_node import DEFAULT_MODEL, DetectorNode
from trt_perception.ros.multi_camera_node import MultiCameraNode
from trt_perception.ros.resources import share_dir


@pytest.fixture
def model_yaml(tmp_path):
    """A copy of the bundled detector model whose YAML says score_threshold 0.3, top_k 7."""
    model_dir = shutil.copytree(share_dir() / Path(DEFAULT_MODEL).parent, tmp_path / "model")
    config = model_dir / Path(DEFAULT_MODEL).name
    text = config.read_text()
    assert "score_threshold: 0.5" in text and "  top_k: 100\n" in text
    config.write_text(text.replace("score_threshold: 0.5", "score_threshold: 0.3").replace(
        "  top_k: 100\n", "  top_k: 7\n"))
    return config


def set_model_score(config: Path, value: float) -> None:
    text = config.read_text()
    start = text.index("score_threshold: ")
    end = text.index("\n", start)
    config.write_text(text[:start] + f"score_threshold: {value}" + text[end:])


def service_values(ros, node_name, names):
    """The values the node's get_parameters service answers (what ``ros2 param get`` prints):
    None for a parameter that is not set.
    """
    client = ros.node.create_client(GetParameters, f"/{node_name}/get_parameters")
    response = ros.call_idempotent(client, GetParameters.Request(names=list(names)))
    ros.node.destroy_client(client)
    out = {}
    for name, value in zip(names, response.values):
        out[name] = None if value.type == ParameterType.PARAMETER_NOT_SET else parameter_value_to_python(value)
    return out


def unset(node, name):
    try:
        return node.get_parameter(name).value is None
    except ParameterUninitializedException:
        return True


NAMES = ["score_threshold", "nms_iou_threshold", "top_k", "pre_nms_top_k"]


def test_unset_thresholds_read_the_models_values_while_configured_and_follow_a_model_change(ros, model_yaml):
    node = ros.add(DetectorNode("detector_values", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("model_config", value=str(model_yaml)), Parameter("nms_iou_threshold", value=0.4)]))
    lifecycle = LifecycleClient(ros, "detector_values")
    assert unset(node, "score_threshold")                     # unconfigured: the model's, once configured
    assert lifecycle.set("configure")
    assert service_values(ros, "detector_values", NAMES) == {
        "score_threshold": 0.3, "nms_iou_threshold": 0.4, "top_k": 7, "pre_nms_top_k": 100}
    assert list(node.get_parameter("class_filter").value) == []   # the model's (all classes)
    assert node.get_parameter("class_filter").type_ == Parameter.Type.STRING_ARRAY
    # the shown value is the one in use
    assert node.pipeline.decoder.runtime_params()["score_threshold"] == 0.3

    assert lifecycle.set("cleanup")
    assert unset(node, "score_threshold") and unset(node, "top_k")
    assert node.get_parameter("nms_iou_threshold").value == 0.4   # given by the user: kept
    set_model_score(model_yaml, 0.35)                             # the model changes
    assert lifecycle.set("configure")
    assert node.pipeline.decoder.runtime_params()["score_threshold"] == 0.35
    assert service_values(ros, "detector_values", ["score_threshold"]) == {"score_threshold": 0.35}
    assert lifecycle.set("cleanup")
    assert lifecycle.set("configure")                             # configure again after clearing works


def test_a_value_the_user_sets_is_kept_over_cleanup_and_overrides_a_changed_model(ros, model_yaml):
    node = ros.add(DetectorNode("detector_user", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("model_config", value=str(model_yaml))]))
    lifecycle = LifecycleClient(ros, "detector_user")
    assert lifecycle.set("configure")
    assert node.set_parameters([Parameter("score_threshold", value=0.3)])[0].successful  # equal, but the user's
    assert node.set_parameters([Parameter("top_k", value=9)])[0].successful
    assert not node.set_parameters([Parameter("pre_nms_top_k", value=0)])[0].successful  # refused: still shown
    assert node.pipeline.decoder.runtime_params()["top_k"] == 9
    assert lifecycle.set("cleanup")
    assert node.get_parameter("score_threshold").value == 0.3 and node.get_parameter("top_k").value == 9
    assert unset(node, "pre_nms_top_k")
    set_model_score(model_yaml, 0.45)
    assert lifecycle.set("configure")
    params = node.pipeline.decoder.runtime_params()
    assert (params["score_threshold"], params["top_k"], params["pre_nms_top_k"]) == (0.3, 9, 100)


def test_cameras_of_a_multi_camera_node_share_the_shown_values(ros, model_yaml):
    node = ros.add(MultiCameraNode(context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("cameras", value=["/cam_a", "/cam_b"]), Parameter("model_config", value=str(model_yaml))]))
    lifecycle = LifecycleClient(ros, "multi_camera_node")
    assert lifecycle.set("configure")
    assert node.get_parameter("score_threshold").value == 0.3 and node.get_parameter("top_k").value == 7
    assert node.model_values.shown >= {"score_threshold", "top_k"}
    assert lifecycle.set("cleanup")
    assert unset(node, "score_threshold")


def test_the_node_closes_after_ctrl_c_with_values_shown(model_yaml):
    """Ctrl-C shuts the context down before the executable closes the node: closing must not
    publish parameter events (a crash at exit: 'publisher's context is invalid')."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    node = DetectorNode("detector_exit", context=context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
        Parameter("model_config", value=str(model_yaml))])
    try:
        node.trigger_configure()
        assert node.get_parameter("score_threshold").value == 0.3
        rclpy.shutdown(context=context)           # what rclpy's SIGINT handler does
        node.close()                              # what the executable does next
    finally:
        node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)


def test_a_refused_startup_threshold_is_reported_unset_not_as_a_default(ros, capfd):
    """The log said 'declared with the default 100 instead' for a threshold that is in fact left unset."""
    node = ros.add(DetectorNode("detector_refused", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("top_k", value="abc")]))
    err = capfd.readouterr().err
    assert "top_k: the value given at startup was refused" in err
    assert "left unset (the model configuration's value), configure fails until the parameter is corrected" in err
    assert unset(node, "top_k")
