"""TensorRT backend: a serialized engine run with ``execute_async_v3`` on a CUDA stream.

``model_path`` is either an ONNX file, whose engine comes from the engine cache (built on a miss
when ``allow_build``), or a serialized engine (``.engine``/``.plan``/``.trt``) loaded as is.

Options (all validated by the constructor, which imports neither TensorRT nor pycuda):

========================= ============================================================================
``engine_cache_dir``      cache directory (default ``$TRT_PERCEPTION_CACHE`` or ``~/.cache/trt_perception/engines``)
``precision``             ``fp32`` | ``fp16`` (default) | ``int8`` (see :mod:`trt_perception.core.tensorrt.options`)
``dla_core``              DLA core, ``-1`` (default) = GPU; ``gpu_fallback`` (default True) for DLA-less layers
``workspace_mb``          builder scratch memory limit in MiB (default: TensorRT's)
``allow_build``           build on a cache miss (default True); False: a miss is a :class:`BackendError`
``min_batch``/``opt_batch``/``max_batch``  optimization profile of a dynamic-batch model (default 1)
``optimization_level``    builder optimization level 0..5 (default: TensorRT's, 3)
``calibration_sources``   legacy INT8: frame sources (videos, image folders, ``BAG#TOPIC``)
``calibration_every``     use every N-th frame (default 1); ``calibration_max_frames`` (default 500)
``calibration_cache``     legacy INT8: TensorRT calibration cache file (read if present, else written)
``timing_cache``          builder timing cache file (read and updated by builds)
``model_config``          :class:`ModelConfig` or its YAML path: I/O checked against it on activation,
                          and its preprocessing used for calibration frames
``cuda_graph``            capture the engine's enqueue in a CUDA graph, replayed per frame (default False)
``device_id``             CUDA device (default 0)
``layer_precision_file``  layers pinned to FP32/FP16 (:mod:`trt_perception.core.tensorrt.layer_precision`)
========================= ============================================================================

Buffers: one page-locked host array and one device allocation per I/O tensor, sized for the
profile's largest shapes, allocated on :meth:`activate` and freed on :meth:`deactivate`. The
arrays :meth:`infer` returns are views of the host output buffers, overwritten by the next call
(``outputs_reused``). :meth:`infer_device` takes inputs already in GPU memory (zero copy).
:meth:`device_timings_ms` gives the last call's H2D / compute / D2H times from CUDA events.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from trt_perception.core.backends.base import Backend, BackendError, TensorSpec
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.tensorrt.cache import EngineCache, EngineCacheError
from trt_perception.core.tensorrt.calibration import CalibrationError, CalibrationSettings
from trt_perception.core.tensorrt.io_plan import (
    DeviceTensor,
    EngineTensor,
    IOPlanError,
    check_engine_tensors,
    io_specs,
    numpy_dtype,
    plan_buffers,
)
from trt_perception.core.tensorrt.layer_precision import LayerPrecisionError, as_key, read_layer_precisions
from trt_perception.core.tensorrt.options import BuildOptions, BuildOptionsError

if TYPE_CHECKING:
    import tensorrt as trt

    from trt_perception.core.cuda.device import CudaDevice, CudaGraph, HostDeviceBuffer

LOG = logging.getLogger(__name__)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module; :class:`BackendError` when TensorRT is not installed (a bare
    ``tensorrt`` namespace, e.g. from type stubs, does not count).
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError("TensorRT is not installed: use the onnxruntime backend, or install TensorRT "
                           "(JetPack / DRIVE OS ship it; pip install tensorrt on x86)") from exc
    if not hasattr(tensorrt, "Builder"):
        raise BackendError("the 'tensorrt' module found is not TensorRT (only type stubs?): install TensorRT")
    return tensorrt


class TensorRTBackend(Backend):
    """Runs a TensorRT engine (see the module docstring for the options)."""

    name = "tensorrt"

    @property
    def outputs_reused(self) -> bool:
        """Always: the arrays :meth:`infer` returns are views of the host output buffers."""
        return True

    @property
    def runs_on_device(self) -> bool:
        """Always: the engine runs on the GPU and :meth:`enqueue` takes device buffers."""
        return True

    def __init__(self, model_path: Union[str, Path], *, engine_cache_dir: Optional[Union[str, Path]] = None,
                 precision: str = "fp16", dla_core: int = -1, gpu_fallback: bool = True,
                 workspace_mb: Optional[int] = None, allow_build: bool = True, min_batch: int = 1,
                 opt_batch: Optional[int] = None, max_batch: Optional[int] = None,
                 optimization_level: Optional[int] = None, calibration_sources: Sequence[str] = (),
                 calibration_every: int = 1, calibration_max_frames: Optional[int] = 500,
                 calibration_cache: Optional[Union[str, Path]] = None,
                 timing_cache: Optional[Union[str, Path]] = None,
                 model_config: Optional[Union[ModelConfig, str, Path]] = None,
                 cuda_graph: bool = False, device_id: int = 0,
                 layer_precision_file: Optional[Union[str, Path]] = None) -> None:
        super().__init__()
        self.model_path = Path(model_path).expanduser()
        max_batch = max(min_batch, opt_batch or 1) if max_batch is None else max_batch
        opt_batch = min_batch if opt_batch is None else opt_batch
        if isinstance(calibration_sources, str):
            raise BackendError(f"calibration_sources must be a list of paths, got the string {calibration_sources!r}")
        try:
            pinned = as_key(read_layer_precisions(layer_precision_file)) if layer_precision_file else ()
            self.options = BuildOptions(precision=precision, workspace_mb=workspace_mb, dla_core=dla_core,
                                        gpu_fallback=gpu_fallback, min_batch=min_batch, opt_batch=opt_batch,
                                        max_batch=max_batch, optimization_level=optimization_level,
                                        layer_precisions=pinned)
            self.calibration = CalibrationSettings(
                tuple(calibration_sources), calibration_every, calibration_max_frames,
                Path(calibration_cache) if calibration_cache is not None else None)
        except (BuildOptionsError, CalibrationError, LayerPrecisionError) as exc:
            raise BackendError(str(exc)) from exc
        problems = []
        for flag, value in (("allow_build", allow_build), ("cuda_graph", cuda_graph)):
            if not isinstance(value, bool):
                problems.append(f"{flag} must be true or false, got {value!r}")
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            problems.append(f"device_id must be an integer >= 0, got {device_id!r}")
        if model_config is not None and not isinstance(model_config, (ModelConfig, str, Path)):
            problems.append(f"model_config must be a ModelConfig or a YAML path, got {type(model_config).__name__}")
        if problems:
            raise BackendError("invalid TensorRT backend options: " + "; ".join(problems))
        self.is_engine_file = self.model_path.suffix.lower() in ENGINE_SUFFIXES
        self.cache = EngineCache(engine_cache_dir)
        self.allow_build = allow_build
        self.timing_cache = Path(timing_cache).expanduser() if timing_cache is not None else None
        self.model_config = model_config
        self.cuda_graph = cuda_graph
        self.device_id = device_id
        #: where the running engine came from: the engine file, or the cache entry (after activate)
        self.engine_path: Optional[Path] = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._device: Optional[CudaDevice] = None
        self._runtime: Optional[trt.Runtime] = None
        self._engine: Optional[trt.ICudaEngine] = None
        self._context: Optional[trt.IExecutionContext] = None
        self._stream: Any = None
        self._events: list[Any] = []
        self._tensors: dict[str, EngineTensor] = {}
        self._buffers: dict[str, HostDeviceBuffer] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._graphs: dict[tuple[tuple[int, ...], ...], CudaGraph] = {}
        self._timings: dict[str, float] = {}

    # -- activation -------------------------------------------------------------------------------

    def _activate_impl(self) -> None:
        trt_module = import_tensorrt()
        from trt_perception.core.cuda.device import CudaDevice
        if not self.model_path.is_file():
            raise BackendError(f"model file {self.model_path} does not exist")
        config = self._load_model_config()
        self._device = CudaDevice(self.device_id)
        try:
            with self._device.current():
                self._load(trt_module, config)
        except BaseException:
            self._free()
            raise

    def _load_model_config(self) -> Optional[ModelConfig]:
        if self.model_config is None or isinstance(self.model_config, ModelConfig):
            return self.model_config
        try:
            return load_model_config(self.model_config)
        except ModelConfigError as exc:
            raise BackendError(str(exc)) from exc

    def _load(self, trt_module: ModuleType, config: Optional[ModelConfig]) -> None:
        from trt_perception.core.cuda.device import HostDeviceBuffer
        from trt_perception.core.tensorrt import builder
        assert self._device is not None
        logger = builder.TrtLogger()
        self._runtime = trt_module.Runtime(logger)
        if self.options.uses_dla:
            self._runtime.DLA_core = self.options.dla_core
        self._engine = self._deserialize(builder, config, logger)
        tensors = engine_tensors(self._engine)
        try:
            check_engine_tensors(tensors)
            if config is not None:
                config.check_io(*io_specs(tensors))
        except (IOPlanError, ModelConfigError) as exc:
            raise BackendError(f"engine {self.engine_path}: {exc}") from exc
        self._tensors = {t.name: t for t in tensors}
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        for tensor in tensors:
            if tensor.is_input:
                self._set_input_shape(tensor.name, tensor.max_input_shape())
        output_shapes = {t.name: builder.dims(self._context.get_tensor_shape(t.name)) for t in tensors
                         if not t.is_input}
        self._shapes.update(output_shapes)
        try:
            plans = plan_buffers(tensors, output_shapes)
        except IOPlanError as exc:
            raise BackendError(str(exc)) from exc
        driver = self._device.driver
        self._stream = driver.Stream()
        self._events = [driver.Event() for _ in range(4)]
        for plan in plans:
            self._buffers[plan.name] = HostDeviceBuffer(driver, plan.shape, plan.dtype)
            self._set_address(plan.name, self._buffers[plan.name].device_ptr)
        LOG.info("TensorRT engine %s active on %s: %s", self.engine_path, self._device.identity().name,
                 ", ".join(f"{p.name} {p.dtype}{list(p.shape)}" for p in plans))

    def _deserialize(self, builder: ModuleType, config: Optional[ModelConfig],
                     logger: Any) -> trt.ICudaEngine:
        assert self._runtime is not None and self._device is not None
        if self.is_engine_file:
            self.engine_path = self.model_path
            engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
            if engine is None:
                raise BackendError(f"TensorRT could not load {self.model_path}: it was built by another TensorRT "
                                   f"version or for another GPU, or is damaged ({'; '.join(logger.errors[-3:])})")
            return engine
        gpu = self._device.identity()
        preprocess = config.preprocess if config is not None else None
        for attempt in range(2):
            try:
                entry, key, _ = builder.cached_engine(
                    self.cache, self.model_path, self.options, gpu, calibration=self.calibration,
                    preprocess=preprocess, timing_cache=self.timing_cache, allow_build=self.allow_build)
            except (EngineCacheError, CalibrationError, builder.EngineBuildError) as exc:
                raise BackendError(str(exc)) from exc
            self.engine_path = entry.path
            engine = self._runtime.deserialize_cuda_engine(entry.engine)
            if engine is not None:
                return engine
            # sidecar and hash matched, yet TensorRT refused it (e.g. a patch release with another
            # plan format): drop the entry and build once more
            LOG.warning("cached engine %s could not be deserialized; removing it", entry.path)
            self.cache.remove(key)
            if attempt or entry.built or not self.allow_build:
                break
        raise BackendError(f"TensorRT could not deserialize the engine for {self.model_path.name} "
                           f"({'; '.join(logger.errors[-3:]) or 'no details'})")

    # -- inference --------------------------------------------------------------------------------

    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        return io_specs(self._tensors.values(), self._shapes)[0]

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        return io_specs(self._tensors.values(), self._shapes)[1]

    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self._device is not None
        driver = self._device.driver
        with self._device.current():
            self._apply_input_shapes({name: array.shape for name, array in feeds.items()})
            self._events[0].record(self._stream)
            for name, array in feeds.items():
                buffer = self._buffers[name]
                host = buffer.host_view(array.shape)
                np.copyto(host, array)
                driver.memcpy_htod_async(buffer.device, host, self._stream)
            return self._run(use_graph=self.cuda_graph)

    def infer_device(self, inputs: Mapping[str, DeviceTensor]) -> dict[str, np.ndarray]:
        """Like :meth:`infer` for inputs already in GPU memory (no host copy of the inputs).

        Each input's device memory is read in place by the engine (its address is bound for this
        call only). Work on that memory must be complete, or enqueued on :attr:`cuda_stream`.
        Outputs are copied to the host as by :meth:`infer`. CUDA graphs are not used here.
        """
        self._require_active()
        assert self._device is not None and self._context is not None
        missing = sorted(set(self._input_specs_impl()) - set(inputs))
        unknown = sorted(set(inputs) - set(self._input_specs_impl()))
        if missing or unknown:
            raise BackendError(f"device inputs do not match the model inputs: missing {missing}, unknown {unknown}")
        for name, tensor in inputs.items():
            problem = tensor.check(self._tensors[name])
            if problem:
                raise BackendError(problem)
        with self._device.current():
            self._apply_input_shapes({name: t.shape for name, t in inputs.items()})
            try:
                for name, tensor in inputs.items():
                    self._set_address(name, tensor.ptr)
                self._events[0].record(self._stream)
                return self._run(use_graph=False)
            finally:
                for name in inputs:
                    self._set_address(name, self._buffers[name].device_ptr)

    def enqueue(self, input_ptr: int, output_ptrs: Mapping[str, int], stream: Any,
                batch: Optional[int] = None) -> None:
        """Enqueue one run of a single-input engine on device buffers, without waiting
        (:meth:`Backend.enqueue`, with the device current): the engine reads its input at
        ``input_ptr`` (the engine's dtype; its static shape, or for a dynamic input the optimization
        profile's opt shape; with ``batch``, that shape with ``batch`` rows, which the profile must
        allow) and writes output ``name`` to ``output_ptrs[name]``. ``stream`` must be
        :attr:`cuda_stream`. Raises BackendError for a batch outside the profile.
        """
        self._require_active()
        assert self._context is not None
        if stream is not self._stream:
            raise BackendError("the TensorRT backend enqueues on its own stream; give the pipeline "
                               "backend.cuda_stream as its inference stream")
        inputs = [name for name, tensor in self._tensors.items() if tensor.is_input]
        if len(inputs) != 1:
            raise BackendError(f"enqueue needs an engine with one input, this one has {inputs}")
        (input_name,) = inputs
        tensor = self._tensors[input_name]
        shape = tensor.profile[1] if tensor.is_dynamic and tensor.profile else tensor.shape
        if batch is not None:
            shape = (batch, *shape[1:])
        self._apply_input_shapes({input_name: shape})
        names = {input_name: input_ptr, **output_ptrs}
        try:
            for name, ptr in names.items():
                self._set_address(name, ptr)
            self._enqueue()
        finally:  # addresses are read at enqueue: infer() uses the backend's own buffers again
            for name in names:
                self._set_address(name, self._buffers[name].device_ptr)

    @property
    def cuda_stream(self) -> Any:
        """The pycuda ``Stream`` inference runs on (for GPU preprocessing to enqueue its work on)."""
        self._require_active()
        return self._stream

    def device_timings_ms(self) -> dict[str, float]:
        """GPU times of the last inference from CUDA events: ``h2d`` (input copies), ``compute``
        (the engine), ``d2h`` (output copies), in milliseconds; empty before the first one.
        """
        return dict(self._timings)

    def _run(self, use_graph: bool) -> dict[str, np.ndarray]:
        """Enqueue the engine (after the input copies), copy outputs back, wait; returns output views."""
        assert self._device is not None and self._context is not None
        driver = self._device.driver
        self._events[1].record(self._stream)
        graph = self._graph() if use_graph else None
        if graph is not None:
            graph.launch()
        else:
            self._enqueue()
        self._events[2].record(self._stream)
        outputs = {}
        for name, tensor in self._tensors.items():
            if tensor.is_input:
                continue
            shape = self._shapes.get(name) or tensor.shape
            host = self._buffers[name].host_view(shape)
            driver.memcpy_dtoh_async(host, self._buffers[name].device, self._stream)
            outputs[name] = host
        self._events[3].record(self._stream)
        self._stream.synchronize()
        first, copied, computed, done = self._events
        self._timings = {"h2d": float(copied.time_since(first)), "compute": float(computed.time_since(copied)),
                         "d2h": float(done.time_since(computed))}
        return outputs

    def _enqueue(self) -> None:
        assert self._context is not None
        if not self._context.execute_async_v3(int(self._stream.handle)):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _graph(self) -> Optional[CudaGraph]:
        """The CUDA graph for the current input shapes, captured on first use; None (and CUDA
        graphs off from then on, with a warning) when this engine's enqueue cannot be captured.
        """
        from trt_perception.core.cuda.device import CudaGraph
        key = tuple(self._shapes[name] for name, t in self._tensors.items() if t.is_input)
        graph = self._graphs.get(key)
        if graph is None:
            self._enqueue()  # TensorRT applies deferred shape updates outside the capture
            try:
                graph = CudaGraph(int(self._stream.handle), self._enqueue)
            except BackendError as exc:
                LOG.warning("CUDA graph capture failed, running without graphs: %s", exc)
                self.cuda_graph = False
                return None
            self._graphs[key] = graph
        return graph

    def _apply_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Give the context the shapes of this call; record every output's resulting shape."""
        assert self._context is not None
        changed = False
        for name, shape in shapes.items():
            shape = tuple(int(d) for d in shape)
            problem = self._tensors[name].check_input_shape(shape)
            if problem:
                raise BackendError(problem)
            if self._shapes.get(name) != shape:
                self._set_input_shape(name, shape)
                changed = True
        if changed:
            from trt_perception.core.tensorrt.builder import dims
            for name, tensor in self._tensors.items():
                if not tensor.is_input:
                    self._shapes[name] = dims(self._context.get_tensor_shape(name))

    def _set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        assert self._context is not None
        if self._tensors.get(name, None) is None or self._tensors[name].is_dynamic:
            if not self._context.set_input_shape(name, shape):
                raise BackendError(f"TensorRT rejected shape {list(shape)} for input {name!r}")
        self._shapes[name] = shape

    def _set_address(self, name: str, ptr: int) -> None:
        assert self._context is not None
        if not self._context.set_tensor_address(name, ptr):
            raise BackendError(f"TensorRT rejected the buffer address of tensor {name!r}")

    # -- cleanup ----------------------------------------------------------------------------------

    def _deactivate_impl(self) -> None:
        self._free()

    def _free(self) -> None:
        """Release every GPU resource, newest first (graphs, buffers, context, engine, runtime)."""
        device = self._device
        if device is not None:
            with device.current():
                for graph in self._graphs.values():
                    graph.destroy()
                for buffer in self._buffers.values():
                    buffer.free()
                self._graphs, self._buffers, self._events, self._stream = {}, {}, [], None
                self._context = None
                self._engine = None
                self._runtime = None
            device.release()
        self._reset_state()


def engine_tensors(engine: trt.ICudaEngine) -> list[EngineTensor]:
    """The engine's I/O tensors in engine order, with profile 0 shapes for dynamic inputs."""
    import tensorrt as trt_module

    from trt_perception.core.tensorrt.builder import dims
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt_module.TensorIOMode.INPUT
        shape = dims(engine.get_tensor_shape(name))
        profile = None
        if is_input and any(d < 0 for d in shape):
            low, opt, high = engine.get_tensor_profile_shape(name, 0)
            profile = (dims(low), dims(opt), dims(high))
        tensors.append(EngineTensor(
            name=name, is_input=is_input, dtype=numpy_dtype(engine.get_tensor_dtype(name).name, name),
            shape=shape, profile=profile,
            linear=engine.get_tensor_format(name) == trt_module.TensorFormat.LINEAR))
    return tensors

