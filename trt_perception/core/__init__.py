"""ROS-free core: image handling, preprocessing, inference backends, decoders, latency accounting.

Nothing under ``trt_perception.core`` may import rclpy or any ROS message package.
"""
