"""Parameter declarations as data: one :class:`ParamSpec` row per parameter, declared once.

A row gives the name, the default (whose Python type is the parameter's type), the description,
the range or allowed values, whether it may change at runtime, and whether an unset value means
"the model configuration's" (``from_model``: the decoder thresholds, whose defaults for a model
are the ``decoder:`` section of its YAML, else the decoder's own ``default``). The decoders
declare their runtime thresholds this way (:data:`trt_perception.core.decode.ssd.decoder.SSD_PARAMS`,
:data:`trt_perception.core.decode.pose.POSE_PARAMS`); the ROS nodes turn rows into parameter
declarations (:mod:`trt_perception.ros.parameters`), and a test checks the README tables and
``config/*.yaml`` against them. ROS-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional


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
    #: unset means the model configuration's value (``default`` when it has none): a node declares
    #: the parameter without a value and passes it on only once it is set
    from_model: bool = False

    def renamed(self, name: str) -> "ParamSpec":
        """The same parameter under another name (e.g. with a task prefix)."""
        return replace(self, name=name)

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
