"""Command-line options shared by the precision commands (``validate``, ``fp16-check``,
``quantize``, ``build-engine``): the model config, frame sets and the precision cache.

A frame set is a repeatable source flag (video, image folder, image or ``BAG#TOPIC``) with its
sampling flags ``--{prefix}every N`` and ``--{prefix}max-frames N``; the three values are stored
under ``dest``, ``{dest}_every`` and ``{dest}_max_frames`` and read back with :func:`frame_set`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Optional, Union

from trt_perception.core.precision.result_cache import default_precision_cache_dir

ArgumentTarget = Union[argparse.ArgumentParser, Any]  # a parser or one of its argument groups


@dataclass(frozen=True)
class FrameSet:
    """One frame set from the command line: the sources, every N-th frame, at most N frames."""

    sources: tuple[str, ...]
    every: int
    max_frames: int


def add_config_argument(parser: ArgumentTarget, help_text: str = "model config YAML (model and preprocessing)",
                        required: bool = True) -> None:
    """``--config FILE``: the model config YAML."""
    parser.add_argument("--config", required=required, help=help_text)


def add_frame_arguments(parser: ArgumentTarget, dest: str, *, flag: Optional[str], prefix: str, max_frames: int,
                        help_text: str, required: bool = False) -> None:
    """The frame set ``dest``: ``flag`` (repeatable ``SOURCE``; None: the caller adds the sources
    flag itself, with ``dest``), ``--{prefix}every N`` (default 1) and ``--{prefix}max-frames N``
    (default ``max_frames``).
    """
    if flag is not None:
        parser.add_argument(flag, dest=dest, action="append", required=required, default=None if required else [],
                            metavar="SOURCE", help=f"{help_text}: video, image folder, image or BAG#TOPIC (repeatable)")
    parser.add_argument(f"--{prefix}every", dest=f"{dest}_every", type=int, default=1, metavar="N",
                        help="use every N-th frame (default 1)")
    parser.add_argument(f"--{prefix}max-frames", dest=f"{dest}_max_frames", type=int, default=max_frames,
                        metavar="N", help=f"at most N frames (default {max_frames})")


def frame_set(args: argparse.Namespace, dest: str) -> FrameSet:
    """The frame set ``dest`` (see :func:`add_frame_arguments`) of the parsed ``args``."""
    return FrameSet(tuple(getattr(args, dest) or ()), getattr(args, f"{dest}_every"),
                    getattr(args, f"{dest}_max_frames"))


def add_cache_dir_argument(parser: ArgumentTarget, what: str) -> None:
    """``--cache-dir DIR``: the precision cache (``what`` it holds), default :func:`default_precision_cache_dir`."""
    parser.add_argument("--cache-dir", default=str(default_precision_cache_dir()),
                        help=f"cache of {what} (default %(default)s)")
