"""Link scores: the PAF line integral between every candidate pair of peaks of each link.

For link k (part_a -> part_b) and peaks A of part_a, B of part_b, the field is sampled at
``num_samples`` points ``A + t (B - A)``, ``t = (s + 0.5) / num_samples`` (the cell that contains
each point, nearest-cell sampling), and each sample's projection on the unit vector from A to B is
clipped to [-1, 1]. A pair is kept when

* at least ``min_sample_fraction`` of the samples exceed ``sample_threshold`` (the field follows the
  whole segment, not only part of it), and
* its score, the mean projection minus a length penalty ``max(0, |AB| / (H / 2) - 1)`` (OpenPose's
  prior against links longer than half the map), exceeds ``link_threshold``.

Every pair is first checked at its midpoint alone, so the full integral is only computed for pairs
whose field points the right way there (the midpoint is one of the samples, or between two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinkCandidates:
    """T candidate connections. link: int64[T]; a, b: int64[T] peak indices (part_a, part_b);
    score: float64[T] in (link_threshold, 1]."""

    link: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> "LinkCandidates":
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, np.zeros(0))


def _all_pairs(counts: np.ndarray, links: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (link, a, b) with a a peak of part_a and b a peak of part_b (peaks grouped by part)."""
    starts = np.cumsum(counts) - counts
    count_b = counts[links[:, 1]]
    pairs = counts[links[:, 0]] * count_b
    link = np.repeat(np.arange(links.shape[0]), pairs)
    rank = np.arange(link.size) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    row, col = np.divmod(rank, count_b[link])
    return link, starts[links[link, 0]] + row, starts[links[link, 1]] + col


def paf_score_graph(paf: np.ndarray, links: np.ndarray, counts: np.ndarray, x: np.ndarray,
                    y: np.ndarray, num_samples: int, sample_threshold: float,
                    min_sample_fraction: float, link_threshold: float) -> LinkCandidates:
    """Score all candidate pairs of every link and keep those that pass (see the module docstring).

    paf: float32[2L, H, W] (channel 2k = y, 2k + 1 = x of link k); links: int64[L, 2];
    counts: int64[C] peaks per part; x, y: float64[M] peak positions in cells, grouped by part.
    """
    link, a, b = _all_pairs(counts, links)
    if link.size == 0:
        return LinkCandidates.empty()
    _, height, width = paf.shape
    plane = height * width
    field = paf.reshape(-1)
    ax, ay = x[a], y[a]
    dx, dy = x[b] - ax, y[b] - ay
    # midpoint check: projection > sample_threshold, without normalizing (|AB| > 0 for the pair)
    mid = (link * 2 * plane + (ay + 0.5 * dy).astype(np.int64) * width
           + (ax + 0.5 * dx).astype(np.int64))
    length = np.hypot(dx, dy)
    keep = field[mid + plane] * dx + field[mid] * dy > sample_threshold * length
    link, a, b, ax, ay, dx, dy, length = (v[keep] for v in (link, a, b, ax, ay, dx, dy, length))
    if link.size == 0:
        return LinkCandidates.empty()

    t = (np.arange(num_samples) + 0.5) / num_samples
    cells = (link[:, None] * 2 * plane + (ay[:, None] + t * dy[:, None]).astype(np.int64) * width
             + (ax[:, None] + t * dx[:, None]).astype(np.int64))
    inv = 1.0 / np.maximum(length, 1e-9)
    proj = (field[cells + plane] * (dx * inv)[:, None] + field[cells] * (dy * inv)[:, None])
    np.clip(proj, -1.0, 1.0, out=proj)
    fraction = np.count_nonzero(proj > sample_threshold, axis=1) / num_samples
    score = proj.mean(axis=1) - np.maximum(0.0, length / (0.5 * height) - 1.0)
    keep = (fraction >= min_sample_fraction) & (score > link_threshold)
    return LinkCandidates(link[keep], a[keep], b[keep], score[keep])
