"""The one place that turns options into a running pipeline: backend, preprocessing, device.

:func:`create_pipeline` resolves ``backend: auto``, decides where preprocessing runs
(:func:`choose_preprocess`: ``preprocess: auto | gpu | cpu``), builds the backend's options
(:func:`backend_options`) and returns a :class:`~trt_perception.core.pipeline.PerceptionPipeline`
(the CPU :class:`~trt_perception.core.pipeline.Pipeline` or the
:class:`~trt_perception.core.gpu.gpu_pipeline.GpuPipeline`) with the sentence saying what was
chosen and why. Callers (the ROS nodes) drive the result through the pipeline contract only and
never need to know whether a GPU is used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from trt_perception.core.backends import BackendError, resolve_backend
from trt_perception.core.backends.onnxrt import cuda_provider_available
from trt_perception.core.batching.batch_pipeline import BatchPipeline
from trt_perception.core.batching.batch_plan import plan_engine_batches
from trt_perception.core.pipeline import PerceptionPipeline, Pipeline
from trt_perception.core.tensorrt.options import BuildOptions

if TYPE_CHECKING:
    from trt_perception.core.gpu.gpu_batch_pipeline import GpuBatchPipeline

PREPROCESS_MODES = ("auto", "gpu", "cpu")


@dataclass(frozen=True)
class PipelineOptions:
    """How to run a model (the node parameters of the same names; see the README's tables)."""

    #: ``auto`` | ``onnxruntime`` | ``tensorrt``
    backend: str = "auto"
    #: ``auto`` | ``gpu`` | ``cpu`` (:func:`choose_preprocess`)
    preprocess: str = "auto"
    #: CUDA device of the network and of GPU preprocessing
    device_id: int = 0
    #: ONNX Runtime CPU threads (0: its default)
    threads: int = 0
    #: TensorRT: engine precision, DLA core (-1: GPU), cache directory ("" : the default), build on a miss
    precision: str = "fp16"
    dla_core: int = -1
    engine_cache_dir: str = ""
    allow_engine_build: bool = True
    #: TensorRT: layer precision file (fp16-check --write-layers, quantize --target-recall; "": none)
    layer_precision_file: str = ""
    #: GPU preprocessing: frames in flight, kernel reading mapped pinned memory
    pipeline_depth: int = 1
    zero_copy_input: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "PipelineOptions":
        """The options among ``values`` (e.g. a node's parameters; other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def resolve_preprocess_mode(mode: str, device_id: int = 0) -> tuple[str, str]:
    """``gpu`` or ``cpu`` for a ``preprocess`` parameter of ``auto | gpu | cpu``, and why.

    ``auto`` is ``gpu`` when a GPU can be used (pycuda, device ``device_id``); ``gpu`` without a
    usable GPU raises :class:`BackendError` with the reason.
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {mode!r}")
    if mode == "cpu":
        return "cpu", "preprocess: cpu"
    from trt_perception.core.cuda.runtime import gpu_available
    ok, reason = gpu_available(device_id)
    if ok:
        return "gpu", f"GPU preprocessing on {reason}"
    if mode == "gpu":
        raise BackendError(f"preprocess: gpu was asked for but {reason}")
    return "cpu", f"CPU preprocessing: {reason}"


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
    available, why = cuda_provider_available()
    if available:
        return "gpu", f"{reason}, ONNX Runtime on its CUDA provider"
    if mode == "gpu":
        raise BackendError(f"preprocess: gpu needs the network on the GPU, but {why} "
                           "(use backend: tensorrt or install onnxruntime-gpu)")
    return "cpu", f"CPU preprocessing: the onnxruntime backend runs on the CPU ({why})"


def backend_options(options: PipelineOptions, backend: str, preprocess: str,
                    config_path: Optional[str | Path] = None) -> dict[str, Any]:
    """Constructor options of the resolved ``backend`` for ``preprocess`` (``cpu`` / ``gpu``)."""
    if backend == "tensorrt":
        return {"precision": options.precision, "dla_core": options.dla_core,
                "engine_cache_dir": options.engine_cache_dir or None, "allow_build": options.allow_engine_build,
                "layer_precision_file": options.layer_precision_file or None,
                "model_config": None if config_path is None else str(config_path),
                "device_id": options.device_id}
    if preprocess == "gpu":
        return {"device_buffers": True, "device_id": options.device_id}
    return {"threads": options.threads} if options.threads else {}


def create_pipeline(config_path: str | Path, options: PipelineOptions) -> tuple[PerceptionPipeline, str]:
    """The pipeline for the model configuration at ``config_path`` run as ``options`` say, and a
    sentence saying where it runs and why (for the log). Raises ModelConfigError, BackendError,
    ValueError (a bad option) with the reason.
    """
    backend = resolve_backend(options.backend)
    preprocess, why = choose_preprocess(options.preprocess, backend, options.device_id)
    backend_kwargs = backend_options(options, backend, preprocess, config_path)
    if preprocess == "gpu":
        from trt_perception.core.gpu.gpu_pipeline import GpuPipeline
        device_id = backend_kwargs.pop("device_id")
        return GpuPipeline.from_config(config_path, backend, depth=options.pipeline_depth,
                                       zero_copy_input=options.zero_copy_input, device_id=device_id,
                                       **backend_kwargs), why
    return Pipeline.from_config(config_path, backend, **backend_kwargs), why


def batch_backend_options(options: PipelineOptions, backend: str, preprocess: str, cameras: int,
                          config_path: Optional[str | Path] = None) -> tuple[dict[str, Any], str]:
    """Constructor options of the resolved ``backend`` for a batch of ``cameras`` frames with
    ``preprocess`` (``cpu`` / ``gpu``), and a note for the log (empty unless the batch plan has
    one). TensorRT: the optimization profile of
    :func:`~trt_perception.core.batching.batch_plan.plan_engine_batches` (GPU: min 1 / opt N / max N;
    the engine cache key holds it; on a DLA core a fixed batch within the device's DLA batch limit).
    ONNX Runtime on device buffers: its ``device_batch`` (the model's batch dimension kept free).
    """
    kwargs = backend_options(options, backend, preprocess, config_path)
    if backend != "tensorrt":
        if preprocess == "gpu":
            kwargs["device_batch"] = True
        return kwargs, ""
    dla_limit = None
    if options.dla_core >= 0:
        try:   # without TensorRT the backend itself refuses to start, with the reason
            from trt_perception.core.tensorrt.builder import dla_batch_limit
        except ImportError:
            pass
        else:
            dla_limit = dla_batch_limit()
    plan = plan_engine_batches(cameras, BuildOptions(precision=options.precision, dla_core=options.dla_core),
                               dla_limit)
    kwargs.update(min_batch=plan.options.min_batch, opt_batch=plan.options.opt_batch,
                  max_batch=plan.options.max_batch)
    return kwargs, plan.note


def create_batch_pipeline(config_path: str | Path, options: PipelineOptions,
                          cameras: int) -> tuple[BatchPipeline | GpuBatchPipeline, str]:
    """The pipeline that runs the frames of ``cameras`` cameras in one inference call per batch,
    and the sentence for the log: with GPU preprocessing (:func:`choose_preprocess`) the
    :class:`~trt_perception.core.gpu.gpu_batch_pipeline.GpuBatchPipeline` (``pipeline_depth``
    batches in flight), else the CPU
    :class:`~trt_perception.core.batching.batch_pipeline.BatchPipeline`; backend options from
    :func:`batch_backend_options`. Raises ModelConfigError, BackendError, ValueError (a bad
    option) with the reason.
    """
    backend = resolve_backend(options.backend)
    preprocess, why = choose_preprocess(options.preprocess, backend, options.device_id)
    backend_kwargs, note = batch_backend_options(options, backend, preprocess, cameras, config_path)
    note = f"; {note}" if note else ""
    if preprocess == "gpu":
        from trt_perception.core.gpu.gpu_batch_pipeline import GpuBatchPipeline as GpuBatch
        device_id = backend_kwargs.pop("device_id")
        gpu = GpuBatch.from_config(config_path, backend, cameras, depth=options.pipeline_depth,
                                   device_id=device_id, **backend_kwargs)
        return gpu, f"{cameras} camera(s) batched into one {backend} call per batch; {why}{note}"
    pipeline = BatchPipeline.from_config(config_path, max_batch=cameras, backend_kind=backend, **backend_kwargs)
    return pipeline, f"{cameras} camera(s) batched into one {backend} call per batch; {why}{note}"
