"""Decoders from raw network outputs to results in source-image pixels.

Every decoder follows :class:`Decoder`: built from a :class:`~trt_perception.core.model_config.ModelConfig`
(its ``decoder`` section and labels), it is called with the model outputs of one image keyed by
*role* (the keys of the config's ``outputs`` section, batch dimension included, N = 1) and the
:class:`~trt_perception.core.geometry.ResizeGeometry` of that image, and returns its task's result
in source-image pixels. Thresholds that may change at runtime go through :meth:`Decoder.set_params`.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import numpy as np

from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfig


class Decoder(Protocol):
    """Raw outputs of one image -> task result (see the module docstring)."""

    #: output roles the decoder reads; the model config's ``outputs`` must name each of them
    roles: tuple[str, ...]

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> Any:
        """Decode one frame's raw ``outputs`` (keyed by role) into the task's result, in source-image pixels via
        ``geometry``.
        """

    def runtime_params(self) -> dict[str, Any]:
        """Current values of the parameters :meth:`set_params` accepts."""
        ...

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Change runtime parameters; raises ValueError (with the reason) and changes nothing
        when any value is invalid.
        """
        ...


def create_decoder(config: ModelConfig) -> Decoder:
    """The decoder for ``config.task``, configured from ``config``."""
    if config.task == "ssd":
        from trt_perception.core.decode.ssd import SsdDecoder
        return SsdDecoder.from_config(config)
    if config.task == "pose":
        from trt_perception.core.decode.pose import PoseDecoder
        return PoseDecoder.from_config(config)
    raise ValueError(f"no decoder for task {config.task!r}")
