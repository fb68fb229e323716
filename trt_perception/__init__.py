"""trt_perception: TensorRT / ONNX Runtime perception (SSD detection, PAF pose) for ROS 2."""

__version__ = "0.1.0"
