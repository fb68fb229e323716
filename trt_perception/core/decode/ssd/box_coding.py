"""SSD box decoding (the "faster_rcnn" box coder used by TF OD API, torchvision and Caffe SSD).

An encoding ``(tx, ty, tw, th)`` relative to an anchor ``(cx_a, cy_a, w_a, h_a)`` decodes to::

    cx = tx / sx * w_a + cx_a      w = exp(tw / sw) * w_a
    cy = ty / sy * h_a + cy_a      h = exp(th / sh) * h_a

then ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``. The model's column order is ``order``: "yxhw"
(TF: ty, tx, th, tw) or "xywh" (torchvision / Caffe), and ``scale_factors`` are given in that same
order (TF ``y_scale, x_scale, height_scale, width_scale`` = 10, 10, 5, 5; Caffe variances v give
``1 / v``). ``tw / sw`` and ``th / sh`` are clamped at ``log(1000 / 16)`` (as torchvision does) so a
wild regression cannot overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

BOX_ORDERS = ("yxhw", "xywh")
_MAX_LOG_SIZE = math.log(1000.0 / 16)


@dataclass(frozen=True)
class BoxCoder:
    """How box encodings are laid out and scaled (see the module docstring)."""

    order: str = "yxhw"
    scale_factors: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    _columns: list[int] = field(init=False, repr=False, compare=False)
    _divisors: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.order not in BOX_ORDERS:
            raise ValueError(f"box_coder.order must be one of {BOX_ORDERS}, got {self.order!r}")
        factors = tuple(float(f) for f in self.scale_factors)
        if len(factors) != 4 or not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError(f"box_coder.scale_factors must be 4 positive numbers, got {self.scale_factors!r}")
        object.__setattr__(self, "scale_factors", factors)
        columns = [1, 0, 3, 2] if self.order == "yxhw" else [0, 1, 2, 3]   # -> (x, y, w, h)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_divisors", np.array([factors[c] for c in columns], np.float32))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BoxCoder":
        """From a config mapping with keys ``order`` and ``scale_factors`` (both optional)."""
        unknown = set(values) - {"order", "scale_factors"}
        if unknown:
            raise ValueError(f"unknown box_coder keys {sorted(unknown)}; allowed: order, scale_factors")
        return cls(**values)

    def decode(self, encodings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """float[M, 4] encodings in ``order`` + float32[M, 4] (cx, cy, w, h) anchors ->
        float32[M, 4] boxes (xmin, ymin, xmax, ymax) in the anchors' normalized units.
        """
        rel = encodings[:, self._columns].astype(np.float32, copy=False)
        rel /= self._divisors
        np.minimum(rel[:, 2:], _MAX_LOG_SIZE, out=rel[:, 2:])
        centre = rel[:, :2] * anchors[:, 2:]
        centre += anchors[:, :2]
        half = np.exp(rel[:, 2:])
        half *= anchors[:, 2:]
        half *= 0.5
        boxes = np.empty_like(rel)
        np.subtract(centre, half, out=boxes[:, :2])
        np.add(centre, half, out=boxes[:, 2:])
        return boxes
