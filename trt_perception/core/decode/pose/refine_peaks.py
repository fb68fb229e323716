"""Sub-cell peak refinement: a parabola through the log values of each peak and its neighbours.

Along x (and independently along y) the peak's offset from its cell centre is the vertex of the
parabola through (-1, log l), (0, log c), (1, log r), which is exact for a Gaussian peak:

    offset = (log l - log r) / (2 (log l - 2 log c + log r))

On the map border, where one neighbour is missing, the parabola goes through the peak and the two
next cells inwards (c, r, r2 or c, l, l2), so a keypoint between the border cell's centre and the
map edge is still placed right. Values are floored at ``1e-6`` before the log; the offset is 0 where
the values are not strictly concave, and is kept within half a cell.
"""

from __future__ import annotations

import numpy as np

_FLOOR = 1e-6


def _vertex(f_minus: np.ndarray, f_zero: np.ndarray, f_plus: np.ndarray) -> np.ndarray:
    """Vertex offset from 0 of the parabola through (-1, f_minus), (0, f_zero), (1, f_plus); 0 where
    not strictly concave."""
    curvature = f_minus - 2.0 * f_zero + f_plus
    concave = curvature < 0.0
    return np.where(concave, (f_minus - f_plus) / (2.0 * np.where(concave, curvature, -1.0)), 0.0)


def refine_peaks(padded: np.ndarray, peaks: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell (x, y) of ``peaks`` (flat indices into ``padded``, from ``find_peaks``).

    Returns two float64[M] in map cells, centre of cell (row i, column j) at (j + 0.5, i + 0.5),
    each within half a cell of its peak cell's centre and inside [0, W) x [0, H).
    """
    _, padded_h, padded_w = padded.shape
    step = np.array([1, padded_w])  # x, y
    # [M, 2 axes] values one and two cells before / after the peak along each axis
    flat = padded.reshape(-1)
    before, after = flat[peaks[:, None] - step], flat[peaks[:, None] + step]
    before2 = flat.take(peaks[:, None] - 2 * step, mode="clip")
    after2 = flat.take(peaks[:, None] + 2 * step, mode="clip")
    log = [np.log(np.maximum(v, _FLOOR), dtype=np.float64)
           for v in (flat[peaks][:, None], before, after, before2, after2)]
    centre, log_b, log_a, log_b2, log_a2 = log
    offset = np.where(before == -np.inf,
                      np.where(after == -np.inf, 0.0, 1.0 + _vertex(centre, log_a, log_a2)),
                      np.where(after == -np.inf, -1.0 - _vertex(centre, log_b, log_b2),
                               _vertex(log_b, centre, log_a)))
    np.clip(offset, -0.5, 0.5, out=offset)
    row, col = np.divmod(peaks % (padded_h * padded_w), padded_w)
    width, height = padded_w - 2 * pad, padded_h - 2 * pad
    x = np.clip(col + (offset[:, 0] + 0.5 - pad), 0.0, np.nextafter(width, 0))
    y = np.clip(row + (offset[:, 1] + 0.5 - pad), 0.0, np.nextafter(height, 0))
    return x, y
