"""The ``trt-perception`` command: one sub-command per module in :mod:`trt_perception.tools`.

Each tool module provides ``add_parser(subparsers)`` (registering its sub-command with
``set_defaults(func=run)``) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Sub-command modules, in the order ``--help`` lists them.
TOOLS = [
    "detect",
    "decode_pose",
    "export_trt_pose",
    "build_engine",
    "quantize",
    "dynamic_batch",
    "validate",
    "fp16_check",
    "benchmark",
    "make_bag",
    "run",
    "replay",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``trt-perception`` parser with one subcommand per module in :data:`TOOLS`."""
    parser = argparse.ArgumentParser(prog="trt-perception", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in TOOLS:
        importlib.import_module(f"trt_perception.tools.{module}").add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``trt-perception`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
