"""Start pose_node with config/pose.yaml, remap its camera topic, drive it to active.

ros2 launch trt_perception pose.launch.py image_topic:=/camera/image_raw \
        params_file:=/path/to/my_pose.yaml   # model_config: your exported trt_pose model
ros2 launch trt_perception pose.launch.py model_config:=/path/to/my_pose_model.yaml
ros2 launch trt_perception pose.launch.py --show-args   # every argument, described
"""

from trt_perception.ros.launch_actions import single_node_launch


def generate_launch_description():
    return single_node_launch("pose", "pose.yaml")
