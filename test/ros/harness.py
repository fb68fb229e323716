"""Helpers for tests that run real rclpy nodes in the test process.

``RosHarness`` owns an rclpy context, a multi-threaded executor spinning in a background thread
and a plain node for test publishers, subscriptions and service clients. ``LifecycleClient`` drives
a lifecycle node through the standard ``lifecycle_msgs`` services, as ``ros2 lifecycle set`` does.

A slow graph: every test makes its nodes anew with the same names, and the graph may still list a
destroyed node's services for a while. ``wait_for_service`` then answers at once although the new
server is not matched yet, and a request sent now is lost. Requests are therefore sent again when
unanswered, where that is safe: ``get_state`` always; ``change_state`` only after ``get_state``
shows the node still in the transition's start state (the first request never arrived).
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

    def send(self, client: Any, request: Any, timeout: float = 10.0, ready_s: float = 5.0) -> Any:
        """``client``'s request: the future. Sent once the client is matched with a server or, after
        ``ready_s`` s, once the graph lists the service: rmw_fastrtps calls a server available only
        while the graph's counts of the service's request readers and response writers agree, and a
        destroyed server's endpoints can linger in the graph for many seconds, so a live, matched
        server can stay "unavailable". Such a request may go unanswered: the callers send again what
        is safe to send again (see the module docstring). AssertionError when the graph has not
        listed the service within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        if client.wait_for_service(timeout_sec=min(ready_s, timeout)):
            return client.call_async(request)
        if not wait_for(lambda: client.service_is_ready() or self.lists_service(client.srv_name),
                        max(deadline - time.monotonic(), 0.0), period=0.1):
            servers = [name for name, _ in self.node.get_service_names_and_types()]
            raise AssertionError(f"service {client.srv_name} not available; services in the graph: {servers}; "
                                 f"nodes: {self.node.get_node_names_and_namespaces()}")
        return client.call_async(request)

    def lists_service(self, name: str) -> bool:
        """Whether the ROS graph lists a service called ``name``."""
        return any(listed == name for listed, _ in self.node.get_service_names_and_types())

    def call_idempotent(self, client: Any, request: Any, timeout: float = 20.0, retry_s: float = 2.0) -> Any:
        """The answer to a request that may be sent again: sent again every ``retry_s`` s while
        unanswered (see the module docstring); the first answer within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        futures = []
        while True:
            futures.append(self.send(client, request, timeout))
            if wait_for(lambda: any(f.done() for f in futures), min(retry_s, max(deadline - time.monotonic(), 0))):
                return next(f for f in futures if f.done()).result()
            assert time.monotonic() < deadline, f"service {client.srv_name} did not answer {len(futures)} requests"

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
    #: the state each transition starts from
    STARTS = {"configure": "unconfigured", "activate": "inactive", "deactivate": "active",
              "cleanup": "inactive", "shutdown": "unconfigured"}

    def __init__(self, harness: RosHarness, node_name: str) -> None:
        self.harness = harness
        self.change = harness.node.create_client(ChangeState, f"/{node_name}/change_state")
        self.get = harness.node.create_client(GetState, f"/{node_name}/get_state")

    def set(self, transition: str, timeout: float = 30.0, retry_s: float = 3.0) -> bool:
        """Request a transition by name; True when the node reports success. Unanswered after
        ``retry_s`` s while the node is still in the start state, the request is sent again (it went
        to a server not matched yet: see the module docstring)."""
        request = ChangeState.Request()
        request.transition.id = self.TRANSITIONS[transition]
        deadline = time.monotonic() + timeout
        futures = [self.harness.send(self.change, request, timeout)]
        while not wait_for(lambda: any(f.done() for f in futures), retry_s):
            assert time.monotonic() < deadline, f"{self.change.srv_name} did not answer {transition}"
            if self.state() == self.STARTS[transition] and not any(f.done() for f in futures):
                futures.append(self.harness.send(self.change, request, timeout))
        return bool(next(f for f in futures if f.done()).result().success)

    def state(self) -> str:
        return self.harness.call_idempotent(self.get, GetState.Request()).current_state.label
