"""``with rclpy_session(args):``: rclpy initialized for the block, shut down after it, on every ROS 2
distribution (``rclpy.init()`` returns a context manager only from Kilted on; Humble and Jazzy
return None).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import rclpy
from rclpy.utilities import try_shutdown


@contextlib.contextmanager
def rclpy_session(args: Optional[Sequence[str]] = None) -> Iterator[None]:
    """Initialize the default context with ``args`` (``--ros-args ...``); shut it down at exit,
    unless something (Ctrl-C, a shutdown request) already did.
    """
    rclpy.init(args=None if args is None else list(args))
    try:
        yield
    finally:
        try_shutdown()
