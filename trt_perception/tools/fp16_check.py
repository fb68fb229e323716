"""``trt-perception fp16-check``: which tensors of a model overflow FP16 (or come close), and the
layers that must stay FP32 for them.

Runs the config's FP32 ONNX in ONNX Runtime with every intermediate tensor exposed
(:mod:`trt_perception.core.precision.fp16_range`; results cached). ``--write-layers FILE``
writes those layers as a layer precision file for ``build-engine --layer-precision FILE`` and
the ``tensorrt`` backend's ``layer_precision_file`` (``build-engine --fp16-check`` does both in
one go). Exit status: 0 every tensor fits, 1 some tensor overflows or is near the limit, 2 bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.precision.fp16_range import DEFAULT_NEAR_FRACTION, Fp16RangeReport, measure_ranges
from trt_perception.core.precision.model_frames import read_frames
from trt_perception.core.precision.result_cache import ResultCache
from trt_perception.core.tensorrt.calibration import CalibrationError
from trt_perception.core.tensorrt.layer_precision import write_layer_precisions
from trt_perception.tools.frame_arguments import (
    add_cache_dir_argument,
    add_config_argument,
    add_frame_arguments,
    frame_set,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``fp16-check`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "fp16-check", help="find tensors that overflow FP16 and the layers to keep in FP32",
        description="Run the FP32 model on frames with every intermediate tensor exposed and report the "
                    "tensors whose range exceeds FP16 (65504) or comes close, with the layers producing them.")
    add_config_argument(parser)
    add_frame_arguments(parser, "frames", flag="--frames", prefix="", max_frames=100, required=True,
                        help_text="frames to measure ranges on (calibration frames suit)")
    parser.add_argument("--near", type=float, default=DEFAULT_NEAR_FRACTION, metavar="F",
                        help=f"flag tensors above F x 65504 too (default {DEFAULT_NEAR_FRACTION})")
    parser.add_argument("--write-layers", metavar="FILE", help="write the FP32 layers as a layer precision file")
    parser.add_argument("--json", metavar="FILE", help="write the full report (every tensor's range) as JSON")
    add_cache_dir_argument(parser, "measured ranges")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def fp16_check(config: ModelConfig, sources: Sequence[str], every: int, max_frames: Optional[int],
               near: float, cache_dir: Optional[str], quiet: bool) -> Fp16RangeReport:
    """The range report of ``config``'s model on the frames (raises CalibrationError /
    FrameSourceError for unreadable frames).
    """
    if not 0 < near <= 1:
        raise CalibrationError(f"--near must be in (0, 1], got {near}")
    tensors, _ = read_frames(config, sources, every, max_frames)
    report = measure_ranges(config.model_path, config.input_name, tensors,
                            cache=ResultCache(cache_dir) if cache_dir else None,
                            progress=lambda items: tqdm(items, desc="fp16 check", unit="frame",
                                                        disable=True if quiet else None))
    return Fp16RangeReport(report.ranges, report.consumers, report.frames, near)


def write_fp32_layers(report: Fp16RangeReport, model: Path, path: Path) -> dict[str, str]:
    """Write the report's FP32 layers as a layer precision file; returns node -> reason."""
    layers = report.fp32_layers()
    write_layer_precisions(path, model.name, dict.fromkeys(layers, "fp32"), layers)
    return layers


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception fp16-check`` with the parsed ``args``; returns the process exit status."""
    try:
        config = load_model_config(args.config)
        frames = frame_set(args, "frames")
        report = fp16_check(config, frames.sources, frames.every, frames.max_frames, args.near, args.cache_dir,
                            args.quiet)
    except (ModelConfigError, CalibrationError, FrameSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    layers = report.fp32_layers()
    if layers:
        print(f"layers to keep in FP32 ({len(layers)}):")
        for name, reason in layers.items():
            print(f"  {name}: {reason}")
    if args.write_layers:
        write_fp32_layers(report, config.model_path, Path(args.write_layers))
        print(f"wrote {args.write_layers}")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(report.to_dict(), indent=1) + "\n")
    return 1 if layers else 0
