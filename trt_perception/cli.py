"""The ``trt-perception`` command: one sub-command per module in :mod:`trt_perception.tools`.

Each tool module provides ``add_parser(subparsers)`` (registering its sub-command with
``set_defaults(func=run)``) and ``run(args) -> int``. Only the module of the command being run is
imported (the tools import numpy, scipy, ONNX Runtime...: importing all of them made ``--help`` take
over a second); the others are listed with their one-line help from :data:`TOOLS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Sub-command: (module in trt_perception.tools, its one-line help), in the order ``--help`` lists them.
TOOLS = {
    "detect": ("detect", "run an SSD detector over a video, image folder or image and write JSON"),
    "decode-pose": ("decode_pose", "decode saved trt_pose cmap/paf arrays into skeletons (JSON)"),
    "export-trt-pose": ("export_trt_pose", "export a trt_pose checkpoint to ONNX with a model config"),
    "build-engine": ("build_engine", "build a TensorRT engine into the engine cache"),
    "quantize": ("quantize", "quantize a model to a Q/DQ INT8 ONNX with ONNX Runtime"),
    "dynamic-batch": ("dynamic_batch", "make the batch dimension of an ONNX model dynamic"),
    "validate": ("validate", "compare a TensorRT engine or reduced-precision ONNX with the FP32 model"),
    "fp16-check": ("fp16_check", "find tensors that overflow FP16 and the layers to keep in FP32"),
    "benchmark": ("benchmark", "measure pipeline latency and throughput of a model on a backend"),
    "make-bag": ("make_bag", "write a video, image folder or image into a rosbag2 image bag"),
    "run": ("run", "start the perception nodes in this process (what perception.launch.py starts)"),
    "replay": ("replay", "replay a bag's images into the running nodes, record and report their outputs"),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser, with the full sub-parser of ``command`` (its tool module imported; all of them when
    None) and a one-line entry for each other command.
    """
    parser = argparse.ArgumentParser(prog="trt-perception", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, summary) in TOOLS.items():
        if command is None or name == command:
            importlib.import_module(f"trt_perception.tools.{module}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``trt-perception`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command if command in TOOLS else "").parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
