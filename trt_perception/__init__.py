"""trt_perception: TensorRT / ONNX Runtime perception (SSD detection, PAF pose) for ROS 2.

The generated message modules (``trt_perception.msg``) may live in another directory than this
source package (the pip-based developer setup installs them into the virtual environment), so the
package path is extended to every ``trt_perception`` directory on ``sys.path``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
