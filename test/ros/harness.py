"""Helpers for tests that run real rclpy nodes in the test process.

``RosHarness`` owns an rclpy context, a multi-threaded executor spinning in a background thread
and a plain node for test publishers, subscriptions and service clients. ``LifecycleClient`` drives
a lifecycle node through the standard ``lifecycle_msgs`` services, as ``ros2 lifecycle set`` does.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, period: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


class RosHarness:
    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.node = Node("test_harness", context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the executor stops when the context shuts down
            pass

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        return node

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        if not client.wait_for_service(timeout_sec=timeout):
            servers = [name for name, _ in self.node.get_service_names_and_types()]
            raise AssertionError(f"service {client.srv_name} not available; services in the graph: {servers}; "
                                 f"nodes: {self.node.get_node_names_and_namespaces()}")
        future = client.call_async(request)
        assert wait_for(future.done, timeout), f"service {client.srv_name} did not answer"
        return future.result()

    def close(self) -> None:
        nodes = list(self.executor.get_nodes())
        self.executor.shutdown()
        self._thread.join(timeout=5)
        for node in nodes:
            if hasattr(node, "close"):  # a perception node: stop its worker, free its model
                node.close()
            node.destroy_node()
        rclpy.shutdown(context=self.context)


class LifecycleClient:
    """``<node>/change_state`` and ``<node>/get_state`` clients for one lifecycle node."""

    TRANSITIONS = {
        "configure": Transition.TRANSITION_CONFIGURE,
        "activate": Transition.TRANSITION_ACTIVATE,
        "deactivate": Transition.TRANSITION_DEACTIVATE,
        "cleanup": Transition.TRANSITION_CLEANUP,
        "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    }

    def __init__(self, harness: RosHarness, node_name: str) -> None:
        self.harness = harness
        self.change = harness.node.create_client(ChangeState, f"/{node_name}/change_state")
        self.get = harness.node.create_client(GetState, f"/{node_name}/get_state")

    def set(self, transition: str) -> bool:
        """Request a transition by name; True when the node reports success."""
        request = ChangeState.Request()
        request.transition.id = self.TRANSITIONS[transition]
        return bool(self.harness.call(self.change, request).success)

    def state(self) -> str:
        return self.harness.call(self.get, GetState.Request()).current_state.label
