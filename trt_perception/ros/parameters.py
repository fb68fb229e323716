"""Node parameters from :class:`~trt_perception.core.param_spec.ParamSpec` rows: declaration with
descriptors, and validation with reasons.

Each row becomes a ROS parameter with a ``ParameterDescriptor`` (description, integer/floating-point
range, read-only flag, allowed values in ``additional_constraints``). Enumerations are strings
checked against ``choices``. ``runtime=True`` marks the parameters that may change while the node
runs (thresholds); every other parameter is read only. A ``from_model`` row (decoder thresholds)
is declared without a value: until it is set, :func:`read` gives None and the model configuration's
value applies.

A startup value (parameter file, ``-p``, launch) that rclpy refuses, of the wrong type or out of
range, does not stop the process: the parameter keeps its default, the refusal is logged, and
:func:`read` reports it, so configure fails with the reason until the parameter is set to a valid
value (runtime parameters) or the node is started again with a corrected one.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence
from weakref import WeakKeyDictionary

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from trt_perception.core.param_spec import ParamSpec

__all__ = ["PARAMETER_TYPES", "ParamSpec", "declare", "descriptor", "plain", "read", "refused_startup_values"]

#: the ROS parameter type of a ParamSpec by the Python type of its default
PARAMETER_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
          str: Parameter.Type.STRING, list: Parameter.Type.STRING_ARRAY}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of ``spec``: description, read-only flag, ranges, allowed values."""
    desc = ParameterDescriptor(description=spec.description, read_only=not spec.runtime)
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=0)]
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]), step=0.0)]
    if spec.choices is not None:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    return desc


#: per node: parameter name -> why its startup value was refused (until it is set successfully)
_REFUSED: "WeakKeyDictionary[Node, dict[str, str]]" = WeakKeyDictionary()


def declare(node: Node, specs: Iterable[ParamSpec]) -> None:
    """Declare every parameter of ``specs`` on ``node`` (overrides from YAML/launch apply; one
    rclpy refuses is replaced by the default and reported by :func:`read`, see the module docstring).
    """
    if node not in _REFUSED:
        refused: dict[str, str] = {}
        _REFUSED[node] = refused
        def forget(params: Sequence[Any]) -> None:  # a value set later replaces the refused one
            for param in params:
                refused.pop(param.name, None)

        if hasattr(node, "add_post_set_parameters_callback"):
            node.add_post_set_parameters_callback(forget)
        else:  # Humble: no post-set callbacks; an on-set callback that accepts everything
            def accept_all(params: Sequence[Any]) -> SetParametersResult:
                forget(params)
                return SetParametersResult(successful=True)

            node.add_on_set_parameters_callback(accept_all)
    for spec in specs:
        try:
            _declare(node, spec, ignore_override=False)
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            _declare(node, spec, ignore_override=True)
            reason = f"{spec.name}: the value given at startup was refused ({exc})"
            _REFUSED[node][spec.name] = reason
            kept = ("left unset (the model configuration's value)" if spec.from_model
                    else f"declared with the default {spec.default!r} instead")
            node.get_logger().error(f"{reason}; {kept}, configure fails until the parameter is corrected")


def refused_startup_values(node: Node) -> list[str]:
    """Why startup values of ``node``'s parameters were refused (those not corrected since)."""
    return list(_REFUSED.get(node, {}).values())


def _declare(node: Node, spec: ParamSpec, ignore_override: bool) -> None:
    if spec.from_model or (isinstance(spec.default, list) and not spec.default):
        # typed and uninitialized: unset until given (an empty list has no element type either)
        node.declare_parameter(spec.name, PARAMETER_TYPES[type(spec.default)], descriptor(spec), ignore_override)
    else:
        node.declare_parameter(spec.name, spec.default, descriptor(spec), ignore_override)


def plain(value: Any) -> Any:
    """A parameter value as the nodes use it: an unset list (None) is [], an array a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else value


def read(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Current values by name, validated (None: a ``from_model`` parameter not set); raises
    ValueError naming every bad value (and every refused startup value not corrected since).
    """
    values: dict[str, Any] = {}
    refused = _REFUSED.get(node, {})
    problems = [refused[spec.name] for spec in specs if spec.name in refused]
    for spec in specs:
        try:
            value = plain(node.get_parameter(spec.name).value)
        except ParameterUninitializedException:  # never set: the model's value, or a list declared empty
            value = None if spec.from_model else []
        if value is None:
            values[spec.name] = value
            continue
        problem = spec.check(value)
        if problem:
            problems.append(problem)
        values[spec.name] = value
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    return values
