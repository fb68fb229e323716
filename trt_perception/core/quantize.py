"""INT8 the explicit way: an ONNX model + calibration frames -> a Q/DQ-quantized ONNX model.

Uses ONNX Runtime's static quantization (``quantize_static``, QDQ format) in the form TensorRT
consumes: INT8 weights (per output channel) and INT8 activations, both *symmetric* (zero point 0,
the only INT8 quantization TensorRT supports; ``activations="uint8"``: asymmetric UINT8
activations with a zero point, for ONNX Runtime only). The activation ranges come from calibration
frames preprocessed as at inference (:mod:`trt_perception.core.tensorrt.calibration`) with one of:

- ``percentile`` (default): the ``percentile``-th percentile of absolute values (clips rare outliers);
- ``entropy``: the range minimizing the KL divergence between the 2048-bin float histogram and its
  128-level quantization (TensorRT's IInt8EntropyCalibrator2 algorithm); clips harder;
- ``minmax``: the largest absolute value seen;
- ``mse``: per tensor, the clip value minimizing the mean squared quantization error over the
  histogram of absolute values (:mod:`trt_perception.core.mse_calibration`; NVIDIA's
  pytorch-quantization / ModelOpt ``mse`` method); symmetric INT8 only.

The methods compared on the SSDLite pedestrian model: ``benchmarks/results/mixed_precision.md``
(quantization scheme table); check a model's agreement before choosing.

Q/DQ pairs go on the *inputs* of ``op_types`` only (default: weighted layers and additions),
TensorRT's recommended placement; layer outputs are not quantized, so the network's outputs stay
float. ``nodes_to_exclude`` keeps named nodes in float (mixed precision, see
:mod:`trt_perception.core.precision.sensitivity`); ``nodes_to_quantize`` quantizes only those.
``ranges_cache`` keeps the calibrated activation ranges in a JSON file: when it exists the
frames are not read (sweeps quantize one model many ways from one calibration). The result runs
in ONNX Runtime (the ``onnxruntime`` backend) and builds an explicitly quantized TensorRT engine
(``precision int8``, no calibrator).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_bytes
from trt_perception.core.tensorrt.calibration import QDQ_OPS

METHODS = ("entropy", "percentile", "minmax", "mse")
#: activation quantization: ``int8`` symmetric (zero point 0; TensorRT's only INT8), or ``uint8``
#: asymmetric (a zero point per tensor; ONNX Runtime only, TensorRT rejects it)
ACTIVATIONS = ("int8", "uint8")
#: INT8 weight rounding: to the nearest step, to minimize each convolution's output error on float
#: inputs (``float``), or on the inputs the quantized network computes (``asymmetric``)
WEIGHT_ROUNDINGS = ("nearest", "float", "asymmetric")
#: how far (in steps) the asymmetric reconstruction may move a weight from its float value
ASYMMETRIC_REACH = 2
DEFAULT_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Add")
PathLike = Union[str, Path]


class QuantizeError(ValueError):
    """A model or settings that cannot be quantized, with the reason."""


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` did: frames used, Q/DQ nodes added, output file."""

    output: Path
    method: str
    frames: int
    quantize_nodes: int
    dequantize_nodes: int
    ranges_cached: bool = False


class _FrameReader:
    """ONNX Runtime ``CalibrationDataReader`` over input tensors (``get_next`` -> feed or None)."""

    def __init__(self, input_name: str, tensors: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._tensors: Iterator[np.ndarray] = iter(tensors)
        self.count = 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        tensor = next(self._tensors, None)
        if tensor is None:
            return None
        self.count += 1
        return {self.input_name: tensor}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (feed := self.get_next()) is not None:
            yield feed


def quantize_model(model_path: PathLike, output_path: PathLike, input_name: str,
                   tensors: Iterable[np.ndarray], method: str = "percentile", percentile: float = 99.999,
                   op_types: Sequence[str] = DEFAULT_OP_TYPES, per_channel: bool = True,
                   nodes_to_exclude: Sequence[str] = (), nodes_to_quantize: Optional[Sequence[str]] = None,
                   ranges_cache: Optional[Path] = None, activations: str = "int8",
                   bias_correction: bool = False, weight_rounding: Union[bool, str] = False,
                   centred_inputs: bool = False) -> QuantizeReport:
    """Write a Q/DQ INT8 copy of ``model_path`` to ``output_path``, calibrated on ``tensors``.

    tensors: the model input ``input_name`` for each calibration frame (e.g.
    :func:`~trt_perception.core.tensorrt.calibration.preprocessed_frames`); all are consumed,
    unless ``ranges_cache`` exists (the caller keys its name by model, frames and method).
    ``bias_correction``: subtract each INT8 convolution's mean output error over ``tensors`` from
    its bias (:mod:`trt_perception.core.bias_correction`; the frames are then read).
    ``weight_rounding`` (one of :data:`WEIGHT_ROUNDINGS`; True = ``float``, False = ``nearest``):
    ``float``: each INT8 convolution's weights rounded to minimize its output error on ``tensors``
    instead of to the nearest step (:mod:`trt_perception.core.weight_rounding`; kept next to
    ``ranges_cache`` as ``<name>.rounding.npz`` when that is given); ``asymmetric``: to minimize
    the error of its output computed from the inputs the quantized network computes against the
    float network's output, up to :data:`ASYMMETRIC_REACH` steps from the float weight. Those
    inputs are the *full* INT8 model's (every ``op_types`` node quantized, the upstream
    convolutions already so rounded; :func:`~trt_perception.core.weight_rounding.asymmetric_rounded_weights`), so
    one rounding (cached as ``<name>.rounding-asymmetric.npz``) serves every mixed variant of a
    calibration; in a mixed model a convolution behind float layers reads less perturbed inputs
    than it was rounded for.
    ``centred_inputs``: convolutions reading a bounded activation (ReLU6) read it shifted to the
    middle of its bounds, the shift folded into their bias, so symmetric INT8 uses all its codes
    (:mod:`trt_perception.core.centred_inputs`; the calibration then measures the shifted
    tensors: a ``ranges_cache`` must be keyed by this setting too).
    Raises :class:`QuantizeError` for bad settings, an already quantized model or no frames.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise QuantizeError(f"calibration method must be one of {METHODS}, got {method!r}")
    if activations not in ACTIVATIONS:
        raise QuantizeError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
    if method == "mse" and activations != "int8":
        raise QuantizeError("the mse calibration chooses symmetric ranges: use it with int8 activations")
    rounding = weight_rounding_mode(weight_rounding)
    if not 0.0 < percentile <= 100.0:
        raise QuantizeError(f"percentile must be in (0, 100], got {percentile}")
    model_path, output_path = Path(model_path), Path(output_path)
    model = onnx.load(str(model_path))
    if any(node.op_type in QDQ_OPS for node in model.graph.node):
        raise QuantizeError(f"{model_path.name} is already quantized (it has Q/DQ nodes)")
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if input_name not in inputs:
        raise QuantizeError(f"{model_path.name} has no input {input_name!r} (inputs: {inputs})")

    class Reader(_FrameReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    if bias_correction or rounding != "nearest":
        tensors = list(tensors)
    reader = Reader(input_name, tensors)
    # mse: the percentile calibrator's histograms of absolute values, thresholds chosen in _calibrate
    calibrate_method = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
                        "minmax": CalibrationMethod.MinMax, "mse": CalibrationMethod.Percentile}[method]
    # Histogram settings as TensorRT's entropy calibrator: 2048 bins searched for the best 128-bin
    # quantization (quantize_static cannot pass them: with its 128/128 default, entropy = minmax).
    symmetric = activations == "int8"
    calib_options: dict[str, Any] = {"symmetric": symmetric, "num_bins": 2048, "num_quantized_bins": 128,
                                     "percentile": percentile}
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                             "OpTypesToExcludeOutputQuantization": list(op_types)}
    with tempfile.TemporaryDirectory(prefix="trt_perception_quant.") as work:
        prepared = Path(work) / "prepared.onnx"
        quantized = Path(work) / "quantized.onnx"
        ranges = ranges_cache if ranges_cache is not None else Path(work) / "ranges.json"
        source = model_path
        if centred_inputs:
            from trt_perception.core.centred_inputs import centre_bounded_inputs
            centre_bounded_inputs(model)
            source = Path(work) / "centred.onnx"
            onnx.save(model, str(source))
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        cached = ranges_cache is not None and ranges_cache.is_file()
        if not cached:
            _calibrate(prepared, reader, op_types, calibrate_method, calib_options, Path(work), ranges,
                       mse=method == "mse")

        def qdq(path: Path, exclude: Sequence[str], only: Optional[Sequence[str]]) -> Any:
            quantize_static(str(prepared), str(path), None, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(op_types), per_channel=per_channel,
                            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_quantize=list(only) if only is not None else None,
                            nodes_to_exclude=list(exclude), calibrate_method=calibrate_method, extra_options=extra,
                            calibration_cache_path=ranges)
            return onnx.load(str(path))

        result = qdq(quantized, nodes_to_exclude, nodes_to_quantize)
        full = nodes_to_quantize is None and not nodes_to_exclude
        quantized_nodes = {node.name for node in model.graph.node if node.op_type in op_types
                           and node.name not in set(nodes_to_exclude)
                           and (nodes_to_quantize is None or node.name in set(nodes_to_quantize))}
        float_inputs_for_float_nodes(result.graph, quantized_nodes)
        if rounding != "nearest":
            full_int8 = (lambda: result) if full else (lambda: qdq(Path(work) / "full.onnx", (), None))
            _round_weights(result, prepared, input_name, tensors, ranges_cache,
                           full_int8 if rounding == "asymmetric" else None)
        if bias_correction:
            from trt_perception.core.bias_correction import apply_bias_corrections, conv_bias_errors
            apply_bias_corrections(result, conv_bias_errors(result, model, input_name, tensors))
        atomic_write_bytes(output_path, result.SerializeToString())
    ops = [node.op_type for node in result.graph.node]
    return QuantizeReport(output_path, method, reader.count, ops.count("QuantizeLinear"),
                          ops.count("DequantizeLinear"), ranges_cached=cached)


def weight_rounding_mode(weight_rounding: Union[bool, str]) -> str:
    """The :data:`WEIGHT_ROUNDINGS` entry ``weight_rounding`` names (True: ``float``, False:
    ``nearest``); :class:`QuantizeError` for anything else.
    """
    mode = ("float" if weight_rounding else "nearest") if isinstance(weight_rounding, bool) else weight_rounding
    if mode not in WEIGHT_ROUNDINGS:
        raise QuantizeError(f"weight rounding must be one of {WEIGHT_ROUNDINGS}, got {weight_rounding!r}")
    return mode


def float_inputs_for_float_nodes(graph: Any, quantized_nodes: set[str]) -> int:
    """Rewire every node outside ``quantized_nodes`` that reads a quantized activation
    (QuantizeLinear -> DequantizeLinear of a float tensor) to the float tensor itself; returns the
    inputs rewired. ONNX Runtime shares one Q/DQ pair among a tensor's consumers, so without this
    a node kept in float (excluded, or an op type not quantized) whose input also feeds a
    quantized node (e.g. a residual Add and the next block's convolution) would read the INT8
    value. ``graph``: an ``onnx.GraphProto``, changed in place.
    """
    q_input = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    float_of = {node.output[0]: q_input[node.input[0]] for node in graph.node
                if node.op_type == "DequantizeLinear" and node.input[0] in q_input}
    rewired = 0
    for node in graph.node:
        if node.op_type in QDQ_OPS or node.name in quantized_nodes:
            continue
        for i, name in enumerate(node.input):
            if name in float_of:
                node.input[i] = float_of[name]
                rewired += 1
    return rewired


def _round_weights(result: Any, prepared: Path, input_name: str, tensors: Iterable[np.ndarray],
                   ranges_cache: Optional[Path], full_int8: Optional[Callable[[], Any]] = None) -> None:
    """Apply the output-error-minimizing weight rounding to ``result`` (in place), the rounding
    computed on ``prepared``'s float activations or read from its cache beside ``ranges_cache``;
    ``full_int8`` (returns the full INT8 Q/DQ model, nearest rounding): the asymmetric
    reconstruction on that model's quantized inputs instead.
    """
    import onnx

    from trt_perception.core import weight_rounding as wr
    suffix = ".rounding.npz" if full_int8 is None else ".rounding-asymmetric.npz"
    cache = ranges_cache.with_name(ranges_cache.stem + suffix) if ranges_cache is not None else None
    if cache is not None and cache.is_file():
        rounded = wr.load_rounded(cache)
    else:
        float_model = onnx.load(str(prepared))
        rounded = wr.rounded_weights(float_model, input_name, tensors) if full_int8 is None \
            else wr.asymmetric_rounded_weights(float_model, full_int8(), input_name, tensors, reach=ASYMMETRIC_REACH)
        if cache is not None:
            wr.save_rounded(cache, rounded)
    wr.apply_weight_rounding(result, rounded)


def _calibrate(prepared: Path, reader: Any, op_types: Sequence[str], calibrate_method: Any,
               calib_options: dict[str, Any], work: Path, ranges: Path, mse: bool = False) -> None:
    """Collect activation ranges of ``prepared`` over ``reader``'s frames into ``ranges`` (JSON,
    written atomically by ONNX Runtime). ``mse``: ``calibrate_method`` is the percentile one
    (histograms of absolute values) and each range is its MSE-optimal clip value instead.
    """
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, create_calibrator, save_tensors_data
    calibrator = create_calibrator(prepared, list(op_types), augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=calibrate_method, extra_options=calib_options)
    try:
        calibrator.collect_data(reader)
    except ValueError as exc:  # ONNX Runtime's complaint about an empty reader
        if reader.count == 0:
            raise QuantizeError("no calibration frames: the sources yielded nothing") from exc
        raise
    if reader.count == 0:
        raise QuantizeError("no calibration frames: the sources yielded nothing")
    data = calibrator.compute_data()
    if mse:
        from trt_perception.core.mse_calibration import mse_ranges
        histograms = {name: (h[0], h[1]) for name, h in calibrator.collector.histogram_dict.items()}
        data = TensorsData(calibrate_method, {
            name: TensorData(lowest=np.array(-t, np.float32), highest=np.array(t, np.float32))
            for name, t in mse_ranges(histograms).items()})
    save_tensors_data(data, ranges)
