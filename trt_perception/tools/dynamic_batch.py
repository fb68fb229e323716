"""``trt-perception dynamic-batch``: an ONNX image model with its batch baked in -> the same model
with a dynamic batch dimension (see :mod:`trt_perception.core.dynamic_batch`), checked with ONNX
Runtime: each image of a batch must give its batch-1 outputs. Exit status: 0 written and checked,
1 the model cannot be edited or the check failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trt_perception.core.dynamic_batch import DynamicBatchError, check_batch_outputs, convert_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``dynamic-batch`` subcommand on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "dynamic-batch", help="make the batch dimension of an ONNX model dynamic",
        description="Rewrite an ONNX image model (e.g. a tf2onnx SSD export) whose Reshape shapes "
                    "fix the batch to 1 so it takes any batch size, then check with ONNX Runtime "
                    "that each image of a batch gives its batch-1 outputs.")
    parser.add_argument("--input", required=True, metavar="ONNX", help="model with a fixed batch")
    parser.add_argument("--output", required=True, metavar="ONNX", help="model to write")
    parser.add_argument("--check-batch", type=int, default=4, metavar="N",
                        help="batch size of the check on random inputs (default 4)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest absolute difference the check accepts (default 1e-5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception dynamic-batch`` with the parsed ``args``; returns the process exit status."""
    if args.check_batch < 2:
        print(f"error: --check-batch must be >= 2, got {args.check_batch}", file=sys.stderr)
        return 2
    try:
        report = convert_file(Path(args.input), Path(args.output))
        difference = check_batch_outputs(Path(args.output), args.check_batch)
    except (DynamicBatchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: input {report.input_name!r} batch {report.static_batch} -> dynamic, "
          f"{len(report.reshapes)} Reshape shapes now copy the batch, outputs {list(report.outputs)}")
    verdict = "ok" if difference <= args.tolerance else "FAILED"
    print(f"check: batch of {args.check_batch} vs one image at a time, max |difference| "
          f"{difference:.2e} (tolerance {args.tolerance:g}): {verdict}")
    return 0 if difference <= args.tolerance else 1
