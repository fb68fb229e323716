"""Sub-cell peak refinement: a parabola through the log values of each peak and its neighbours.

Along x (and independently along y) the peak's offset from its cell centre is the vertex of the
parabola through (-1, log l), (0, log c), (1, log r), which is exact for a Gaussian peak:

    offset = (log l - log r) / (2 (log l - 2 log c + log r))

On the map border, where one neighbour is missing, the parabola goes through the peak and the two
next cells inwards (c, r, r2 or l2, l, c), so a keypoint between the border cell's centre and the
map edge is still placed right. Values are floored at ``1e-6`` before the log; the offset is 0 where
the values are not strictly concave, and is kept within half a cell.
"""

from __future__ import annotations

import functools
import math

import numpy as np

_FLOOR = 1e-6
_NEG_INF = np.float32(-np.inf)


@functools.lru_cache(maxsize=16)
def _window(row_stride: int) -> np.ndarray:
    """int64[2, 5]: flat offsets of the cells -2..2 along x (row 0) and along y (row 1)."""
    window: np.ndarray = np.arange(-2, 3) * np.array([[1], [row_stride]])
    return window


def refine_peaks(padded: np.ndarray, peaks: np.ndarray,
                 pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sub-cell (x, y) of ``peaks`` (flat indices into ``padded``, from ``find_peaks``).

    Returns two float64[M] in map cells, centre of cell (row i, column j) at (j + 0.5, i + 0.5),
    each within half a cell of its peak cell's centre and inside [0, W) x [0, H); float64[M, 2]
    the offsets (x, y) from the cell centres, in [-0.5, 0.5] (before x, y are kept inside the map);
    and float64[M, 2] the parabolas' curvatures along x and y (-1 / sigma^2 for a Gaussian of sigma
    cells; >= 0 where the values are not strictly concave).
    """
    _, padded_h, padded_w = padded.shape
    # [M, 2 axes, 5]: values of the cells -2..2 along each axis; the border of the padding is -inf
    values = padded.reshape(-1).take(peaks[:, None, None] + _window(padded_w), mode="clip")
    log = np.log(np.maximum(values, _FLOOR), dtype=np.float64).reshape(-1)
    # the parabola goes through the cells middle - 1, middle, middle + 1: middle = 0, 1 when the
    # cell before the peak is outside the map, -1 when the cell after is; ``first``: the index in
    # ``log`` of cell middle - 1
    outside = values[:, :, 1::2] == _NEG_INF  # [M, 2, (before, after)]
    middle = outside[:, :, 0].view(np.int8) - outside[:, :, 1].view(np.int8)
    first = np.arange(1, 5 * middle.size, 5).reshape(middle.shape) + middle
    f_minus, f_zero, f_plus = log[first], log[first + 1], log[first + 2]
    curvature = f_minus - 2.0 * f_zero + f_plus
    concave = curvature < 0.0
    offset = np.where(concave, (f_minus - f_plus) / (2.0 * np.where(concave, curvature, -1.0)), 0.0)
    offset += middle
    offset = np.minimum(np.maximum(offset, -0.5), 0.5)
    row, col = np.divmod(peaks % (padded_h * padded_w), padded_w)
    row -= pad  # in the map
    col -= pad
    x = np.minimum(col + (offset[:, 0] + 0.5), math.nextafter(padded_w - 2 * pad, 0))
    y = np.minimum(row + (offset[:, 1] + 0.5), math.nextafter(padded_h - 2 * pad, 0))
    return x, y, offset, curvature
