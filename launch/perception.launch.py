"""The perception system: detector (and pose) nodes on one or more cameras, driven to active.

    ros2 launch trt_perception perception.launch.py cameras:=/cam_front,/cam_rear
    ros2 launch trt_perception perception.launch.py enable_pose:=true pose_params:=/path/my_pose.yaml
    ros2 launch trt_perception perception.launch.py input_type:=compressed autostart:=false
    ros2 launch trt_perception perception.launch.py cameras:=/cam_a,/cam_b batch:=true
    ros2 launch trt_perception perception.launch.py namespace:=robot1 model_config:=/path/my_ssd.yaml \
        pose_model_config:=/path/my_pose.yaml enable_pose:=true backend:=tensorrt

Per camera namespace <ns>: <ns>/detector_node and <ns>/pose_node read <ns>/<image_topic> and publish
<ns>/detections, <ns>/skeletons, <ns>/detector/latency, <ns>/pose/latency (see
trt_perception/ros/system.py). batch:=true: one /multi_camera_node (config/multi_camera.yaml, or
batch_params:=...) runs the detector of every camera with one inference call per batch and
publishes the same topics. `trt-perception run` starts the same nodes without launch.
"""

from trt_perception.ros.launch_actions import perception_launch


def generate_launch_description():
    return perception_launch()
