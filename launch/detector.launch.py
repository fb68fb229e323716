"""Start detector_node with config/detector.yaml, remap its camera topic, drive it to active.

ros2 launch trt_perception detector.launch.py image_topic:=/camera/image_raw
ros2 launch trt_perception detector.launch.py autostart:=false   # stays unconfigured
"""

from trt_perception.ros.launch_actions import single_node_launch


def generate_launch_description():
    return single_node_launch("detector", "detector.yaml")
