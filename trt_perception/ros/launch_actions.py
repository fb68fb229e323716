"""Launch descriptions of the package's launch files, built from the system plan
(:mod:`~trt_perception.ros.system`) that ``trt-perception run`` also starts.

Needs ``launch`` and ``launch_ros`` (a ROS 2 install); nothing else in the package imports this
module. Launch arguments are read when the launch is executed (an ``OpaqueFunction``), turned into
the plan, and each :class:`~trt_perception.ros.system.NodeSpec` into a ``LifecycleNode`` plus,
with ``autostart``, a configure event and a handler that activates the node once it is inactive.
"""

import os
from typing import Any, Callable

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from trt_perception.ros.system import KINDS, NodeSpec, system_plan

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _arg(context: LaunchContext, name: str) -> str:
    return str(LaunchConfiguration(name).perform(context)).strip()


def _flag(context: LaunchContext, name: str) -> bool:
    value = _arg(context, name).lower()
    if value not in TRUE + FALSE:
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return value in TRUE


def lifecycle_actions(spec: NodeSpec, autostart: bool) -> list[Any]:
    """The ``LifecycleNode`` of ``spec`` and, with ``autostart``, its configure -> activate events."""
    parameters: list[Any] = list(spec.params_files) + ([dict(spec.overrides)] if spec.overrides else [])
    node = LifecycleNode(package=spec.package, executable=spec.executable, name=spec.name,
                         namespace=spec.namespace, parameters=parameters,
                         remappings=list(spec.remaps), output="screen")
    if not autostart:
        return [node]
    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_CONFIGURE))
    return [node, activate_when_inactive, configure]


def _plan_launch(arguments: list[DeclareLaunchArgument],
                 plan: Callable[[LaunchContext], list[NodeSpec]]) -> LaunchDescription:
    def setup(context: LaunchContext) -> list[Any]:
        autostart = _flag(context, "autostart")
        return [action for spec in plan(context) for action in lifecycle_actions(spec, autostart)]

    autostart = DeclareLaunchArgument("autostart", default_value="true",
                                      description="Configure and activate the nodes automatically")
    return LaunchDescription([*arguments, autostart, OpaqueFunction(function=setup)])


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory("trt_perception"), "config", name)


def _camera_arguments() -> list[DeclareLaunchArgument]:
    return [
        DeclareLaunchArgument("cameras", default_value="/camera",
                              description="Comma list of camera namespaces, one set of nodes each"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="Image topic relative to each camera namespace "
                                          "(compressed input: <topic>/compressed)"),
        DeclareLaunchArgument("input_type", default_value="",
                              description="raw or compressed; empty: as the parameter files say"),
    ]


def _camera_plan(context: LaunchContext, nodes: list[str], params: list[str]) -> list[NodeSpec]:
    """The plan of ``nodes`` on the cameras of :func:`_camera_arguments`."""
    return system_plan(nodes, _arg(context, "cameras"), [p for p in params if p],
                       _arg(context, "image_topic"), _arg(context, "input_type") or None)


def perception_launch() -> LaunchDescription:
    """``launch/perception.launch.py``: detector and/or pose nodes on every camera namespace
    (``batch:=true``: one multi_camera_node runs the detector of every camera instead).
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        batch = _flag(context, "batch")
        per_camera = ("pose",) if batch else ("detector", "pose")
        nodes = (["batch"] if batch else []) + [kind for kind in per_camera if _flag(context, f"enable_{kind}")]
        files = [_arg(context, "batch_params" if batch else "detector_params"), _arg(context, "pose_params")]
        return _camera_plan(context, nodes, files)

    return _plan_launch(_camera_arguments() + [
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
    ], plan)


def shared_launch() -> LaunchDescription:
    """``launch/perception_shared.launch.py``: ``perception_node`` (detector and pose in one
    process, each frame decoded once) on every camera namespace.
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        return _camera_plan(context, ["shared"], [_arg(context, "params_file")])

    return _plan_launch(_camera_arguments() + [
        DeclareLaunchArgument("params_file", default_value=_config("perception.yaml"),
                              description="Parameter YAML of perception_node (set pose.model_config)"),
    ], plan)


def single_node_launch(kind: str, params_file: str) -> LaunchDescription:
    """One node of ``kind`` (detector, pose) with launch arguments ``params_file`` (default
    ``config/<params_file>``), ``image_topic``, ``namespace`` and ``autostart``.
    """
    def plan(context: LaunchContext) -> list[NodeSpec]:
        return system_plan([kind], [_arg(context, "namespace")], [_arg(context, "params_file")],
                           _arg(context, "image_topic"))

    return _plan_launch([
        DeclareLaunchArgument("params_file", default_value=_config(params_file),
                              description=f"Parameter YAML of {KINDS[kind].executable}"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera topic (for input_type compressed: <topic>/compressed)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
    ], plan)
