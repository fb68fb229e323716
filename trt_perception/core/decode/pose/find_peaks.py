"""Peak finding: local maxima of each confidence map above a threshold.

Works on maps padded with -inf (:func:`pad_maps`), so a neighbour lookup is one flat offset and
the border needs no special case: a peak cell at the edge is compared with its in-map neighbours
only. The first test runs on the whole flat array with contiguous slices (above the threshold and
a maximum along its row); the few cells left are then tested against their other neighbours in
stages, nearest ring first, so that cost grows with the number of candidates, not with the map
size.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import numpy as np


class Peaks(NamedTuple):
    """M peaks. index: int64[M] flat indices into the padded maps, ascending (so grouped by part,
    part 0 first); part: int64[M]; counts: int64[C] peaks per part.
    """

    index: np.ndarray  # type: ignore[assignment]  # the field shadows tuple.index(); nothing here calls that
    part: np.ndarray
    counts: np.ndarray


def pad_maps(cmap: np.ndarray, pad: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float32[C, H + 2 pad, W + 2 pad]: ``cmap`` (float[C, H, W]) with ``pad`` cells of -inf around.

    ``out``: a previous result of the same shape to reuse (its border is already -inf).
    """
    channels, height, width = cmap.shape
    shape = (channels, height + 2 * pad, width + 2 * pad)
    if out is None or out.shape != shape:
        out = np.full(shape, -np.inf, dtype=np.float32)
    out[:, pad:pad + height, pad:pad + width] = cmap
    return out


def noise_level(cmap: np.ndarray) -> float:
    """Standard deviation of the noise on confidence maps cmap (float32[C, H, W]), estimated from
    their negative values: sqrt(2 mean(min(v, 0)^2)), which is the standard deviation of zero-mean
    noise on maps that are mostly background (keypoints only add positive values). 0 on maps without
    negative values.
    """
    negative = np.minimum(cmap, 0.0).reshape(-1)
    return float(np.sqrt(2.0 * np.dot(negative, negative) / negative.size))


@functools.lru_cache(maxsize=16)
def _neighbour_tests(row_stride: int, radius: int) -> tuple[tuple[tuple[int, np.ufunc], ...], ...]:
    """(flat offset, comparison a peak must pass against that neighbour) for the window's neighbours
    other than the two cells next to it in its row (offsets -1, +1), in stages (4-neighbours,
    diagonals, next ring...): ``greater`` for neighbours before the centre in raster order,
    ``greater_equal`` after.
    """
    rings: dict[tuple[int, int], list[tuple[int, np.ufunc]]] = {}
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            if di != 0 or abs(dj) > 1:
                offset = di * row_stride + dj
                rings.setdefault((max(abs(di), abs(dj)), abs(di) + abs(dj)), []).append(
                    (offset, np.greater if offset < 0 else np.greater_equal))
    return tuple(tuple(rings[key]) for key in sorted(rings))


def find_peaks(padded: np.ndarray, radius: int, threshold: float, max_count: int) -> Peaks:
    """Peaks of each channel of ``padded`` (from :func:`pad_maps`, padded by at least ``radius``).

    A peak is a cell whose value is above ``threshold`` and is the maximum of the
    (2 radius + 1) x (2 radius + 1) window centred on it; on a plateau only the first cell in raster
    order counts (a peak is strictly greater than the neighbours before it). At most
    ``max_count`` peaks per part are kept, the highest.
    """
    channels, padded_h, padded_w = padded.shape
    values = padded.reshape(-1)
    centre = values[1:-1]
    above = centre > threshold
    above &= centre > values[:-2]
    above &= centre >= values[2:]
    cand = above.nonzero()[0] + 1
    value = values[cand]
    for tests in _neighbour_tests(padded_w, radius):
        (offset, test), *others = tests
        keep = test(value, values[cand + offset])
        for offset, test in others:
            keep &= test(value, values[cand + offset])
        cand, value = cand[keep], value[keep]
    part = cand // (padded_h * padded_w)
    counts = np.bincount(part, minlength=channels)
    if cand.size and counts.max() > max_count:
        order = np.lexsort((-value, part))  # by part, highest first
        rank = np.empty(cand.size, dtype=np.int64)
        rank[order] = np.arange(cand.size) - np.repeat(np.cumsum(counts) - counts, counts)
        cand, part = cand[rank < max_count], part[rank < max_count]
        counts = np.minimum(counts, max_count)
    return Peaks(cand, part, counts)
