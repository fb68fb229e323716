"""Hidden peaks: keypoints of one part too close to a found peak to make a maximum of their own.

A network's confidence map around a keypoint is a Gaussian bump of about the width it was trained
with (the map is the maximum of the bumps where people are close). Two keypoints of one part less
than about two widths apart make a single local maximum: the weaker one only shows as a *shoulder*
of the found peak's bump. The width s is measured on the map (:func:`measured_width`, from the
curvature of the found peaks). Around each found peak (the cells within ``radius`` cells, Chebyshev
distance), the map is compared with what the found peaks explain,

    model(cell) = max over the part's found peaks p of h_p exp(-|cell - p|^2 / (2 s^2))

(h_p: the peak's height, from its cell value and its sub-cell offset). A cell is a hidden peak when
its residual (map - model) exceeds ``margin``, its map value exceeds the peak threshold, and the
residual there is the maximum of its 3 x 3 neighbourhood (ties as in
:func:`~trt_perception.core.decode.pose.find_peaks.find_peaks`; cells away from every found peak do
not count). Where the hidden keypoint's bump is the maximum, the map *is* that bump, so its log is
a paraboloid of known curvature: along x (and independently along y), with b_i = log v_i +
i^2 / (2 s^2) at the cells i = -1, 0, 1 of the row (column) through the hidden peak's cell,

    b_i = k + i mu / s^2,

mu its offset from the cell centre. mu is s^2 times the mean of the one-sided slopes b_0 - b_-1 and
b_1 - b_0 of the neighbours the hidden bump dominates (the least-squares fit over those cells; mu = 0
with neither, or if it is more than 1.5 cells): the neighbours inside the map whose residual exceeds
``margin / 3`` or that lie away from every found peak. A hidden peak closer than s / 2 to a found peak
of its part is dropped (that is the found peak's own bump, its centre misplaced by noise).
The link scores and the matching then decide whether anyone uses a hidden peak.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# in a 3 x 3 block (raster order), the slopes along x from cell 3 to 4 and 4 to 5, along y from 1 to
# 4 and 4 to 7; their neighbour cells (not the centre); i^2 at the slope's end minus at its start
_LOW, _HIGH, _SIDE = np.array([3, 4, 1, 4]), np.array([4, 5, 4, 7]), np.array([3, 5, 1, 7])
_CURVATURE = np.array([-1.0, 1.0, -1.0, 1.0])


@functools.lru_cache(maxsize=16)
def _offsets(row_stride: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a window of radius r around a peak: int64[(2r + 1)^2] flat offsets of its cells (dj, di);
    float32[4, (2r + 1)^2] their terms 2 dj, 2 di, -(dj^2 + di^2), 1 (see :func:`hidden_peaks`);
    int64[9] flat offsets of the 3 x 3 cells, raster order.
    """
    steps = np.arange(-radius, radius + 1)
    di, dj = (a.reshape(-1) for a in np.meshgrid(steps, steps, indexing="ij"))
    terms = np.stack([2.0 * dj, 2.0 * di, -(di * di + dj * dj), np.ones(di.size)])
    block = (np.arange(-1, 2)[:, None] * row_stride + np.arange(-1, 2)).reshape(-1)
    return di * row_stride + dj, terms.astype(np.float32), block


def measured_width(curvature: np.ndarray, sigma: float) -> float:
    """The bumps' width in cells, measured on the map: 1 / sqrt(-c), c the median of the found peaks'
    log-value curvatures (float[M, 2] from ``refine_peaks``) where negative; ``sigma`` (the width the
    model was trained with) where none is; at least ``sigma / 2``.
    """
    curvature = curvature[curvature < 0.0]
    if curvature.size == 0:
        return sigma
    middle = curvature.size // 2
    return max(0.5 * sigma, 1.0 / math.sqrt(-float(np.partition(curvature, middle)[middle])))


def hidden_peaks(padded: np.ndarray, pad: int, index: np.ndarray, x: np.ndarray, y: np.ndarray,
                 offset: np.ndarray, value: np.ndarray, width: float, radius: int, margin: float,
                 threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden peaks next to the found ``index`` (see the module docstring).

    padded: float32[C, H + 2 pad, W + 2 pad] from ``pad_maps`` with ``pad >= radius + 1``;
    index: int64[M] the found peaks' flat indices into it; x, y: float64[M] their sub-cell positions
    (map cells) and offset: float[M, 2] their offsets from their cells' centres (``refine_peaks``);
    value: float32[M] their cell values; width: the bumps' width s in cells; radius:
    the window around each found peak, in cells. Returns the hidden peaks' flat indices int64[K]
    (ascending), x and y float64[K] in map cells, inside [0, W) x [0, H).
    """
    _, padded_h, padded_w = padded.shape
    flat = padded.reshape(-1)
    window, terms, block = _offsets(padded_w, radius)
    two_var = 2.0 * width * width
    # a peak's bump at the window cell (dj, di) from its cell centre, c its sub-cell offset:
    # h exp(-|(dj, di) - c|^2 / 2 var) with h = v exp(|c|^2 / 2 var) (v: its cell value) is
    # v exp((2 c . (dj, di) - dj^2 - di^2) / 2 var) = exp([c_x / 2 var, c_y / 2 var, 1 / 2 var,
    # log v] @ terms)
    coefficients = np.empty((index.size, 4), dtype=np.float32)
    coefficients[:, :2] = offset
    coefficients[:, 2] = 1.0
    coefficients[:, :3] *= 1.0 / two_var
    np.log(np.maximum(value, 1e-6), out=coefficients[:, 3])  # a peak may be <= 0 (peak_threshold < 0)
    bump = coefficients @ terms
    np.exp(bump, out=bump)
    cells = (index[:, None] + window).reshape(-1)
    # the model at the windows' cells, -inf elsewhere (a new buffer: filling it is faster than
    # resetting the cells of a kept one, whose scattered lines are out of the cache by the next call)
    work = np.full(flat.size, -np.inf, dtype=np.float32)
    np.maximum.at(work, cells, bump.reshape(-1))
    residual = flat.take(cells)
    residual -= work.take(cells)  # -inf outside the map
    shoulder = cells[residual > margin]
    if threshold > margin:  # else implied: the model is positive
        shoulder = shoulder[flat.take(shoulder) > threshold]
    xy = np.zeros((0, 2))
    if shoulder.size:
        shoulder.sort()  # without duplicates (cells in two windows)
        first = np.empty(shoulder.size, dtype=bool)
        first[0] = True
        np.not_equal(shoulder[1:], shoulder[:-1], out=first[1:])
        shoulder = shoulder[first]
        # residuals of the 3 x 3 blocks around them, -inf outside the map and away from every found
        # peak; a hidden peak is their maximum, strictly greater than the cells before it in raster
        # order
        around = shoulder[:, None] + block  # [K, 9]
        values, explained = flat.take(around), work.take(around)
        away = explained == -np.inf
        explained[away] = np.inf
        residual = values - explained
        peak = residual[:, 4]
        top = peak > np.maximum.reduce(residual[:, :4], axis=1)
        top &= peak >= np.maximum.reduce(residual[:, 5:], axis=1)
        shoulder, values, residual, away = shoulder[top], values[top], residual[top], away[top]
        # the sub-cell fit: along x (cells 3, 4, 5 of the block) and y (1, 4, 7), the slopes from the
        # cell's neighbours (_SIDE) where the hidden bump is the map (residual above margin / 3, or
        # away from every found peak, inside the map)
        log = np.log(np.maximum(values, 1e-6), dtype=np.float64)
        slope = log[:, _HIGH] - log[:, _LOW]  # [K, 4]: x from the left, x to the right, y alike
        slope += _CURVATURE / two_var
        use = residual[:, _SIDE] > margin / 3.0
        use |= away[:, _SIDE] & (values[:, _SIDE] > 0.0)
        slope *= use
        mu = np.add.reduce(slope.reshape(-1, 2, 2), axis=2)
        mu *= 0.5 * two_var
        mu /= np.maximum(np.add.reduce(use.reshape(-1, 2, 2), axis=2), 1)
        mu[np.abs(mu) > 1.5] = 0.0
        row, col = np.divmod(shoulder % (padded_h * padded_w), padded_w)
        xy = np.stack([col - pad, row - pad], axis=1) + mu  # in the map
        xy += 0.5
        np.maximum(xy, 0.0, out=xy)  # inside the map
        np.minimum(xy, [math.nextafter(padded_w - 2 * pad, 0), math.nextafter(padded_h - 2 * pad, 0)],
                   out=xy)
        # at least half a width from the found peaks of its part (else it is the found peak's own
        # bump, off by noise)
        plane = padded_h * padded_w
        near = np.square(xy[:, 0, None] - x)
        near += np.square(xy[:, 1, None] - y)
        near = near < 0.25 * width * width  # [K, M]
        near &= (shoulder // plane)[:, None] == index // plane
        far = ~np.logical_or.reduce(near, axis=1)
        shoulder, xy = shoulder[far], xy[far]
    return shoulder, xy[:, 0], xy[:, 1]
