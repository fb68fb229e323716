"""Sub-cell peak refinement: a parabola through the log values of each peak and its 4 neighbours.

Along x (and independently along y) the peak's offset from its cell centre is the vertex of the
parabola through (-1, log l), (0, log c), (1, log r), which is exact for a Gaussian peak:

    offset = (log l - log r) / (2 (log l - 2 log c + log r))

Values are floored at ``1e-6`` before the log. The offset is 0 along an axis where the peak is on
the map border (a neighbour is missing) or where the three values are not strictly concave.
"""

from __future__ import annotations

import numpy as np

_FLOOR = 1e-6


def refine_peaks(padded: np.ndarray, peaks: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell (x, y) of ``peaks`` (flat indices into ``padded``, from ``find_peaks``).

    Returns two float64[M] in map cells, centre of cell (row i, column j) at (j + 0.5, i + 0.5),
    each within half a cell of its peak cell's centre and inside [0, W) x [0, H).
    """
    _, padded_h, padded_w = padded.shape
    # columns: centre, left, up, right, down
    near = padded.reshape(-1)[peaks[:, None] + np.array([0, -1, -padded_w, 1, padded_w])]
    logs = np.log(np.maximum(near, _FLOOR), dtype=np.float64)
    before, after = logs[:, 1:3], logs[:, 3:5]  # [M, 2] per axis (x, y)
    curvature = before + after - 2.0 * logs[:, :1]
    ok = (curvature < 0.0) & (near[:, 1:3] > -np.inf) & (near[:, 3:5] > -np.inf)
    offset = np.where(ok, (before - after) / (2.0 * np.where(ok, curvature, -1.0)), 0.0)
    row, col = np.divmod(peaks % (padded_h * padded_w), padded_w)
    width, height = padded_w - 2 * pad, padded_h - 2 * pad
    x = np.clip(col + (offset[:, 0] + 0.5 - pad), 0.0, np.nextafter(width, 0))
    y = np.clip(row + (offset[:, 1] + 0.5 - pad), 0.0, np.nextafter(height, 0))
    return x, y
