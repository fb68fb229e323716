"""Start detector_node with config/detector.yaml, remap its camera topic, drive it to active.

ros2 launch trt_perception detector.launch.py image_topic:=/camera/image_raw
ros2 launch trt_perception detector.launch.py input_type:=compressed model_config:=/path/my_ssd.yaml \
        backend:=onnxruntime namespace:=front params_file:=/path/my_detector.yaml strict_parameters:=true
ros2 launch trt_perception detector.launch.py autostart:=false   # stays unconfigured
ros2 launch trt_perception detector.launch.py --show-args        # every argument, described

Autostart configures and activates once, at start-up. A missing params_file, or a value outside an
argument's choices, stops the launch with the reason.
"""

from trt_perception.ros.launch_actions import single_node_launch


def generate_launch_description():
    return single_node_launch("detector", "detector.yaml")
