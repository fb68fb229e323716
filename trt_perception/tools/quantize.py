"""``trt-perception quantize``: a model config's ONNX + calibration frames -> Q/DQ INT8 ONNX.

The output is explicitly quantized (see :mod:`trt_perception.core.quantize`): build it with
``trt-perception build-engine --onnx OUT --precision int8`` (no calibration on the car), or run
it with the ``onnxruntime`` backend. With ``--target-recall`` the most INT8-sensitive layer groups
stay in float (:mod:`trt_perception.tools.mixed_precision`). Exit status: 0 written, 1
quantization failed or the target not reached, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.core.model_config import ModelConfigError, load_model_config
from trt_perception.core.precision.sensitivity import SensitivityError
from trt_perception.core.quantize import DEFAULT_OP_TYPES, METHODS, WEIGHT_ROUNDINGS, QuantizeError, quantize_model
from trt_perception.core.tensorrt.calibration import CalibrationError, CalibrationSettings, preprocessed_frames
from trt_perception.tools.frame_arguments import add_config_argument, add_frame_arguments, frame_set
from trt_perception.tools.mixed_precision import add_mixed_arguments, check_mixed_arguments, run_mixed


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``quantize`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "quantize", help="quantize a model to a Q/DQ INT8 ONNX with ONNX Runtime",
        description="Calibrate a model on frames and write a Q/DQ (explicitly quantized) INT8 ONNX "
                    "that TensorRT builds without a calibrator and ONNX Runtime runs.")
    add_config_argument(parser)
    add_frame_arguments(parser, "calib", flag="--calib", prefix="calib-", max_frames=200, required=True,
                        help_text="calibration frames")
    parser.add_argument("--method", choices=METHODS, default="percentile",
                        help="range calibration (default percentile; see benchmarks/results/mixed_precision.md)")
    parser.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    parser.add_argument("--op-types", nargs="+", default=list(DEFAULT_OP_TYPES), metavar="OP",
                        help="node types whose inputs are quantized (default: %(default)s; without Add the "
                             "residual additions stay float)")
    parser.add_argument("--no-per-channel", dest="per_channel", action="store_false",
                        help="one weight scale per tensor instead of per output channel")
    parser.add_argument("--bias-correction", action="store_true",
                        help="subtract each INT8 convolution's mean output error over the calibration frames from "
                             "its bias (see benchmarks/results/int8_recipes.md)")
    parser.add_argument("--weight-rounding", nargs="?", const="float", default="nearest",
                        choices=WEIGHT_ROUNDINGS, metavar="MODE",
                        help="round each INT8 convolution's weights to minimize its output error on the calibration "
                             "frames instead of to the nearest step; MODE float (the default of the bare flag): on "
                             "the float model's inputs; asymmetric: its output from the inputs the quantized model "
                             "computes against the float output (see docs/tensorrt.md)")
    parser.add_argument("--centred-inputs", action="store_true",
                        help="convolutions reading a ReLU6 (any Clip with two bounds) read it shifted to the middle of "
                             "its range, the shift folded into their bias: symmetric INT8 uses all its codes there "
                             "(see docs/tensorrt.md)")
    parser.add_argument("--output", required=True, metavar="FILE", help="quantized ONNX to write")
    add_mixed_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception quantize`` with the parsed ``args``; returns the process exit status."""
    try:
        config = load_model_config(args.config)
        calib = frame_set(args, "calib")
        settings = CalibrationSettings(calib.sources, calib.every, calib.max_frames)
        sources = settings.open_sources()
        check_mixed_arguments(args)
    except (ModelConfigError, CalibrationError, FrameSourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = preprocessed_frames(sources, config.preprocess, settings.max_frames)
    if args.target_recall is not None:
        try:
            mixed = run_mixed(args, config, list(frames))
        except (QuantizeError, SensitivityError, CalibrationError, FrameSourceError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        selection, final = mixed["selection"], mixed["final"]
        detections = final.get("detections") or {}
        print(f"wrote {mixed['report'].output}: {len(selection.float_groups)} layer group(s) "
              f"({len(selection.float_nodes)} nodes) in float, {mixed['int8_convs']} of {mixed['convs']} convolutions "
              f"INT8; on the held-out frames recall {detections.get('recall', float('nan')):.4f}, precision "
              f"{detections.get('precision', float('nan')):.4f} vs FP32 (target "
              f"{'reached' if selection.reached else 'NOT reached'}); layer precisions: {mixed['layers_file']}")
        return 0 if selection.reached else 1
    try:
        report = quantize_model(config.model_path, Path(args.output), config.input_name, frames,
                                method=args.method, percentile=args.percentile, per_channel=args.per_channel,
                                op_types=args.op_types, bias_correction=args.bias_correction,
                                weight_rounding=args.weight_rounding, centred_inputs=args.centred_inputs)
    except (QuantizeError, FrameSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {report.output}: {report.method} calibration on {report.frames} frames, "
          f"{report.quantize_nodes} QuantizeLinear / {report.dequantize_nodes} DequantizeLinear nodes")
    return 0
