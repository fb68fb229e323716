"""Decoder thresholds the user left unset read the model's values while the node is configured.

A ``from_model`` parameter (:class:`~trt_perception.core.param_spec.ParamSpec`: the decoder
thresholds) is declared without a value: unset, the model configuration's ``decoder:`` value
applies. So that ``ros2 param get`` shows the value in use, :meth:`ModelValues.show` sets each
unset one, after configure, to the value its decoder runs with, and remembers it as *shown*; at
cleanup (and after a failed configure or an error) :meth:`ModelValues.clear` makes the shown ones
unset again, so the next configure takes the (possibly changed) model's values rather than keeping
the old model's as if the user had given them. A value the user sets (``ros2 param set``, even one
equal to the shown value) is the user's from then on (:meth:`ModelValues.forget`): it stays over
cleanup and overrides every model. Values given at startup (files, ``-p``, launch) are the user's
from the start.

Rule, for the user: while unconfigured an unset threshold reads "not set"; after configure it reads
the value in use; a value you set is kept until the node ends.
"""

from __future__ import annotations

from typing import Any, Iterable

from rclpy.node import Node
from rclpy.parameter import Parameter

from trt_perception.core.param_spec import ParamSpec
from trt_perception.ros.parameters import PARAMETER_TYPES, descriptor


def as_parameter_value(spec: ParamSpec, value: Any) -> Any:
    """``value`` (a decoder's) in the type of ``spec``'s parameter: a float for a double, strings
    for a string array (class ids as their decimal text).
    """
    if isinstance(spec.default, list):
        return [str(item) for item in value]
    if isinstance(spec.default, float):
        return float(value)
    return type(spec.default)(value)


class ModelValues:
    """The shown model values of one node's ``from_model`` parameters (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        #: node parameter name -> its spec, for those shown now
        self._shown: dict[str, ParamSpec] = {}
        #: True while this object sets or unsets parameters: the node's on-set callback lets them pass
        self.setting = False

    @property
    def shown(self) -> frozenset[str]:
        """Names of the parameters that show the model's value now."""
        return frozenset(self._shown)

    def show(self, values: Iterable[tuple[ParamSpec, Any]]) -> None:
        """Set each ``(spec, value in use)`` parameter, unset until now, to the value in use; a value
        the parameter's declaration refuses (out of its range) is logged and left unset.
        """
        for spec, value in values:
            if spec.name in self._shown:  # several tasks on one parameter (multi_camera_node)
                continue
            param = Parameter(spec.name, PARAMETER_TYPES[type(spec.default)], as_parameter_value(spec, value))
            self.setting = True
            try:
                result = self._node.set_parameters([param])[0]
            finally:
                self.setting = False
            if result.successful:
                self._shown[spec.name] = spec
            else:
                self._node.get_logger().warning(
                    f"{spec.name}: the model's value {value!r} is in use but cannot be shown as the "
                    f"parameter ({result.reason}); it reads 'not set'")

    def forget(self, names: Iterable[str]) -> None:
        """The user set ``names``: their values are the user's, kept over cleanup."""
        for name in names:
            self._shown.pop(name, None)

    def clear(self) -> None:
        """Make every shown parameter unset again (the node is unconfigured). Not at the node's end:
        redeclaring publishes parameter events, which fails once the context is shut down (Ctrl-C).
        """
        self.setting = True
        try:
            for name, spec in self._shown.items():
                self._node.undeclare_parameter(name)
                self._node.declare_parameter(name, PARAMETER_TYPES[type(spec.default)], descriptor(spec), True)
        finally:
            self.setting = False
        self._shown = {}
