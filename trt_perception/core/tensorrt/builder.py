"""ONNX -> serialized TensorRT engine: the TensorRT build layer (imports ``tensorrt``).

Import this module only after :func:`trt_perception.core.backends.tensorrt.import_tensorrt`
succeeded. Works with TensorRT 10.x and 8.6 (the differences: 8.6 needs the EXPLICIT_BATCH
network flag, reports parse errors without node names, and has no strongly typed networks; the
precision flags used here work in both, deprecated but functional in 10.12+).

Precision (see :mod:`.options`): FP16 sets ``BuilderFlag.FP16``; INT8 sets ``INT8`` and ``FP16``
(layers without an INT8 kernel run in FP16); ``layer_precisions`` pins named layers to FP32/FP16
with ``OBEY_PRECISION_CONSTRAINTS`` (:mod:`trt_perception.core.tensorrt.layer_precision`).
A Q/DQ ONNX is explicitly quantized (TensorRT uses its scales); any other ONNX is calibrated with
:class:`EntropyCalibrator` (IInt8EntropyCalibrator2, the calibrator DLA requires) from
:class:`~.calibration.CalibrationSettings`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import tensorrt as trt

from trt_perception.core.cuda.device import HostDeviceBuffer, import_pycuda
from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.io.atomic_write import atomic_write_bytes
from trt_perception.core.preprocess import PreprocessConfig
from trt_perception.core.tensorrt.cache import CachedEngine, EngineCache, EngineKey
from trt_perception.core.tensorrt.calibration import (
    CalibrationBatches,
    CalibrationSettings,
    read_calibration_cache,
    with_calibration_id,
    write_calibration_cache,
)
from trt_perception.core.tensorrt.io_plan import numpy_dtype
from trt_perception.core.tensorrt.layer_precision import assign_layers
from trt_perception.core.tensorrt.options import BuildOptions
from trt_perception.core.tensorrt.profiles import ProfileShapes, batch_profile
from trt_perception.core.tensorrt.reports import (
    DlaReport,
    LayerPlacement,
    ParseProblem,
    describe_parse_errors,
    onnx_nodes,
)

LOG = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """TensorRT could not build an engine, with the reason (parse errors, unsupported settings)."""


@dataclass(frozen=True)
class BuildResult:
    """A built engine: the serialized plan, the DLA placement (DLA builds), whether the model
    was explicitly quantized (Q/DQ) or calibrated, the layers pinned to a precision and the
    requested nodes no layer was found for.
    """

    engine: bytes
    seconds: float
    dla_report: Optional[DlaReport] = None
    explicit_int8: bool = False
    calibrated: bool = False
    pinned_layers: tuple[str, ...] = ()
    unmatched_layers: tuple[str, ...] = ()


class TrtLogger(trt.ILogger):
    """TensorRT's log -> Python logging (logger ``trt_perception.core.tensorrt.builder``);
    keeps the last errors for error messages.
    """

    def __init__(self, min_severity: trt.ILogger.Severity = trt.ILogger.WARNING) -> None:
        trt.ILogger.__init__(self)
        self.min_severity = min_severity
        self.errors: list[str] = []

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        """TensorRT's logger callback: keep the last 10 errors, forward messages at or above ``min_severity`` to the
        log.
        """
        if severity <= trt.ILogger.ERROR:
            self.errors = (self.errors + [msg])[-10:]
        if severity > self.min_severity:
            return
        level = {trt.ILogger.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.ERROR: logging.ERROR,
                 trt.ILogger.WARNING: logging.WARNING, trt.ILogger.INFO: logging.INFO}.get(severity, logging.DEBUG)
        LOG.log(level, "TensorRT: %s", msg)


def dla_batch_limit() -> int:
    """The largest batch a DLA core of this device runs (TensorRT's ``IBuilder.max_DLA_batch_size``;
    the product of an engine's non-CHW dimensions may not exceed it).
    """
    return int(trt.Builder(TrtLogger()).max_DLA_batch_size)


def _progress_monitor() -> Optional[trt.IProgressMonitor]:
    """Build progress as tqdm bars, one per optimizer phase; None where TensorRT lacks
    ``IProgressMonitor`` (before 8.6).
    """
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class TqdmProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}
            self._lock = threading.Lock()  # TensorRT may report from several threads

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            with self._lock:
                position = len(self._bars)
                self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=position,
                                              leave=position == 0, dynamic_ncols=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    return TqdmProgress()


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Feeds :class:`CalibrationBatches` to TensorRT through one device buffer; reads and writes
    the calibration cache. Create it with the CUDA context current.
    """

    def __init__(self, input_name: str, batches: Optional[CalibrationBatches], batch_shape: tuple[int, ...],
                 dtype: np.dtype, cache: Optional[Path], progress: bool) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.input_name = input_name
        self.cache = cache
        self._batches: Optional[Iterator[np.ndarray]] = iter(batches) if batches is not None else None
        self._shape = batch_shape
        self._buffer = HostDeviceBuffer(import_pycuda(), batch_shape, dtype)
        self._driver = import_pycuda()
        self.batches_used = 0
        self.error: Optional[Exception] = None
        self._bar: Any = None
        if progress and batches is not None:
            from tqdm import tqdm
            self._bar = tqdm(total=batches.expected_batches, desc="calibration", unit="batch")

    def get_batch_size(self) -> int:
        """Always 1: explicit-batch networks carry the batch in the input shape."""
        return 1  # explicit-batch networks: the batch is part of the input shape

    def get_batch(self, names: list[str]) -> list[int]:
        """The device pointer of the next preprocessed calibration batch, or ``[]`` when done or on error (kept, raised
        after the build).
        """
        if self._batches is None:
            return []
        try:  # an exception must not escape into TensorRT: keep it, end calibration, raise later
            batch = next(self._batches, None)
        except Exception as exc:  # noqa: BLE001 - re-raised by build_engine
            self.error = exc
            return []
        if batch is None:
            return []
        np.copyto(self._buffer.host, batch)
        self._driver.memcpy_htod(self._buffer.device, self._buffer.host)
        self.batches_used += 1
        if self._bar is not None:
            self._bar.update(1)
        return [self._buffer.device_ptr for _ in names]

    def read_calibration_cache(self) -> Optional[bytes]:
        """The calibration cache's bytes if one is configured and readable, else None (TensorRT then calibrates)."""
        data = read_calibration_cache(self.cache)
        if data is not None:
            LOG.info("using calibration cache %s", self.cache)
        return data

    def write_calibration_cache(self, cache: memoryview) -> None:
        """Write TensorRT's calibration table to the configured cache file (atomically), if any."""
        if self.cache is not None:
            write_calibration_cache(self.cache, bytes(cache))
            LOG.info("wrote calibration cache %s", self.cache)

    def free(self) -> None:
        """Close the progress bar and free the device batch buffer."""
        if self._bar is not None:
            self._bar.close()
        self._buffer.free()


def dims(value: trt.Dims) -> tuple[int, ...]:
    """TensorRT dims as a tuple of ints (``-1`` = dynamic)."""
    return tuple(int(value[i]) for i in range(len(value)))


def _network_flags() -> int:
    """EXPLICIT_BATCH where it matters (TensorRT < 10; ignored, and deprecated, in 10)."""
    if int(trt.__version__.split(".")[0]) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def _parse(network: trt.INetworkDefinition, logger: TrtLogger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return
    problems = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        problems.append(ParseProblem(
            description=str(error.desc()),
            node_index=int(error.node()),
            node_name=str(error.node_name()) if hasattr(error, "node_name") else "",
            node_operator=str(error.node_operator()) if hasattr(error, "node_operator") else "",
            code=str(error.code()).rsplit(".", 1)[-1]))
    raise EngineBuildError(describe_parse_errors(onnx_path.name, problems, onnx_nodes(onnx_path)))


def _network_has_qdq(network: trt.INetworkDefinition) -> bool:
    qdq = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in qdq for i in range(network.num_layers))


def _dla_placement(network: trt.INetworkDefinition, config: trt.IBuilderConfig, dla_core: int) -> DlaReport:
    layers = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        device = "DLA" if config.can_run_on_DLA(layer) else "GPU"
        layers.append(LayerPlacement(layer.name, layer.type.name, device))
    return DlaReport(dla_core, layers)


def _pin_layers(network: trt.INetworkDefinition, config: trt.IBuilderConfig,
                layer_precisions: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Set the precision and float output types of the layers of the requested ONNX nodes and
    make TensorRT obey them; returns the pinned layer names and the nodes without a layer.
    """
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    assigned, missing = assign_layers(names, dict(layer_precisions))
    dtypes = {"fp32": trt.float32, "fp16": trt.float16}
    for index, precision in assigned.items():
        layer = network.get_layer(index)
        layer.precision = dtypes[precision]
        for output in range(layer.num_outputs):
            if layer.get_output(output).dtype in (trt.float32, trt.float16):  # int/bool outputs stay
                layer.set_output_type(output, dtypes[precision])
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if missing:
        LOG.warning("no TensorRT layer for %d pinned ONNX node(s): %s", len(missing), ", ".join(missing))
    return tuple(names[i] for i in sorted(assigned)), tuple(missing)


def build_engine(onnx_path: Path, options: BuildOptions, *,
                 calibration: Optional[CalibrationSettings] = None,
                 preprocess: Optional[PreprocessConfig] = None,
                 timing_cache: Optional[Path] = None, progress: bool = True,
                 logger: Optional[TrtLogger] = None) -> BuildResult:
    """Build a serialized engine from ``onnx_path`` with ``options`` (CUDA context current).

    ``calibration`` and ``preprocess`` (how frames become input tensors) are needed for a legacy
    INT8 build. ``timing_cache``: file read before and written after the build (faster rebuilds).
    Raises :class:`EngineBuildError` with every parse error, or the reason the build failed.
    """
    start = time.monotonic()
    logger = logger or TrtLogger()
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags())
    _parse(network, logger, onnx_path)
    config = builder.create_builder_config()
    if options.workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level

    explicit_int8 = _network_has_qdq(network)
    if explicit_int8 and options.precision != "int8":
        raise EngineBuildError(f"{onnx_path.name} holds Q/DQ (quantized) nodes: build it with precision int8")
    if options.precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            LOG.warning("this GPU has no fast FP16: the %s engine may be slow", options.precision)
        config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    pinned, unmatched = _pin_layers(network, config, options.layer_precisions) if options.layer_precisions else ((), ())

    inputs = {network.get_input(i).name: dims(network.get_input(i).shape) for i in range(network.num_inputs)}
    shapes = batch_profile(inputs, options)
    profile = None
    if shapes:
        profile = builder.create_optimization_profile()
        for shape in shapes:
            profile.set_shape(shape.name, trt.Dims(list(shape.min)), trt.Dims(list(shape.opt)),
                              trt.Dims(list(shape.max)))
        config.add_optimization_profile(profile)

    dla_report = None
    if options.uses_dla:
        if options.dla_core >= builder.num_DLA_cores:
            raise EngineBuildError(f"dla_core {options.dla_core} does not exist: this device has "
                                   f"{builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        dla_report = _dla_placement(network, config, options.dla_core)
        LOG.info("%s", dla_report.format())
        if dla_report.fallback and not options.gpu_fallback:
            raise EngineBuildError("layers cannot run on the DLA and GPU fallback is off:\n" + dla_report.format())

    calibrator = None
    if options.precision == "int8" and not explicit_int8:
        calibrator = _calibrator(network, shapes, calibration, preprocess, progress)
        config.int8_calibrator = calibrator
        if profile is not None:
            config.set_calibration_profile(profile)
    elif explicit_int8 and calibration is not None and calibration.sources:
        LOG.info("%s is explicitly quantized (Q/DQ): calibration frames are not used", onnx_path.name)

    if timing_cache is not None:
        previous = timing_cache.read_bytes() if timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(previous), ignore_mismatch=False)
    monitor = _progress_monitor() if progress else None
    if monitor is not None:
        config.progress_monitor = monitor  # must outlive the build: kept in this frame

    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if calibrator is not None and calibrator.error is not None:
        raise EngineBuildError(f"calibration failed: {calibrator.error}") from calibrator.error
    if serialized is None:
        detail = "\n".join(logger.errors[-5:]) or "see the TensorRT log"
        raise EngineBuildError(f"TensorRT failed to build {onnx_path.name} ({options.describe()}):\n{detail}")
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return BuildResult(bytes(serialized), round(time.monotonic() - start, 3), dla_report, explicit_int8,
                       calibrated=calibrator is not None and calibrator.batches_used > 0,
                       pinned_layers=pinned, unmatched_layers=unmatched)


def _calibrator(network: trt.INetworkDefinition, shapes: list[ProfileShapes],
                calibration: Optional[CalibrationSettings], preprocess: Optional[PreprocessConfig],
                progress: bool) -> EntropyCalibrator:
    """The legacy calibrator for the network's single image input (calibration at the profile's
    opt shape, which is what TensorRT calibrates with).
    """
    settings = calibration or CalibrationSettings()
    if network.num_inputs != 1:
        raise EngineBuildError(f"legacy INT8 calibration supports one network input, this one has {network.num_inputs}")
    tensor = network.get_input(0)
    shape = next((s.opt for s in shapes if s.name == tensor.name), dims(tensor.shape))
    dtype = numpy_dtype(tensor.dtype.name, tensor.name)
    batches = None
    if settings.sources:
        if preprocess is None:
            raise EngineBuildError("calibration frames need the model config's preprocess settings")
        if tuple(preprocess.input_shape[1:]) != tuple(shape[1:]):
            raise EngineBuildError(f"preprocess makes {list(preprocess.input_shape)} but the network input "
                                   f"{tensor.name!r} is {list(shape)}")
        batches = settings.batches(preprocess, int(shape[0]))
    elif read_calibration_cache(settings.cache) is None:
        raise EngineBuildError("INT8 without Q/DQ nodes needs calibration frames or an existing calibration cache")
    return EntropyCalibrator(tensor.name, batches, tuple(int(d) for d in shape), dtype, settings.cache, progress)


def cached_engine(cache: EngineCache, model_path: Path, options: BuildOptions, gpu: GpuIdentity, *,
                  calibration: Optional[CalibrationSettings] = None,
                  preprocess: Optional[PreprocessConfig] = None, timing_cache: Optional[Path] = None,
                  allow_build: bool = True, progress: bool = True, force: bool = False
                  ) -> tuple[CachedEngine, EngineKey, Optional[BuildResult]]:
    """The engine of ``model_path`` for this TensorRT, ``gpu`` and ``options``, from ``cache`` or
    built (under the cache's build lock) and stored; ``force`` drops a cached one first.

    Returns the entry, its key and the :class:`BuildResult` when this call built it. A legacy
    INT8 build that calibrated from frames and wrote a calibration cache is stored a second time
    under the key of that cache, so a later start with only the cache finds it.
    """
    options = with_calibration_id(model_path, options, calibration)
    key = EngineKey.for_model(model_path, trt.__version__, gpu, options)
    if force:
        cache.remove(key)
    results: list[BuildResult] = []

    def build() -> bytes:
        result = build_engine(model_path, options, calibration=calibration, preprocess=preprocess,
                              timing_cache=timing_cache, progress=progress)
        LOG.info("built %s (%s) in %.1f s", model_path.name, options.describe(), result.seconds)
        if result.dla_report is not None:
            LOG.info("%s", result.dla_report.format())
        results.append(result)
        return result.engine

    entry = cache.get_or_build(key, build, allow_build,
                               on_miss=lambda reason: LOG.info("building the engine for %s (%s): cache %s",
                                                               model_path.name, options.describe(), reason))
    if entry.built and options.calibration_id.startswith("frames:") and calibration is not None \
            and read_calibration_cache(calibration.cache) is not None:
        cache_key = EngineKey.for_model(model_path, trt.__version__, gpu,
                                        with_calibration_id(model_path, options, calibration))
        with cache.build_lock(cache_key):
            cache.store(cache_key, entry.engine)
    return entry, key, (results[0] if results else None)
