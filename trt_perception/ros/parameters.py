"""One table of node parameters: declaration with descriptors, and validation with reasons.

Each :class:`ParamSpec` becomes a ROS parameter with a ``ParameterDescriptor`` (description,
integer/floating-point range, read-only flag, allowed values in ``additional_constraints``).
Enumerations are strings checked against ``choices``. ``runtime=True`` marks the parameters that may
change while the node runs (thresholds); every other parameter is read only.

A startup value (parameter file, ``-p``, launch) that rclpy refuses, of the wrong type or out of
range, does not stop the process: the parameter keeps its default, the refusal is logged, and
:func:`read` reports it, so configure fails with the reason until the parameter is set to a valid
value (runtime parameters) or the node is started again with a corrected one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional, Sequence
from weakref import WeakKeyDictionary

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: name, default (its type is the parameter's type), description and bounds."""

    name: str
    default: Any
    description: str
    int_range: Optional[tuple[int, int]] = None
    float_range: Optional[tuple[float, float]] = None
    choices: Optional[tuple[str, ...]] = None
    runtime: bool = False

    def renamed(self, name: str) -> "ParamSpec":
        """The same parameter under another name (e.g. with a task prefix)."""
        return replace(self, name=name)

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(description=self.description, read_only=not self.runtime)
        if self.int_range is not None:
            desc.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=0)]
        if self.float_range is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.float_range[0]), to_value=float(self.float_range[1]), step=0.0)]
        if self.choices is not None:
            desc.additional_constraints = "one of: " + ", ".join(self.choices)
        return desc

    def check(self, value: Any) -> Optional[str]:
        """None when ``value`` is acceptable, else the reason (ranges, NaN, choices)."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value}"
        if self.float_range is not None and not self.float_range[0] <= value <= self.float_range[1]:
            return f"{self.name} must be in [{self.float_range[0]}, {self.float_range[1]}], got {value}"
        if self.int_range is not None and not self.int_range[0] <= value <= self.int_range[1]:
            return f"{self.name} must be in [{self.int_range[0]}, {self.int_range[1]}], got {value}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        return None


#: per node: parameter name -> why its startup value was refused (until it is set successfully)
_REFUSED: "WeakKeyDictionary[Node, dict[str, str]]" = WeakKeyDictionary()


def declare(node: Node, specs: Iterable[ParamSpec]) -> None:
    """Declare every parameter of ``specs`` on ``node`` (overrides from YAML/launch apply; one
    rclpy refuses is replaced by the default and reported by :func:`read`, see the module docstring)."""
    if node not in _REFUSED:
        refused: dict[str, str] = {}
        _REFUSED[node] = refused
        def forget(params: Sequence[Any]) -> None:  # a value set later replaces the refused one
            for param in params:
                refused.pop(param.name, None)

        if hasattr(node, "add_post_set_parameters_callback"):
            node.add_post_set_parameters_callback(forget)
        else:  # Humble: no post-set callbacks; an on-set callback that accepts everything
            node.add_on_set_parameters_callback(lambda params: (forget(params), SetParametersResult(successful=True))[1])
    for spec in specs:
        try:
            _declare(node, spec, ignore_override=False)
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            _declare(node, spec, ignore_override=True)
            reason = f"{spec.name}: the value given at startup was refused ({exc})"
            _REFUSED[node][spec.name] = reason
            node.get_logger().error(f"{reason}; declared with the default {spec.default!r} instead, "
                                    "configure fails until the parameter is corrected")


def refused_startup_values(node: Node) -> list[str]:
    """Why startup values of ``node``'s parameters were refused (those not corrected since)."""
    return list(_REFUSED.get(node, {}).values())


def _declare(node: Node, spec: ParamSpec, ignore_override: bool) -> None:
    if isinstance(spec.default, list) and not spec.default:
        # an empty list has no element type: declare typed (string array) and uninitialized
        node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, spec.descriptor(), ignore_override)
    else:
        node.declare_parameter(spec.name, spec.default, spec.descriptor(), ignore_override)


def plain(value: Any) -> Any:
    """A parameter value as the nodes use it: an unset list (None) is [], an array a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else value


def read(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Current values by name, validated; raises ValueError naming every bad value (and every
    refused startup value not corrected since)."""
    values: dict[str, Any] = {}
    refused = _REFUSED.get(node, {})
    problems = [refused[spec.name] for spec in specs if spec.name in refused]
    for spec in specs:
        try:
            value = plain(node.get_parameter(spec.name).value)
        except ParameterUninitializedException:  # a list declared empty and never set
            value = []
        problem = spec.check(value)
        if problem:
            problems.append(problem)
        values[spec.name] = value
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    return values
