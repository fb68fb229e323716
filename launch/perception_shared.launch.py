"""Both models in one process per camera: perception_node (each frame decoded once), driven to active.

    ros2 launch trt_perception perception_shared.launch.py params_file:=/path/my_perception.yaml
    ros2 launch trt_perception perception_shared.launch.py cameras:=/cam_front,/cam_rear

Per camera namespace <ns>: <ns>/perception_node reads <ns>/<image_topic> and publishes the same
topics as perception.launch.py's two nodes (<ns>/detections, <ns>/skeletons, <ns>/detector/latency,
<ns>/pose/latency). `trt-perception run --params config/perception.yaml` starts the same node.
"""

from trt_perception.ros.launch_actions import shared_launch


def generate_launch_description():
    return shared_launch()
