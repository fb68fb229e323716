"""GpuPipeline: the GPU implementation of :class:`~trt_perception.core.pipeline.PerceptionPipeline`.

Raw camera frames (:attr:`SourceFrame.image <trt_perception.core.pipeline.SourceFrame.image>`, the
bytes of a ``sensor_msgs/Image``) go to the GPU once: fused preprocessing, the network on device
buffers (a :class:`~trt_perception.core.backends.Backend` that :attr:`runs_on_device
<trt_perception.core.backends.Backend.runs_on_device>`: TensorRT, or ONNX Runtime's CUDA provider),
outputs to the host, the task's decoder there. :meth:`GpuPipeline.submit` returns the frames
finished so far, in submission order: the frame itself with ``depth`` 1, the previous ones with
``depth`` > 1 (see :class:`~trt_perception.core.gpu.frame_pipeline.FramePipeline`). A change of
frame format (encoding, size, step) finishes the frames in flight and re-plans the kernel.

Made by :func:`trt_perception.core.pipeline_factory.create_pipeline` (which decides whether the GPU
path can run, ``preprocess: auto | gpu | cpu``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trt_perception.core.backends import Backend, BackendError, activated_backend
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.gpu.frame_pipeline import FramePipeline
from trt_perception.core.gpu.gpu_preprocess import Layout, layout_of
from trt_perception.core.model_config import ModelConfig, load_model_config
from trt_perception.core.pipeline import FrameResult, SourceFrame, check_decoder_roles, outputs_by_role


class GpuPipeline:
    """GPU preprocessing, a network on the device and a host decoder for one model configuration.

    Made by :meth:`from_config`; :attr:`config`, :attr:`decoder` and :attr:`backend` as on
    :class:`~trt_perception.core.pipeline.Pipeline`.
    """

    #: preprocessing reads the raw frame (:attr:`SourceFrame.image`), never decoded pixels
    takes_raw_images = True

    def __init__(self, config: ModelConfig, decoder: Decoder, backend: Backend, frames: FramePipeline) -> None:
        self.config = config
        self.decoder = decoder
        self.backend = backend
        self._frames: Optional[FramePipeline] = frames
        self._layout: Optional[Layout] = None
        self._pending: list[FrameResult] = []   # finished before a format change, not handed out yet

    @classmethod
    def from_config(cls, path: str | Path, backend_kind: str, depth: int = 1, zero_copy_input: bool = False,
                    device_id: int = 0, **backend_options: Any) -> "GpuPipeline":
        """Load the config at ``path`` and build the pipeline on CUDA device ``device_id`` with the
        backend ``backend_kind`` made with ``backend_options`` (with ``device_id``); the backend must
        run on device buffers (``tensorrt``, or ``onnxruntime`` with ``device_buffers=True``).
        Raises ModelConfigError or BackendError.
        """
        from trt_perception.core.cuda.runtime import shared_device
        config = load_model_config(path)
        decoder = create_decoder(config)
        check_decoder_roles(config, decoder)
        device = shared_device(device_id)
        options = {**backend_options, "device_id": device_id}
        with activated_backend(backend_kind, str(config.model_path), **options) as backend:
            if not backend.runs_on_device:
                raise BackendError(f"GPU preprocessing needs a network on device buffers; the {backend.name} "
                                   "backend as configured runs on the CPU")
            config.check_io(backend.input_specs(), backend.output_specs())
            frames = FramePipeline(device, config.preprocess, backend, _decode_with(decoder, config),
                                   depth=depth, zero_copy_input=zero_copy_input, infer_stream=backend.cuda_stream)
        return cls(config, decoder, backend, frames)

    def submit(self, frame: SourceFrame, tag: Any = None) -> list[FrameResult]:
        """Enqueue ``frame.image``; the results finished now, in order (each with its ``tag`` and
        :class:`~trt_perception.core.pipeline.StageTimes`). ValueError when the frame has no raw
        image.
        """
        image = frame.image
        if image is None:
            raise ValueError("GPU preprocessing takes raw images: the frame has only decoded pixels")
        if self._frames is None:
            raise BackendError("the GPU pipeline was closed")
        layout = layout_of(image)
        if layout != self._layout:
            if self._layout is not None:  # kept until handed out, even if configure fails
                self._pending += self._frames.drain()
                self._layout = None
            self._frames.configure(*layout)
            self._layout = layout
        results = self._frames.submit(image.data, tag)
        finished, self._pending = self._pending, []
        return finished + results

    def drain(self) -> list[FrameResult]:
        """Wait for the frames in flight; their results in order."""
        finished, self._pending = self._pending, []
        return finished + (self._frames.drain() if self._frames is not None else [])

    def close(self) -> None:
        """Free the GPU buffers and the network. Safe to call twice."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
            self.backend.deactivate()


def _decode_with(decoder: Decoder, config: ModelConfig) -> Any:
    """``decode(outputs by tensor name, geometry)`` for FramePipeline: the decoder by output role."""
    def decode(tensors: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> Any:
        return decoder(outputs_by_role(config, tensors), geometry)
    return decode
