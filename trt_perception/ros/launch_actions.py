"""Launch descriptions shared by the package's launch files (needs ``launch`` and ``launch_ros``,
which come with a ROS 2 install; nothing else in the package imports this module)."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def single_node_launch(executable: str, params_file: str) -> LaunchDescription:
    """``executable`` as a lifecycle node named like it, with launch arguments ``params_file``
    (default ``config/<params_file>``), ``image_topic`` (remaps ``image`` and
    ``image/compressed``), ``namespace`` and ``autostart`` (configure, then activate once inactive)."""
    share = get_package_share_directory("trt_perception")
    image_topic = LaunchConfiguration("image_topic")
    autostart = LaunchConfiguration("autostart")
    node = LifecycleNode(
        package="trt_perception",
        executable=executable,
        name=executable,
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        remappings=[("image", image_topic), ("image/compressed", [image_topic, "/compressed"])],
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node),
                          transition_id=Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart))
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=IfCondition(autostart))
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", params_file),
                              description=f"Parameter YAML of {executable}"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera topic (for input_type compressed: <topic>/compressed)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate the node automatically"),
        node,
        activate_when_inactive,
        configure,
    ])
