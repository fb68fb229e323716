"""One image through the model: preprocess -> backend.infer -> decoder, with stage timings.

Task-agnostic: the decoder (SSD, pose, ...) decides what the result is. Used by the CLI tools and
the ROS nodes alike::

    with Pipeline.from_config("models/ssdlite_pedestrian/ssdlite_pedestrian.yaml", "onnxruntime",
                              threads=1) as pipeline:
        detections, times = pipeline.run(bgr_frame, "bgr")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trt_perception.core.backends import Backend, create_backend
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.preprocess import allocate_input, preprocess


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
        return self.preprocess_ns + self.inference_ns + self.postprocess_ns


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


class Pipeline:
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

    @classmethod
    def from_config(cls, path: str | Path, backend_kind: str = "auto", **backend_options: Any) -> "Pipeline":
        """Load the config at ``path``, build its decoder, create and activate the backend.

        ``backend_options`` go to the backend's constructor (e.g. ``threads=1`` for onnxruntime).
        Raises ModelConfigError (config, or config vs model mismatch) or BackendError.
        """
        config = load_model_config(path)
        decoder = create_decoder(config)
        backend = create_backend(backend_kind, str(config.model_path), **backend_options)
        backend.activate()
        try:
            pipeline = cls(config, backend, decoder)
        except BaseException:
            backend.deactivate()
            raise
        pipeline._owns_backend = True
        return pipeline

    def run(self, pixels: np.ndarray, source_order: str) -> tuple[Any, StageTimes]:
        """The decoder's result for one image, and how long each stage took.

        pixels: uint8[H, W, 3] ("rgb"/"bgr") or uint8[H, W] ("mono"), as
        :func:`~trt_perception.core.preprocess.preprocess` takes them.
        """
        t0 = time.perf_counter_ns()
        tensor, geometry = preprocess(pixels, source_order, self.config.preprocess, out=self._input)
        t1 = time.perf_counter_ns()
        outputs = self.backend.infer({self.config.input_name: tensor})
        t2 = time.perf_counter_ns()
        result = self.decoder(outputs_by_role(self.config, outputs), geometry)
        t3 = time.perf_counter_ns()
        return result, StageTimes(t1 - t0, t2 - t1, t3 - t2)

    def close(self) -> None:
        """Deactivate the backend if this pipeline created it. Safe to call twice."""
        if self._owns_backend:
            self.backend.deactivate()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: Optional[object]) -> None:
        self.close()
