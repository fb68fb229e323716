"""``main()`` shared by the node executables: init, spin, clean shutdown on Ctrl-C."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from trt_perception.ros.session import rclpy_session
from trt_perception.ros.task_node import TaskNode


def run_node(factory: Callable[[], TaskNode], args: Optional[Sequence[str]] = None) -> int:
    """Create the node and spin it until shutdown. The node starts unconfigured: transitions come
    from launch, ``ros2 lifecycle set`` or a lifecycle manager.
    """
    try:
        with rclpy_session(args):
            node = factory()
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                executor.remove_node(node)
                node.close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
