"""Parameter overrides a node was given but does not declare (misspelt or meant for another node).

rclpy reads a node's overrides (``--params-file``, ``-p``, launch's ``parameters=``, the
``parameter_overrides`` argument) when the node is made, applies those it declares and silently
keeps the others. :func:`check_undeclared_overrides` lists them at configure, with the closest
declared name: a warning, or (``strict``) a ``ValueError`` that fails configure. Every node class
of the package calls it; a new one only has to as well.

rclpy has no public accessor for the overrides: ``Node._parameter_overrides`` (a dict by name, the
same in Humble, Jazzy and Kilted) is read, and an rclpy without it gives no overrides.
"""

from __future__ import annotations

from rclpy.node import Node

from trt_perception.core.unknown_names import describe, unknown_names


def undeclared_overrides(node: Node) -> list[tuple[str, str | None]]:
    """``(name, closest declared name or None)`` for each override ``node`` does not declare."""
    given = getattr(node, "_parameter_overrides", None) or {}
    return unknown_names(given, node.get_parameters_by_prefix(""))


def check_undeclared_overrides(node: Node, strict: bool) -> None:
    """Warn about the undeclared overrides of ``node``, or raise ``ValueError`` when ``strict``."""
    unknown = undeclared_overrides(node)
    if not unknown:
        return
    text = (f"{len(unknown)} parameter(s) given to {node.get_fully_qualified_name()} that it does not "
            f"declare: {describe(unknown)}")
    if strict:
        raise ValueError(text + " (strict_parameters is true)")
    node.get_logger().warning(text + "; they are ignored (strict_parameters: true makes this an error)")
