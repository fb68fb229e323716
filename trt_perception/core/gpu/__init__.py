"""The GPU path: a camera frame goes to the GPU once and only the small results come back.

Modules (pycuda is imported only by those that touch the GPU, when they are used):

- :mod:`.preprocess_plan`: host-side plan of the fused preprocessing kernel (frame layouts,
  OpenCV-exact resize tables, parameter struct, launch grid); no CUDA needed;
- ``preprocess_kernel.cu``: the fused kernel (decode, resize, colour order, normalize, layout);
- :mod:`.gpu_preprocess`: :class:`~.gpu_preprocess.GpuPreprocessor` (pinned staging, upload,
  kernel, optional zero-copy input);
- :mod:`.frame_pipeline`: preprocessing, a network run on device buffers and the copy of its
  outputs to the host, pipelined over ``depth`` frames with results in order;
- :mod:`.gpu_pipeline`: :class:`~.gpu_pipeline.GpuPipeline`, the pipeline contract of
  :mod:`trt_perception.core.pipeline` over a :class:`~.frame_pipeline.FramePipeline` and a backend
  that runs on device buffers (TensorRT, or ONNX Runtime's CUDA provider).

The device, buffers and kernel loading are :mod:`trt_perception.core.cuda`; the stand-in network
and the parity cases of the tests are in :mod:`trt_perception.testing`.

See ``docs/gpu.md``.
"""
