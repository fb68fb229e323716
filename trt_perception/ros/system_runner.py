"""A system plan (:mod:`~trt_perception.ros.system`) started in this process, without launch.

Each :class:`~trt_perception.ros.system.NodeSpec` becomes its node class, constructed with the
spec's name and namespace and its ``--ros-args`` (parameter files and remaps, applied by rcl
exactly as for ``ros2 run`` / launch) plus the spec's overrides; all nodes share one
``MultiThreadedExecutor``. Before anything is loaded, every parameter the files give a node is
checked against what the node declares (rclpy would silently ignore a misspelt one).
:meth:`InProcessSystem.start` drives each node configure -> activate, as the launch file's
lifecycle event handlers do.
"""

from __future__ import annotations

import importlib
import threading
from typing import Optional, Sequence

from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter

from trt_perception.ros.parameters import refused_startup_values
from trt_perception.ros.system import KINDS, NodeSpec, file_parameters


class SystemStartError(RuntimeError):
    """The plan cannot be started (undeclared parameters, a parameter of the wrong type)."""


def node_class(kind: str) -> type[LifecycleNode]:
    """The node class of node kind ``kind`` (a key of :data:`~trt_perception.ros.system.KINDS`)."""
    entry = KINDS[kind]
    cls: type[LifecycleNode] = getattr(importlib.import_module(entry.module), entry.node_class)
    return cls


def undeclared_parameters(node: LifecycleNode, spec: NodeSpec) -> list[str]:
    """``"<name> (<file>: <key>)"`` for each parameter the spec's files give that ``node`` lacks."""
    return [f"{name} ({origin})" for name, (_, origin) in file_parameters(spec).items()
            if not node.has_parameter(name)]


class InProcessSystem:
    """The nodes of ``plan`` in ``context`` (an initialized rclpy context), unconfigured.

    Raises :class:`SystemStartError` (after destroying what was made) when a node cannot be made
    or its files give it parameters it does not declare.
    """

    def __init__(self, plan: Sequence[NodeSpec], context: Context, threads: Optional[int] = None) -> None:
        self.context = context
        self.nodes: list[tuple[NodeSpec, LifecycleNode]] = []
        self.executor = MultiThreadedExecutor(num_threads=threads, context=context)
        self._thread: Optional[threading.Thread] = None
        try:
            for spec in plan:
                self._add(spec)
        except BaseException:
            self.close()
            raise

    def _add(self, spec: NodeSpec) -> None:
        overrides = [Parameter(name, value=value) for name, value in spec.overrides]
        try:
            node = node_class(spec.kind)(node_name=spec.name, namespace=spec.namespace, context=self.context,
                                         cli_args=spec.ros_args(), parameter_overrides=overrides)
        except ParameterException as exc:
            raise SystemStartError(f"{spec.fqn}: {exc}") from exc
        self.nodes.append((spec, node))
        unknown = undeclared_parameters(node, spec)
        if unknown:
            raise SystemStartError(f"{spec.fqn} does not declare these parameters of its files: "
                                   f"{', '.join(unknown)}")
        refused = refused_startup_values(node)
        if refused:  # the node would only fail configure: stop the start now
            raise SystemStartError(f"{spec.fqn}: {'; '.join(refused)}")
        self.executor.add_node(node)

    def start(self) -> list[str]:
        """Configure, then activate every node; returns the names of the nodes that failed a
        transition (each logs its reason; they stay unconfigured or inactive, the others run).
        """
        failed = []
        for spec, node in self.nodes:
            if (node.trigger_configure() != TransitionCallbackReturn.SUCCESS
                    or node.trigger_activate() != TransitionCallbackReturn.SUCCESS):
                failed.append(spec.fqn)
        return failed

    def spin_in_background(self) -> None:
        """Spin the executor in a daemon thread (until :meth:`close` or context shutdown)."""
        self._thread = threading.Thread(target=self._spin_quietly, name="system_executor", daemon=True)
        self._thread.start()

    def _spin_quietly(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:   # the context was shut down (Ctrl-C)
            pass

    def close(self) -> None:
        """Stop the executor, stop and free every node (idempotent)."""
        self.executor.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for _, node in self.nodes:
            close = getattr(node, "close", None)
            if close is not None:   # a perception node: stop its workers, free its models
                close()
            node.destroy_node()
        self.nodes = []
