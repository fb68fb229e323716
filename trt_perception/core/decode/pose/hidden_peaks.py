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

_CURVATURE = np.array([-1.0, 1.0])  # i^2 at cell 0 minus cell -1, at cell 1 minus cell 0


@functools.lru_cache(maxsize=16)
def _offsets(row_stride: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a window of radius r around a peak: int64[(2r + 1)^2] flat offsets of its cells;
    float32[3, (2r + 1)^2] the terms of 2 var log(bump / v) at them (see :func:`hidden_peaks`); int64[9]
    flat offsets of the 3 x 3 cells, raster order; int64[2, 3] flat offsets of the cells -1, 0, 1
    along x (row 0) and y (row 1)."""
    steps = np.arange(-radius, radius + 1)
    di, dj = (a.reshape(-1) for a in np.meshgrid(steps, steps, indexing="ij"))
    terms = np.stack([2.0 * dj, 2.0 * di, -(di * di + dj * dj)])
    axes = np.array([[-1, 0, 1], [-row_stride, 0, row_stride]])
    return di * row_stride + dj, terms.astype(np.float32), (axes[1][:, None] + axes[0]).reshape(-1), axes


def measured_width(curvature: np.ndarray, sigma: float) -> float:
    """The bumps' width in cells, measured on the map: 1 / sqrt(-c), c the median of the found peaks'
    log-value curvatures (float[M, 2] from ``refine_peaks``) where negative; ``sigma`` (the width the
    model was trained with) where none is; at least ``sigma / 2``."""
    curvature = curvature[curvature < 0.0]
    if curvature.size == 0:
        return sigma
    middle = curvature.size // 2
    return max(0.5 * sigma, 1.0 / math.sqrt(-float(np.partition(curvature, middle)[middle])))


def hidden_peaks(padded: np.ndarray, pad: int, index: np.ndarray, x: np.ndarray, y: np.ndarray,
                 value: np.ndarray, width: float, radius: int, margin: float, threshold: float,
                 work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden peaks next to the found ``index`` (see the module docstring).

    padded: float32[C, H + 2 pad, W + 2 pad] from ``pad_maps`` with ``pad >= radius + 1``;
    index: int64[M] the found peaks' flat indices into it; x, y: float64[M] their sub-cell positions
    (map cells); value: float32[M] their cell values; width: the bumps' width s in cells; radius:
    the window around each found peak, in cells; work: float32[padded.size] filled with -inf, a work
    buffer (left so). Returns the hidden peaks' flat indices int64[K] (ascending), x and y
    float64[K] in map cells, inside [0, W) x [0, H).
    """
    _, padded_h, padded_w = padded.shape
    flat = padded.reshape(-1)
    window, terms, block, axes = _offsets(padded_w, radius)
    two_var = 2.0 * width * width
    row, col = np.divmod(index % (padded_h * padded_w), padded_w)
    # a peak's bump at the window cell (dj, di) from its cell centre, c = (x, y) - centre its
    # sub-cell offset: h exp(-|(dj, di) - c|^2 / 2 var) with h = v exp(|c|^2 / 2 var) (v: its cell
    # value) is v exp((2 c . (dj, di) - dj^2 - di^2) / 2 var) = exp(log v + [c_x, c_y, 1] @ terms / 2 var)
    offset = np.empty((index.size, 3), dtype=np.float32)
    offset[:, 0] = x - col
    offset[:, 1] = y - row
    offset[:, :2] += pad - 0.5
    offset[:, 2] = 1.0
    bump = offset @ terms
    bump *= np.float32(1.0 / two_var)
    bump += np.log(value)[:, None]
    np.exp(bump, out=bump)
    cells = (index[:, None] + window).reshape(-1)
    np.maximum.at(work, cells, bump.reshape(-1))  # the model
    map_value = flat.take(cells)
    residual = map_value - work.take(cells)  # -inf outside the map
    shoulder = cells[(residual > margin) & (map_value > threshold)]
    xy = np.zeros((0, 2))
    if shoulder.size:
        work[cells] = residual  # -inf away from every found peak
        # a maximum of the residual in its 3 x 3 neighbourhood: strictly greater than the
        # neighbours before it in raster order
        around = work.take(shoulder[:, None] + block)  # [K, 9]
        peak = around[:, 4]
        top = (peak > around[:, :4].max(axis=1)) & (peak >= around[:, 5:].max(axis=1))
        shoulder = np.unique(shoulder[top])
        # along each axis, cells -1, 0, 1: log map values, whether the hidden bump is the map there
        around = shoulder[:, None, None] + axes  # [K, 2 axes, 3 cells]
        values, explained = flat.take(around), work.take(around)
        use = (explained > margin / 3.0) | (explained == -np.inf)  # -inf: away from the found peaks
        use &= values > 0.0  # and inside the map
        log = np.log(np.maximum(values, 1e-6), dtype=np.float64)
        slope = np.diff(log, axis=2)  # [K, 2, 2]: log v_0 - log v_-1, log v_1 - log v_0
        slope += _CURVATURE / two_var
        use = use[:, :, ::2]  # cell 0 is always used
        sides = use.sum(axis=2)
        slope *= use
        mu = slope.sum(axis=2) * (0.5 * two_var) / np.maximum(sides, 1)
        mu[np.abs(mu) > 1.5] = 0.0
        row, col = np.divmod(shoulder % (padded_h * padded_w), padded_w)
        xy = np.stack([col, row], axis=1) + (0.5 - pad)
        xy += mu
        np.clip(xy, 0.0, [math.nextafter(padded_w - 2 * pad, 0), math.nextafter(padded_h - 2 * pad, 0)],
                out=xy)
        # at least half a width from the found peaks of its part (else it is the found peak's own
        # bump, off by noise)
        plane = padded_h * padded_w
        near = (xy[:, 0, None] - x) ** 2 + (xy[:, 1, None] - y) ** 2 < 0.25 * width * width  # [K, M]
        near &= (shoulder[:, None] // plane) == index // plane
        far = ~near.any(axis=1)
        shoulder, xy = shoulder[far], xy[far]
    work[cells] = -np.inf
    return shoulder, xy[:, 0], xy[:, 1]
