"""``trt-perception build-engine``: ONNX -> TensorRT engine in the engine cache (on the vehicle).

Builds (or finds) the engine the ``tensorrt`` backend will load for the same model and options,
so a node starts without building. ``--output`` also writes the plan to a file; ``--list``
shows the cache. ``--layer-precision FILE`` pins layers to FP32/FP16; ``--fp16-check FRAMES``
finds the layers whose activations overflow FP16 and pins them to FP32; ``--validate FRAMES``
compares the engine with the FP32 ONNX right after the build (``trt-perception validate``).
Exit status: 0 built or found (and valid), 1 build or validation failed, 2 bad arguments or no
TensorRT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from trt_perception.core.backends.base import BackendError
from trt_perception.core.io.atomic_write import atomic_write_bytes, atomic_write_text
from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.precision.fp16_range import DEFAULT_NEAR_FRACTION
from trt_perception.core.precision.result_cache import default_precision_cache_dir
from trt_perception.core.tensorrt.cache import EngineCache, EngineCacheError, default_cache_dir
from trt_perception.core.tensorrt.calibration import CalibrationError, CalibrationSettings
from trt_perception.core.tensorrt.layer_precision import LayerPrecisionError, as_key, read_layer_precisions
from trt_perception.core.tensorrt.options import PRECISIONS, BuildOptions, BuildOptionsError
from trt_perception.tools.fp16_check import fp16_check
from trt_perception.tools.frame_arguments import add_frame_arguments
from trt_perception.tools.validate import add_validation_arguments, run_validation


def add_tensorrt_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine options shared by build-engine and benchmark (see :func:`tensorrt_options`)."""
    group = parser.add_argument_group("TensorRT engine")
    group.add_argument("--precision", choices=PRECISIONS, default="fp16", help="layer precision (default fp16)")
    group.add_argument("--dla-core", type=int, default=-1, metavar="N", help="DLA core, -1 = GPU (default)")
    group.add_argument("--no-gpu-fallback", dest="gpu_fallback", action="store_false",
                       help="with --dla-core: fail instead of running DLA-less layers on the GPU")
    group.add_argument("--workspace-mb", type=int, metavar="MIB", help="builder scratch memory limit")
    group.add_argument("--min-batch", type=int, default=1, metavar="N")
    group.add_argument("--opt-batch", type=int, metavar="N", help="default: --min-batch")
    group.add_argument("--max-batch", type=int, metavar="N", help="default: --opt-batch")
    group.add_argument("--optimization-level", type=int, metavar="0-5", help="builder optimization level")
    add_frame_arguments(group, "calib", flag="--calib", prefix="calib-", max_frames=500,
                        help_text="INT8 calibration frames")
    group.add_argument("--calib-cache", metavar="FILE", help="TensorRT calibration cache (read, else written)")
    group.add_argument("--timing-cache", metavar="FILE", help="builder timing cache (read and updated)")
    group.add_argument("--layer-precision", metavar="FILE",
                       help="layer precision file: ONNX nodes pinned to fp32/fp16 "
                            "(fp16-check, quantize --target-recall)")
    group.add_argument("--cache-dir", metavar="DIR", help=f"engine cache (default {default_cache_dir()})")
    group.add_argument("--device-id", type=int, default=0, metavar="N", help="CUDA device (default 0)")


def tensorrt_options(args: argparse.Namespace) -> dict[str, Any]:
    """TensorRTBackend keyword arguments from :func:`add_tensorrt_arguments`' flags."""
    return {
        "precision": args.precision, "dla_core": args.dla_core, "gpu_fallback": args.gpu_fallback,
        "workspace_mb": args.workspace_mb, "min_batch": args.min_batch, "opt_batch": args.opt_batch,
        "max_batch": args.max_batch, "optimization_level": args.optimization_level,
        "calibration_sources": list(args.calib), "calibration_every": args.calib_every,
        "calibration_max_frames": args.calib_max_frames, "calibration_cache": args.calib_cache,
        "timing_cache": args.timing_cache, "engine_cache_dir": args.cache_dir, "device_id": args.device_id,
        "layer_precision_file": args.layer_precision,
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``build-engine`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "build-engine", help="build a TensorRT engine into the engine cache",
        description="Build the TensorRT engine of a model (FP32/FP16/INT8, optional DLA) into the engine "
                    "cache, where the tensorrt backend finds it, or report that it is already there.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="model config YAML (its ONNX, and preprocessing for calibration)")
    source.add_argument("--onnx", help="an ONNX file (no calibration frames without --config)")
    source.add_argument("--list", action="store_true", help="list the engines in the cache and exit")
    add_tensorrt_arguments(parser)
    parser.add_argument("--output", metavar="FILE", help="also write the serialized engine to FILE")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has the engine")
    parser.add_argument("--json", metavar="FILE", help="write a build report (key, engine, DLA placement)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--fp16-check", action="append", default=[], metavar="SOURCE",
                        help="frames (sampled as --calib-every/--calib-max-frames) to find FP16 overflows on; "
                             "their layers are built in FP32 (needs --config)")
    add_validation_arguments(parser, "--validate", prefix="validate-")
    parser.set_defaults(func=run)


def _list(cache: EngineCache) -> int:
    entries = cache.entries()
    print(f"{len(entries)} engine(s) in {cache.directory}")
    for entry in entries:
        key = entry.get("key", {})
        options = key.get("options", {})
        print(f"  {entry['file']}: TensorRT {key.get('tensorrt_version')}, {key.get('gpu_name')} "
              f"sm{key.get('compute_capability')}, {options.get('precision')}, "
              f"{entry.get('engine_bytes', 0) / 1e6:.1f} MB, {entry.get('created')}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception build-engine`` with the parsed ``args``; returns the process exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cache = EngineCache(args.cache_dir)
    if args.list:
        return _list(cache)
    try:
        options = tensorrt_options(args)
        opt_batch = options["opt_batch"] or options["min_batch"]
        build_options = BuildOptions(
            precision=options["precision"], workspace_mb=options["workspace_mb"], dla_core=options["dla_core"],
            gpu_fallback=options["gpu_fallback"], min_batch=options["min_batch"], opt_batch=opt_batch,
            max_batch=options["max_batch"] or opt_batch, optimization_level=options["optimization_level"])
        calibration = CalibrationSettings(tuple(args.calib), args.calib_every, args.calib_max_frames,
                                          Path(args.calib_cache) if args.calib_cache else None)
        config: Optional[ModelConfig] = load_model_config(args.config) if args.config else None
        model = config.model_path if config is not None else Path(args.onnx).expanduser()
        if not model.is_file():
            raise ValueError(f"model file {model} does not exist")
        framed = [flag for flag, used in (("--calib", args.calib), ("--fp16-check", args.fp16_check),
                                          ("--validate", args.validate)) if used]
        if framed and config is None:
            raise ValueError(f"{' and '.join(framed)} needs --config (its preprocess section turns frames into "
                             "input tensors)")
        pinned = read_layer_precisions(args.layer_precision) if args.layer_precision else {}
        if args.fp16_check and config is not None:
            if build_options.precision == "fp32":
                raise ValueError("--fp16-check is for fp16/int8 builds: an fp32 engine cannot overflow FP16")
            ranges = fp16_check(config, args.fp16_check, args.calib_every, args.calib_max_frames,
                                DEFAULT_NEAR_FRACTION, str(default_precision_cache_dir()), args.quiet)
            print(ranges.format())
            for name, reason in ranges.fp32_layers().items():
                print(f"  kept in FP32: {name}: {reason}")
                pinned[name] = "fp32"
        build_options = dataclasses.replace(build_options, layer_precisions=as_key(pinned))
        if args.device_id < 0:
            raise ValueError(f"--device-id must be >= 0, got {args.device_id}")
    except (BuildOptionsError, CalibrationError, ModelConfigError, FrameSourceError, LayerPrecisionError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        from trt_perception.core.backends.tensorrt import import_tensorrt
        trt = import_tensorrt()
        from trt_perception.core.cuda.device import CudaDevice
        from trt_perception.core.tensorrt import builder
        device = CudaDevice(args.device_id)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with device.current():
            entry, key, result = builder.cached_engine(
                cache, model, build_options, device.identity(), calibration=calibration,
                preprocess=config.preprocess if config is not None else None,
                timing_cache=Path(args.timing_cache) if args.timing_cache else None,
                progress=not args.quiet, force=args.force)
    except (builder.EngineBuildError, EngineCacheError, CalibrationError, BackendError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        device.release()
    print(f"{'built' if entry.built else 'found in the cache'}: {entry.path} "
          f"({len(entry.engine) / 1e6:.1f} MB; TensorRT {trt.__version__}, "
          f"{key.gpu.name} sm{key.gpu.compute_capability}, "
          f"{key.options.describe()})")
    if result is not None:
        print(f"build took {result.seconds:.1f} s" + (", explicitly quantized (Q/DQ)" if result.explicit_int8 else "")
              + (", calibrated" if result.calibrated else ""))
        if result.dla_report is not None:
            print(result.dla_report.format())
        if result.pinned_layers:
            print(f"{len(result.pinned_layers)} layer(s) pinned: {', '.join(result.pinned_layers)}")
        if result.unmatched_layers:
            print(f"no layer found for pinned node(s): {', '.join(result.unmatched_layers)}")
    if args.output:
        atomic_write_bytes(Path(args.output), entry.engine)
        print(f"wrote {args.output}")
    if args.json:
        report = {"engine": str(entry.path), "built": entry.built, "key": key.fields(), "key_digest": key.digest,
                  "engine_bytes": len(entry.engine),
                  "build_seconds": result.seconds if result is not None else None,
                  "dla": result.dla_report.to_dict() if result is not None and result.dla_report else None}
        atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    if args.validate and config is not None:
        engine_file = Path(args.output) if args.output else entry.path
        return run_validation(config, engine_file, args, device_id=args.device_id)
    return 0
