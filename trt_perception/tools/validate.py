"""``trt-perception validate``: check a converted model (TensorRT engine, FP16 / INT8 ONNX)
against the FP32 ONNX on the same frames.

Prints a table of per-output errors and the detection agreement, and the verdict against the
tolerances given; ``--json`` writes the same. Exit status: 0 passed, 1 failed (CI-friendly),
2 bad arguments, unreadable frames or a candidate that cannot be run here (an engine without
TensorRT).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from trt_perception.core.backends.base import BackendError
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.core.model_config import ModelConfig, ModelConfigError, load_model_config
from trt_perception.core.precision.compare import CompareError, Tolerances, format_summary
from trt_perception.core.precision.model_frames import read_frames
from trt_perception.core.precision.validation import ValidationError, ValidationResult, validate
from trt_perception.core.tensorrt.calibration import CalibrationError
from trt_perception.tools.frame_arguments import add_config_argument, add_frame_arguments, frame_set


def add_validation_arguments(parser: argparse.ArgumentParser, flag: str, prefix: str = "",
                             required: bool = False) -> None:
    """The frames (``flag`` SOURCE, ``--{prefix}every``, ``--{prefix}max-frames``: frame set
    ``validate``) and tolerance flags, shared by ``validate`` and ``build-engine --validate``.
    """
    group = parser.add_argument_group("validation against the FP32 ONNX (ONNX Runtime)")
    add_frame_arguments(group, "validate", flag=flag, prefix=prefix, max_frames=50, required=required,
                        help_text="frames to compare the candidate with the FP32 ONNX on")
    defaults = Tolerances()
    for name, help_text in (("max-abs", "largest absolute error of any output"),
                            ("mean-abs", "mean absolute error of each output"),
                            ("max-rel", "largest relative error of any output"),
                            ("mean-rel", "mean relative error of each output")):
        group.add_argument(f"--{name}", type=float, metavar="X", help=f"{help_text} (default: not checked)")
    group.add_argument("--min-recall", type=float, default=defaults.min_recall, metavar="R",
                       help=f"share of FP32 detections the candidate finds (default {defaults.min_recall})")
    group.add_argument("--min-precision", type=float, default=defaults.min_precision, metavar="P",
                       help=f"share of the candidate's detections FP32 finds (default {defaults.min_precision})")
    group.add_argument("--min-mean-iou", type=float, metavar="IOU",
                       help="mean IoU of matched boxes (default: not checked)")
    group.add_argument("--iou", type=float, default=0.5, help="IoU that makes two detections a match (default 0.5)")
    group.add_argument("--jitter", type=float, metavar="EPS",
                       help="also run the candidate on the frames plus uniform noise of +-EPS (model input units; "
                            "e.g. 1e-5, far below one pixel level) and pass only when every such draw is within the "
                            "tolerances too: is the verdict stable? (default: no jittered draws)")
    group.add_argument("--draws", type=int, metavar="K",
                       help=f"jittered draws with --jitter (default {DEFAULT_DRAWS}; draw k uses seed k)")


#: jittered draws of ``--jitter`` when ``--draws`` is not given
DEFAULT_DRAWS = 5


def jitter_from(args: argparse.Namespace) -> tuple[float, int]:
    """``(jitter, draws)`` of the ``--jitter``/``--draws`` options: (0, 0) without ``--jitter``;
    the checks (both or neither, positive values) are :func:`~trt_perception.core.precision.validation.validate`'s.
    """
    jitter = args.jitter if args.jitter is not None else 0.0
    draws = args.draws if args.draws is not None else (DEFAULT_DRAWS if args.jitter is not None else 0)
    return jitter, draws


def format_jittered(result: ValidationResult) -> str:
    """One line: the spread of recall, precision and output error over the jittered draws."""
    def spread(values: list[float]) -> str:
        return f"{min(values):.4f}-{max(values):.4f}"

    draws = result.jittered
    line = f"jittered draws (+-{result.jitter:g}, {len(draws)}): output error " \
        + spread([d["output_error"] for d in draws])
    if all(d.get("detections") for d in draws):
        line += f", recall {spread([d['detections']['recall'] for d in draws])}, precision " \
            + spread([d["detections"]["precision"] for d in draws])
    return line


def tolerances_from(args: argparse.Namespace) -> Tolerances:
    """The :class:`Tolerances` given by the validation options in ``args`` (see :func:`add_validation_arguments`)."""
    return Tolerances(max_abs=args.max_abs, mean_abs=args.mean_abs, max_rel=args.max_rel, mean_rel=args.mean_rel,
                      min_recall=args.min_recall, min_precision=args.min_precision, min_mean_iou=args.min_mean_iou)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``validate`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "validate", help="compare a TensorRT engine or reduced-precision ONNX with the FP32 model",
        description="Run the FP32 ONNX (ONNX Runtime) and a candidate on the same preprocessed frames; report "
                    "per-output errors and detection agreement; fail (exit 1) outside the tolerances.")
    add_config_argument(parser, "model config YAML (the FP32 ONNX, preprocessing, decoder)")
    parser.add_argument("--candidate", required=True, metavar="ENGINE|ONNX",
                        help="TensorRT engine (.engine/.plan/.trt) or ONNX model to check")
    add_validation_arguments(parser, "--frames", required=True)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--device-id", type=int, default=0, metavar="N", help="CUDA device of an engine")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run_validation(config: ModelConfig, candidate: Path, args: argparse.Namespace,
                   json_path: Optional[str] = None, device_id: int = 0) -> int:
    """Validate on the frame set ``validate`` of ``args``, print the report, write ``json_path``;
    the exit status (0 pass, 1 fail, 2 error).
    """
    frames = frame_set(args, "validate")
    try:
        tensors, geometries = read_frames(config, frames.sources, frames.every, frames.max_frames)
        jitter, draws = jitter_from(args)
        result: ValidationResult = validate(
            config, candidate, tensors, geometries, tolerances_from(args), threads=getattr(args, "threads", 1),
            iou_threshold=args.iou, device_id=device_id, jitter=jitter, draws=draws,
            progress=lambda items: tqdm(items, desc="validate", unit="frame", disable=True if args.quiet else None))
    except (CalibrationError, FrameSourceError, ValidationError, BackendError, ModelConfigError, CompareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"reference {result.reference} (ONNX Runtime) vs candidate {result.candidate} ({result.candidate_backend}), "
          f"{result.summary['frames']} frames")
    print(format_summary(result.summary))
    if result.jittered:
        print(format_jittered(result))
    print("PASS" if result.passed else "FAIL: " + "; ".join(result.failures))
    if json_path:
        atomic_write_text(Path(json_path), json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.passed else 1


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception validate`` with the parsed ``args``; returns the exit status (1: outside the tolerances)."""
    try:
        config = load_model_config(args.config)
    except ModelConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_validation(config, Path(args.candidate).expanduser(), args, args.json, args.device_id)
