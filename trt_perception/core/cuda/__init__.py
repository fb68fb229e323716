"""CUDA plumbing over pycuda, shared by the GPU frame path (:mod:`trt_perception.core.gpu`) and
TensorRT (:mod:`trt_perception.core.tensorrt`, :mod:`trt_perception.core.backends`); it imports
none of them.

- :mod:`.device`: :class:`~.device.CudaDevice` (a GPU's primary context and identity),
  :class:`~.device.HostDeviceBuffer` (pinned host + device memory), :class:`~.device.CudaGraph`;
- :mod:`.runtime`: ``gpu_available()``, the process-wide device per id, kernels compiled once;
- :mod:`.identity`: :class:`~.identity.GpuIdentity`, the GPU as the engine cache keys it.

pycuda is imported only when a GPU is used, so the package imports anywhere.
"""
