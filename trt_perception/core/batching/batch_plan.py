"""Batch sizes: what engine to build for N cameras, and how a batch of n frames is run on it.

A model either takes any batch up to a limit (a dynamic batch dimension: ONNX Runtime with the
batch-dynamic model; a TensorRT engine whose optimization profile is min 1 / opt N / max N), or
exactly one batch size (a fixed batch: an ONNX export with its batch baked in; a DLA engine, whose
profile must have min = opt = max). :class:`BatchCalls` turns a gathered batch of n frames into
inference calls: at most ``limit`` frames each; with a fixed batch every call has that batch, the
rows after the frames padded (their outputs ignored).

:func:`plan_engine_batches` chooses the TensorRT build options for N cameras: on the GPU the
profile 1 / N / N (the engine cache key holds it, so each camera count has its own engine); on a
DLA core a fixed batch of N, or of the DLA's batch limit when N is above it, with a note saying
what that costs. No TensorRT needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from trt_perception.core.tensorrt.options import BuildOptions


class BatchPlanError(ValueError):
    """A batch setting that cannot work, with the reason."""


@dataclass(frozen=True)
class BatchCalls:
    """How a model takes batches: ``limit`` frames per call at most; ``fixed``: True when every
    call must have exactly ``limit`` rows (a fixed batch), False for any batch 1..limit.
    """

    limit: int
    fixed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise BatchPlanError(f"the batch limit must be an integer >= 1, got {self.limit!r}")

    @classmethod
    def for_model(cls, model_batch: Optional[int], max_batch: int) -> "BatchCalls":
        """From dimension 0 of the model input (``None``: dynamic) and the most frames a batch will
        have (the number of cameras, or a dynamic engine's profile max).
        """
        if model_batch is None:
            return cls(max_batch)
        return cls(model_batch, fixed=True)

    def calls(self, frames: int) -> list[tuple[int, int]]:
        """``(frames in the call, batch size of the call)`` for each call that runs ``frames``
        frames, in order; ``[]`` for 0 frames.
        """
        if frames < 0:
            raise BatchPlanError(f"frames must be >= 0, got {frames}")
        out = []
        while frames > 0:
            n = min(frames, self.limit)
            out.append((n, self.limit if self.fixed else n))
            frames -= n
        return out


@dataclass(frozen=True)
class EngineBatchPlan:
    """Build options for N cameras (:func:`plan_engine_batches`), the :class:`BatchCalls` of the
    engine they build, and a note for the log when the plan is not one call per batch of N.
    """

    options: BuildOptions
    calls: BatchCalls
    note: str = ""


def plan_engine_batches(cameras: int, options: BuildOptions,
                        dla_batch_limit: Optional[int] = None) -> EngineBatchPlan:
    """The batch part of ``options`` for ``cameras`` cameras (its other fields kept).

    GPU (``options.dla_core == -1``): min 1 / opt ``cameras`` / max ``cameras``. DLA: a fixed batch
    of ``min(cameras, dla_batch_limit)`` (``dla_batch_limit``: TensorRT's
    ``IBuilder.max_DLA_batch_size`` for the device; None = no limit known): smaller batches are
    padded to it, and above the limit a batch runs in several calls.
    """
    if isinstance(cameras, bool) or not isinstance(cameras, int) or cameras < 1:
        raise BatchPlanError(f"the number of cameras must be an integer >= 1, got {cameras!r}")
    if not options.uses_dla:
        return EngineBatchPlan(replace(options, min_batch=1, opt_batch=cameras, max_batch=cameras),
                               BatchCalls(cameras))
    if dla_batch_limit is not None and (isinstance(dla_batch_limit, bool) or dla_batch_limit < 1):
        raise BatchPlanError(f"the DLA batch limit must be an integer >= 1, got {dla_batch_limit!r}")
    batch = cameras if dla_batch_limit is None else min(cameras, dla_batch_limit)
    note = ""
    if cameras > 1:
        note = (f"DLA core {options.dla_core} runs a fixed batch of {batch}: a batch with fewer frames "
                "is padded (the DLA computes the empty rows too)")
    if batch < cameras:
        calls = -(-cameras // batch)
        note += (f"; {cameras} cameras exceed the DLA batch limit {dla_batch_limit}, so a full batch "
                 f"runs in {calls} calls")
    return EngineBatchPlan(replace(options, min_batch=batch, opt_batch=batch, max_batch=batch),
                           BatchCalls(batch, fixed=True), note)
