"""Launch descriptions of the package's launch files, built from the system plan
(:mod:`~trt_perception.ros.system`) that ``trt-perception run`` also starts.

Needs ``launch`` and ``launch_ros`` (a ROS 2 install); nothing else in the package imports this
module. Launch arguments are read when the launch is executed (an ``OpaqueFunction``), turned into
the plan, and each :class:`~trt_perception.ros.system.NodeSpec` into a ``LifecycleNode`` plus,
with ``autostart``, a configure event and a handler that activates the node once, the first time it
is inactive. Nodes run with the package's Fast DDS profile for raw frames
(:func:`~trt_perception.tools.ros_env.frame_transport_profile`) unless the environment names one.
Every launch file declares :data:`COMMON_ARGUMENTS` (``ros2 launch ... --show-args`` lists them
with their descriptions); a value outside an argument's choices, or a parameter file
that does not exist, fails the launch with the reason.
"""

import os
from dataclasses import replace
from typing import Any, Callable, Optional

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from trt_perception.core.backends import BACKENDS
from trt_perception.ros.system import KINDS, NodeSpec, system_plan
from trt_perception.tools.ros_env import frame_transport_profile

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _arg(context: LaunchContext, name: str) -> str:
    return str(LaunchConfiguration(name).perform(context)).strip()


def _flag(context: LaunchContext, name: str) -> bool:
    value = _arg(context, name).lower()
    if value not in TRUE + FALSE:
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return value in TRUE


def lifecycle_actions(spec: NodeSpec, autostart: bool) -> list[Any]:
    """The ``LifecycleNode`` of ``spec`` and, with ``autostart``, its configure -> activate events.
    The activating handler acts once, on the first configure that succeeds: after a user's
    ``cleanup`` and ``configure`` the node stays inactive until the user activates it.
    """
    parameters: list[Any] = list(spec.params_files) + ([dict(spec.overrides)] if spec.overrides else [])
    node = LifecycleNode(package=spec.package, executable=spec.executable, name=spec.name,
                         namespace=spec.namespace, parameters=parameters, remappings=list(spec.remaps),
                         additional_env=frame_transport_profile(_config("")), output="screen")
    if not autostart:
        return [node]
    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive", handle_once=True,
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_CONFIGURE))
    return [node, activate_when_inactive, configure]


#: launch arguments every launch file declares: name -> (default, description, allowed values)
COMMON_ARGUMENTS: dict[str, tuple[str, str, Optional[tuple[str, ...]]]] = {
    "autostart": ("true", "Configure and activate the nodes once at start-up (false: they stay "
                          "unconfigured for ros2 lifecycle or a lifecycle manager)", ("true", "false")),
    "input_type": ("", "raw (sensor_msgs/Image on <image_topic>) or compressed "
                       "(<image_topic>/compressed); empty: as the parameter files say", ("", "raw", "compressed")),
    "backend": ("", "Inference backend (auto, tensorrt, onnxruntime); empty: as the parameter files say",
                ("",) + BACKENDS),
    "model_config": ("", "Model config YAML of the detector (pose.launch.py: of the pose model); "
                         "empty: as the parameter files say", None),
    "strict_parameters": ("", "true: configure fails when the parameter files or overrides give a "
                              "parameter the node does not declare (false: a warning); empty: as the "
                              "parameter files say", ("", "true", "false")),
}


def _declare(name: str, default: Optional[str] = None) -> DeclareLaunchArgument:
    """The :data:`COMMON_ARGUMENTS` entry ``name`` as a launch argument (``default`` replaces its own)."""
    own_default, description, choices = COMMON_ARGUMENTS[name]
    extra = {"choices": list(choices)} if choices else {}
    return DeclareLaunchArgument(name, default_value=own_default if default is None else default,
                                 description=description, **extra)


def _overrides(context: LaunchContext, model_params: dict[str, str]) -> tuple[tuple[str, Any], ...]:
    """Parameter overrides from the launch arguments given (not empty): ``backend``,
    ``strict_parameters`` and the model configs, ``model_params`` mapping each model launch argument
    to the node's parameter (e.g. ``model_config`` -> ``detector.model_config``).
    """
    overrides: list[tuple[str, Any]] = []
    if backend := _arg(context, "backend"):
        overrides.append(("backend", backend))
    if strict := _arg(context, "strict_parameters"):
        overrides.append(("strict_parameters", strict == "true"))
    for argument, parameter in model_params.items():
        if value := _arg(context, argument):
            overrides.append((parameter, value))
    return tuple(overrides)


def _check_files(specs: list[NodeSpec]) -> None:
    """Refuse the launch when a parameter file is missing (launch itself only warns, and the node
    would run on its defaults).
    """
    for path in dict.fromkeys(path for spec in specs for path in spec.params_files):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"parameter file not found: {path!r} (check params_file / "
                                    "detector_params / pose_params)")


def _plan_launch(arguments: list[DeclareLaunchArgument], plan: Callable[[LaunchContext], list[NodeSpec]],
                 model_params: Callable[[NodeSpec], dict[str, str]]) -> LaunchDescription:
    def setup(context: LaunchContext) -> list[Any]:
        autostart = _flag(context, "autostart")
        specs = plan(context)
        _check_files(specs)
        specs = [replace(spec, overrides=spec.overrides + _overrides(context, model_params(spec)))
                 for spec in specs]
        return [action for spec in specs for action in lifecycle_actions(spec, autostart)]

    common = [_declare(name) for name in COMMON_ARGUMENTS]
    return LaunchDescription([*arguments, *common, OpaqueFunction(function=setup)])


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory("trt_perception"), "config", name)


def _camera_arguments(params_file: DeclareLaunchArgument) -> list[DeclareLaunchArgument]:
    return [params_file,
        DeclareLaunchArgument("cameras", default_value="/camera",
                              description="Comma list of camera namespaces, one set of nodes each"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace above the camera namespaces (e.g. /robot1: "
                                          "/robot1/camera/detector_node)"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="Image topic relative to each camera namespace "
                                          "(compressed input: <topic>/compressed)"),
        DeclareLaunchArgument("pose_model_config", default_value="",
                              description="Model config YAML of the pose model (your exported trt_pose "
                                          "model); empty: as the parameter files say"),
    ]


def _camera_plan(context: LaunchContext, nodes: list[str], params: list[str]) -> list[NodeSpec]:
    """The plan of ``nodes`` on the cameras of :func:`_camera_arguments`."""
    above = _arg(context, "namespace").strip("/")
    cameras = [camera.strip().strip("/") for camera in _arg(context, "cameras").split(",")]
    if above:
        cameras = [f"{above}/{camera}" if camera else above for camera in cameras]
    return system_plan(nodes, ",".join("/" + c for c in cameras), [p for p in params if p],
                       _arg(context, "image_topic"), _arg(context, "input_type") or None)


#: launch argument -> model parameter, per node kind, in the launch files with cameras
CAMERA_MODEL_PARAMS = {"detector": {"model_config": "model_config"},
                       "batch": {"model_config": "model_config"},
                       "pose": {"pose_model_config": "model_config"},
                       "shared": {"model_config": "detector.model_config",
                                  "pose_model_config": "pose.model_config"}}


def perception_launch() -> LaunchDescription:
    """``launch/perception.launch.py``: detector and/or pose nodes on every camera namespace
    (``batch:=true``: one multi_camera_node runs the detector of every camera instead).
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        batch = _flag(context, "batch")
        per_camera = ("pose",) if batch else ("detector", "pose")
        nodes = (["batch"] if batch else []) + [kind for kind in per_camera if _flag(context, f"enable_{kind}")]
        files = [_arg(context, "batch_params" if batch else "detector_params"), _arg(context, "pose_params"),
                 _arg(context, "params_file")]
        return _camera_plan(context, nodes, files)

    extra = DeclareLaunchArgument("params_file", default_value="",
                                  description="Extra parameter YAML for every node, applied after "
                                              "detector_params and pose_params (sections by node name)")
    return _plan_launch(_camera_arguments(extra) + [
        DeclareLaunchArgument("detector_params", default_value=_config("detector.yaml"),
                              description="Parameter YAML of the detector nodes"),
        DeclareLaunchArgument("pose_params", default_value=_config("pose.yaml"),
                              description="Parameter YAML of the pose nodes (set model_config)"),
        DeclareLaunchArgument("enable_detector", default_value="true", description="Run detector_node"),
        DeclareLaunchArgument("batch", default_value="false",
                              description="Run one multi_camera_node (the detector of every camera, batched "
                                          "inference) instead of a detector_node per camera"),
        DeclareLaunchArgument("batch_params", default_value=_config("multi_camera.yaml"),
                              description="Parameter YAML of multi_camera_node (batch:=true)"),
        DeclareLaunchArgument("enable_pose", default_value="false",
                              description="Run pose_node (needs exported trt_pose weights)"),
    ], plan, lambda spec: CAMERA_MODEL_PARAMS[spec.kind])


def shared_launch() -> LaunchDescription:
    """``launch/perception_shared.launch.py``: ``perception_node`` (detector and pose in one
    process, each frame decoded once) on every camera namespace.
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        return _camera_plan(context, ["shared"], [_arg(context, "params_file")])

    params_file = DeclareLaunchArgument("params_file", default_value=_config("perception.yaml"),
                                        description="Parameter YAML of perception_node (set pose.model_config)")
    return _plan_launch(_camera_arguments(params_file), plan, lambda spec: CAMERA_MODEL_PARAMS[spec.kind])


def single_node_launch(kind: str, params_file: str) -> LaunchDescription:
    """One node of ``kind`` (detector, pose) with launch arguments ``params_file`` (default
    ``config/<params_file>``), ``image_topic``, ``namespace`` and those of :data:`COMMON_ARGUMENTS`
    (``model_config``: this node's model).
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        return system_plan([kind], [_arg(context, "namespace")], [_arg(context, "params_file")],
                           _arg(context, "image_topic"), _arg(context, "input_type") or None)

    return _plan_launch([
        DeclareLaunchArgument("params_file", default_value=_config(params_file),
                              description=f"Parameter YAML of {KINDS[kind].executable}"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera topic (for input_type compressed: <topic>/compressed)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
    ], plan, lambda spec: {"model_config": "model_config"})
