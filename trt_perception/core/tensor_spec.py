"""Types every layer that moves tensors shares: the description of a model's input or output
(:class:`TensorSpec`) and the error a model, engine or device reports (:class:`BackendError`).

They live apart from the backends so that :mod:`trt_perception.core.cuda`, :mod:`.gpu`,
:mod:`.tensorrt` and :mod:`.backends` can all import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


class BackendError(RuntimeError):
    """A model could not be loaded or run, with a reason a user can act on."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a model input or output; ``None`` marks a dynamic dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[Optional[int], ...]

    def static_shape(self) -> tuple[int, ...]:
        """The shape as ints; raises ValueError when a dimension is dynamic (``None``)."""
        dims = tuple(d for d in self.shape if d is not None)
        if len(dims) != len(self.shape):
            raise ValueError(f"{self.name!r} has a dynamic shape {format_shape(self.shape)}")
        return dims

    def accepts(self, array: np.ndarray) -> Optional[str]:
        """None when ``array`` fits this spec, else a sentence saying why not."""
        if array.dtype != self.dtype:
            return f"input {self.name!r} must be {self.dtype}, got {array.dtype}"
        if len(array.shape) != len(self.shape) or any(
                want is not None and want != got for want, got in zip(self.shape, array.shape)):
            return f"input {self.name!r} must have shape {format_shape(self.shape)}, got {list(array.shape)}"
        return None


def format_shape(shape: tuple[Optional[int], ...]) -> str:
    """``(1, None, 3)`` -> ``[1, ?, 3]``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
