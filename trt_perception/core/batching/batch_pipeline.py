"""BatchPipeline: the frames of several cameras through one model call, each decoded on its own.

Per batch of n frames (each a decoded image of any size and colour order, with the caller's tag):

1. preprocess: each frame is written straight into its row of one preallocated batch tensor
   ``[limit, C, H, W]`` (or NHWC), with its own geometry (:func:`~trt_perception.core.preprocess.preprocess`
   into a view of the row: no copy);
2. inference: one ``backend.infer`` on the first n rows (a model with a dynamic batch), or as the
   model's :class:`~trt_perception.core.batching.batch_plan.BatchCalls` say (a fixed batch:
   padded rows; more frames than the limit: several calls);
3. postprocess: the decoder on each frame's slice ``[i:i+1]`` of every output, with that frame's
   geometry, so results are in each frame's own source pixels.

A :class:`~trt_perception.core.pipeline.PerceptionPipeline` (the pipeline contract):
:meth:`BatchPipeline.submit_batch` runs a batch and returns the finished results (this CPU path is
synchronous, so all of the batch's), :meth:`~BatchPipeline.submit` a batch of one frame,
:meth:`drain` those still in flight (none), :meth:`close` frees the backend it owns. Each result is a
:class:`~trt_perception.core.pipeline.FrameResult` whose ``times`` are the
:class:`BatchStageTimes` of its batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trt_perception.core.backends import Backend, activated_backend
from trt_perception.core.backends.base import TensorSpec
from trt_perception.core.batching.batch_plan import BatchCalls
from trt_perception.core.decode import Decoder, create_decoder
from trt_perception.core.model_config import ModelConfig, load_model_config
from trt_perception.core.pipeline import (
    ClosedOnExit,
    FrameResult,
    SourceFrame,
    StageTimes,
    check_decoder_roles,
    outputs_by_role,
)
from trt_perception.core.preprocess import preprocess


@dataclass(frozen=True)
class BatchStageTimes(StageTimes):
    """The stage times of a whole batch (nanoseconds: preprocessing of all its frames, every
    inference call, decoding of all its frames) and ``batch_size``, the frames in the batch.
    """

    batch_size: int = 1


class BatchPipeline(ClosedOnExit):
    """Preprocessing into a batch tensor, an *active* backend and a decoder (module docstring).

    ``max_batch``: the most frames a batch will hold (the number of cameras). The model's input
    must have a dynamic batch dimension or a fixed one (then every call has that batch); its other
    dimensions must match ``config`` (:meth:`ModelConfig.check_io`). A pipeline made by
    :meth:`from_config` owns its backend and :meth:`close` deactivates it.
    """

    def __init__(self, config: ModelConfig, backend: Backend, decoder: Decoder, max_batch: int) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        check_decoder_roles(config, decoder)
        inputs = backend.input_specs()
        spec = inputs.get(config.input_name)
        model_batch = spec.shape[0] if spec is not None and spec.shape else None
        if spec is not None and spec.shape:   # check everything but the batch dimension
            inputs = {**inputs, spec.name: TensorSpec(spec.name, spec.dtype, (None, *spec.shape[1:]))}
        config.check_io(inputs, backend.output_specs())
        self.config = config
        self.backend = backend
        self.decoder = decoder
        self.calls = BatchCalls.for_model(model_batch, max_batch)
        self._input = np.zeros((self.calls.limit, *config.preprocess.input_shape[1:]), config.preprocess.np_dtype)
        self._owns_backend = False

    #: frames are read through :meth:`SourceFrame.decoded` (CPU preprocessing)
    takes_raw_images = False

    @classmethod
    def from_config(cls, path: str | Path, max_batch: int, backend_kind: str = "auto",
                    **backend_options: Any) -> "BatchPipeline":
        """Load the config at ``path``, build its decoder, create and activate the backend
        (``backend_options`` go to its constructor). Raises ModelConfigError or BackendError.
        """
        config = load_model_config(path)
        decoder = create_decoder(config)
        with activated_backend(backend_kind, str(config.model_path), **backend_options) as backend:
            pipeline = cls(config, backend, decoder, max_batch)
        pipeline._owns_backend = True
        return pipeline

    def stage(self, frame: SourceFrame) -> SourceFrame:
        """``frame`` as it is: the CPU path has nothing to prepare while a batch gathers (the GPU
        path copies raw frames into page-locked memory here).
        """
        return frame

    def submit(self, frame: SourceFrame, tag: Any = None) -> list[FrameResult]:
        """The result of ``frame`` run as a batch of one (the pipeline contract)."""
        return self.submit_batch([(frame, tag)])

    def submit_batch(self, items: Sequence[tuple[SourceFrame, Any]]) -> list[FrameResult]:
        """Results of ``items`` (``(frame, tag)`` each; the frame's :meth:`SourceFrame.decoded`
        pixels are preprocessed) in their order.

        Raises ValueError for pixels ``preprocess`` refuses (wrong dtype or shape; decoded images
        never are) before any inference, and BackendError when the model fails: the whole batch
        is then lost, and the caller counts its frames.
        """
        pre = infer = post = 0
        results: list[tuple[Any, Any, Any]] = []
        cfg = self.config.preprocess
        done = 0
        for count, size in self.calls.calls(len(items)):
            t0 = time.perf_counter_ns()
            geometries = [preprocess(*frame.decoded(), cfg, out=self._input[row:row + 1])[1]
                          for row, (frame, _) in enumerate(items[done:done + count])]
            t1 = time.perf_counter_ns()
            outputs = outputs_by_role(self.config, self.backend.infer({self.config.input_name: self._input[:size]}))
            t2 = time.perf_counter_ns()
            for row, geometry in enumerate(geometries):
                result = self.decoder({role: array[row:row + 1] for role, array in outputs.items()}, geometry)
                results.append((items[done + row][1], result, geometry))
            t3 = time.perf_counter_ns()
            pre, infer, post, done = pre + t1 - t0, infer + t2 - t1, post + t3 - t2, done + count
        times = BatchStageTimes(pre, infer, post, batch_size=len(items))
        return [FrameResult(tag, result, geometry, times) for tag, result, geometry in results]

    def drain(self) -> list[FrameResult]:
        """Results still in flight: none, :meth:`submit_batch` is synchronous."""
        return []

    def close(self) -> None:
        """Deactivate the backend if this pipeline created it. Safe to call twice."""
        if self._owns_backend:
            self.backend.deactivate()

