"""GpuPipeline: the GPU counterpart of :class:`~trt_perception.core.pipeline.Pipeline` for the nodes.

Raw camera frames (:class:`~trt_perception.core.image.RawImage`, the bytes of a ``sensor_msgs/Image``)
go to the GPU once: fused preprocessing, the network on device buffers (a TensorRT engine, or ONNX
Runtime's CUDA provider where TensorRT is absent), outputs to the host, the task's decoder there.
:meth:`GpuPipeline.submit` returns the frames finished so far, in submission order: the frame itself
with ``depth`` 1, the previous ones with ``depth`` > 1 (see
:class:`~trt_perception.core.gpu.frame_pipeline.FramePipeline`). A change of frame format (encoding,
size, step) finishes the frames in flight and re-plans the kernel.

``preprocess: auto | gpu | cpu`` is decided by :func:`choose_preprocess`: the GPU path needs pycuda,
the device, and a backend that runs on the GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trt_perception.core.backends import BackendError, create_backend
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.cuda.runtime import resolve_preprocess_mode
from trt_perception.core.gpu.frame_pipeline import FramePipeline, FrameResult
from trt_perception.core.image import RawImage
from trt_perception.core.model_config import ModelConfig, load_model_config
from trt_perception.core.pipeline import check_decoder_roles, outputs_by_role


def choose_preprocess(mode: str, backend: str, device_id: int = 0) -> tuple[str, str]:
    """``gpu`` or ``cpu`` for a ``preprocess`` parameter with the resolved ``backend``
    (``tensorrt`` / ``onnxruntime``), and why.

    GPU preprocessing needs pycuda, CUDA device ``device_id`` and a network on the GPU: TensorRT, or
    ONNX Runtime with its CUDA provider. ``auto`` falls back to ``cpu`` otherwise; ``gpu`` raises
    :class:`BackendError` with the reason.
    """
    resolved, reason = resolve_preprocess_mode(mode, device_id)
    if resolved == "cpu" or backend == "tensorrt":
        return resolved, reason
    from trt_perception.core.gpu.ort_runner import cuda_provider_available
    available, why = cuda_provider_available()
    if available:
        return "gpu", f"{reason}, ONNX Runtime on its CUDA provider"
    if mode == "gpu":
        raise BackendError(f"preprocess: gpu needs the network on the GPU, but {why} "
                           "(use backend: tensorrt or install onnxruntime-gpu)")
    return "cpu", f"CPU preprocessing: the onnxruntime backend runs on the CPU ({why})"


class GpuPipeline:
    """GPU preprocessing, a network on the device and a host decoder for one model configuration.

    Made by :meth:`from_config`; :attr:`config`, :attr:`decoder` and :attr:`backend` (whose
    ``name`` says what runs the network) as on :class:`~trt_perception.core.pipeline.Pipeline`.
    """

    def __init__(self, config: ModelConfig, decoder: Decoder, backend: Any, frames: FramePipeline) -> None:
        self.config = config
        self.decoder = decoder
        self.backend = backend
        self._frames = frames
        self._layout: Optional[tuple[str, int, int, int, bool]] = None
        self._pending: list[FrameResult] = []   # finished before a format change, not handed out yet

    @classmethod
    def from_config(cls, path: str | Path, backend_kind: str, depth: int = 1, zero_copy_input: bool = False,
                    device_id: int = 0, **backend_options: Any) -> "GpuPipeline":
        """Load the config at ``path`` and build the pipeline with the ``tensorrt`` backend (its
        engine and stream) or, for ``onnxruntime``, ONNX Runtime's CUDA provider bound to the
        pipeline's buffers. ``backend_options`` go to the TensorRT backend (onnxruntime: ignored).
        Raises ModelConfigError or BackendError.
        """
        from trt_perception.core.cuda.runtime import shared_device
        config = load_model_config(path)
        decoder = create_decoder(config)
        check_decoder_roles(config, decoder)
        device = shared_device(device_id)
        backend: Any
        if backend_kind == "tensorrt":
            backend = create_backend("tensorrt", str(config.model_path),
                                     **{**backend_options, "device_id": device_id})
            backend.activate()
            stream = backend.cuda_stream
        elif backend_kind == "onnxruntime":
            from trt_perception.core.gpu.ort_runner import OrtCudaRunner
            with device.current():
                stream = device.driver.Stream()
            backend = OrtCudaRunner(config.model_path, stream, device_id)
        else:
            raise BackendError(f"GPU preprocessing runs with backend tensorrt or onnxruntime, not {backend_kind!r}")
        try:
            config.check_io(backend.input_specs(), backend.output_specs())
            frames = FramePipeline(device, config.preprocess, backend, _decode_with(decoder, config),
                                   depth=depth, zero_copy_input=zero_copy_input, infer_stream=stream)
        except BaseException:
            _close_backend(backend)
            raise
        return cls(config, decoder, backend, frames)

    def submit(self, image: RawImage, tag: Any = None) -> list[FrameResult]:
        """Enqueue ``image``; the results finished now, in order (each with its ``tag`` and
        :class:`~trt_perception.core.pipeline.StageTimes`)."""
        layout = (image.encoding, image.width, image.height, image.step, image.is_bigendian)
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
        return finished + self._frames.drain()

    def close(self) -> None:
        """Free the GPU buffers and the network. Safe to call twice."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None  # type: ignore[assignment]
            _close_backend(self.backend)


def _decode_with(decoder: Decoder, config: ModelConfig) -> Any:
    """``decode(outputs by tensor name, geometry)`` for FramePipeline: the decoder by output role."""
    def decode(tensors: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> Any:
        return decoder(outputs_by_role(config, tensors), geometry)
    return decode


def _close_backend(backend: Any) -> None:
    deactivate = getattr(backend, "deactivate", None)
    if deactivate is not None:
        deactivate()
