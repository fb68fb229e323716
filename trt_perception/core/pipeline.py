"""The pipeline contract, and its CPU implementation: preprocess -> backend.infer -> decoder.

Every pipeline (:class:`Pipeline` here, :class:`~trt_perception.core.gpu.gpu_pipeline.GpuPipeline`
on the GPU) follows :class:`PerceptionPipeline`: :meth:`~PerceptionPipeline.submit` takes one
:class:`SourceFrame` with a caller's ``tag`` and returns the :class:`FrameResult` of every frame
finished by then, in submission order (the CPU pipeline: that frame's, at once; the GPU one with
depth > 1: earlier frames'); :meth:`~PerceptionPipeline.drain` returns those still in flight,
:meth:`~PerceptionPipeline.close` frees everything. Pipelines are made by
:func:`trt_perception.core.pipeline_factory.create_pipeline`, which chooses backend and
preprocessing. Task-agnostic: the decoder (SSD, pose, ...) decides what the result is. The CLI
tools also call :meth:`Pipeline.run` on pixels::

    with Pipeline.from_config("models/ssdlite_pedestrian/ssdlite_pedestrian.yaml", "onnxruntime",
                              threads=1) as pipeline:
        detections, times = pipeline.run(bgr_frame, "bgr")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, TypeVar

import numpy as np

from trt_perception.core.backends import Backend, activated_backend
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.image import RawImage
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.preprocess import allocate_input, preprocess

_Self = TypeVar("_Self", bound="ClosedOnExit")


@dataclass(frozen=True)
class StageTimes:
    """Wall-clock durations of one :meth:`Pipeline.run`, in nanoseconds (``time.perf_counter_ns``).

    preprocess: resize, colour order, normalization into the input buffer; inference:
    ``backend.infer``; postprocess: the decoder (for SSD: candidates, box decoding, NMS, mapping).
    """

    preprocess_ns: int
    inference_ns: int
    postprocess_ns: int

    @property
    def total_ns(self) -> int:
        """Preprocess + inference + postprocess time of this frame, in nanoseconds."""
        return self.preprocess_ns + self.inference_ns + self.postprocess_ns


@dataclass(frozen=True)
class SourceFrame:
    """One camera frame as a pipeline takes it.

    ``pixels``: uint8[H, W, 3] in ``order`` (``"rgb"``/``"bgr"``) or uint8[H, W] (``"mono"``),
    possibly a read-only view (pipelines never write to it), or None when only ``image`` was kept:
    the raw frame (:class:`~trt_perception.core.image.RawImage`, the bytes of a ``sensor_msgs/Image``),
    which pipelines that take raw images (:attr:`PerceptionPipeline.takes_raw_images`: GPU
    preprocessing) read instead of pixels.
    """

    pixels: Optional[np.ndarray] = None
    order: str = ""
    image: Optional[RawImage] = None

    def decoded(self) -> tuple[np.ndarray, str]:
        """``(pixels, order)``, decoding the raw image on the CPU when only it was kept."""
        if self.pixels is not None:
            return self.pixels, self.order
        if self.image is None:
            raise ValueError("the frame has neither pixels nor a raw image")
        return self.image.decode()


@dataclass(frozen=True)
class FrameResult:
    """What the decoder made of one frame (``result``: detections, skeletons, ...), with the caller's
    ``tag``, the frame's :class:`~trt_perception.core.geometry.ResizeGeometry` (source pixels <->
    network input) and how long each stage took.
    """

    tag: Any
    result: Any
    geometry: ResizeGeometry
    times: StageTimes


class ClosedOnExit:
    """``with pipeline:`` closes the pipeline at the end of the block (mixin of the pipelines)."""

    def close(self) -> None:
        """Free what the object owns (each pipeline defines it)."""
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: Optional[object]) -> None:
        self.close()


class PerceptionPipeline(Protocol):
    """What the nodes drive: one model's preprocessing, network and decoder (module docstring)."""

    config: ModelConfig
    decoder: Decoder
    #: the backend running the network (``name``; ``device_id`` when on a GPU)
    backend: Backend
    #: True when :meth:`submit` reads :attr:`SourceFrame.image` (the raw bytes), so a frame need not
    #: be decoded on the CPU; False: it reads :meth:`SourceFrame.decoded`
    takes_raw_images: bool

    def submit(self, frame: SourceFrame, tag: Any = None) -> list[FrameResult]:
        """Run ``frame``; the results of the frames finished now, in submission order."""
        ...

    def drain(self) -> list[FrameResult]:
        """Wait for the frames in flight; their results in order."""
        ...

    def close(self) -> None:
        """Free the buffers and the network the pipeline owns. Safe to call twice."""
        ...


def check_decoder_roles(config: ModelConfig, decoder: Decoder) -> None:
    """Raise ModelConfigError unless ``config.outputs`` names every output role ``decoder`` reads."""
    missing = [role for role in decoder.roles if role not in config.outputs]
    if missing:
        where = f" ({config.source})" if config.source else ""
        raise ModelConfigError(f"the {config.task} decoder reads outputs {list(decoder.roles)} but the "
                               f"config's outputs section{where} lacks {missing}")


def outputs_by_role(config: ModelConfig, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's ``outputs`` (by tensor name) by the decoder role ``config.outputs`` gives each."""
    return {role: outputs[name] for role, name in config.outputs.items()}


class Pipeline(ClosedOnExit):
    """Preprocessing, an *active* backend and a decoder for one model configuration.

    The constructor checks that the backend's tensors match ``config`` (``check_io``) and that
    ``config.outputs`` names every role the decoder reads; it raises
    :class:`~trt_perception.core.model_config.ModelConfigError` otherwise. A pipeline made by
    :meth:`from_config` owns its backend and :meth:`close` deactivates it; one given a backend
    leaves it to the caller. The input tensor is allocated once and reused by every run.
    """

    def __init__(self, config: ModelConfig, backend: Backend, decoder: Decoder) -> None:
        check_decoder_roles(config, decoder)
        config.check_io(backend.input_specs(), backend.output_specs())
        self.config = config
        self.backend = backend
        self.decoder = decoder
        self._input = allocate_input(config.preprocess)
        self._owns_backend = False

    #: preprocessing reads decoded pixels (:meth:`SourceFrame.decoded`)
    takes_raw_images = False

    @classmethod
    def from_config(cls, path: str | Path, backend_kind: str = "auto", **backend_options: Any) -> "Pipeline":
        """Load the config at ``path``, build its decoder, create and activate the backend.

        ``backend_options`` go to the backend's constructor (e.g. ``threads=1`` for onnxruntime).
        Raises ModelConfigError (config, or config vs model mismatch) or BackendError.
        """
        config = load_model_config(path)
        decoder = create_decoder(config)
        with activated_backend(backend_kind, str(config.model_path), **backend_options) as backend:
            pipeline = cls(config, backend, decoder)
        pipeline._owns_backend = True
        return pipeline

    def run(self, pixels: np.ndarray, source_order: str) -> tuple[Any, StageTimes]:
        """The decoder's result for one image, and how long each stage took.

        pixels: uint8[H, W, 3] ("rgb"/"bgr") or uint8[H, W] ("mono"), as
        :func:`~trt_perception.core.preprocess.preprocess` takes them.
        """
        done = self._run(pixels, source_order, None)
        return done.result, done.times

    def submit(self, frame: SourceFrame, tag: Any = None) -> list[FrameResult]:
        """The frame's result, at once (:class:`PerceptionPipeline`)."""
        return [self._run(*frame.decoded(), tag)]

    def drain(self) -> list[FrameResult]:
        """Nothing is ever in flight: []."""
        return []

    def _run(self, pixels: np.ndarray, source_order: str, tag: Any) -> FrameResult:
        t0 = time.perf_counter_ns()
        tensor, geometry = preprocess(pixels, source_order, self.config.preprocess, out=self._input)
        t1 = time.perf_counter_ns()
        outputs = self.backend.infer({self.config.input_name: tensor})
        t2 = time.perf_counter_ns()
        result = self.decoder(outputs_by_role(self.config, outputs), geometry)
        t3 = time.perf_counter_ns()
        return FrameResult(tag, result, geometry, StageTimes(t1 - t0, t2 - t1, t3 - t2))

    def close(self) -> None:
        """Deactivate the backend if this pipeline created it. Safe to call twice."""
        if self._owns_backend:
            self.backend.deactivate()

