"""Link scores: the PAF line integral between every candidate pair of peaks of each link.

For link k (part_a -> part_b) and peaks A of part_a, B of part_b, the field f is sampled at
``num_samples`` points ``A + t (B - A)``, ``t = (s + 0.5) / num_samples`` (the cell that contains
each point, nearest-cell sampling). Each sample scores how well the field's *direction* follows the
segment: its projection on the unit vector u from A to B over the field's magnitude,

    value = f . u / max(|f|, paf_floor)      in [-1, 1],

the cosine of the angle between f and u where the field is at least ``paf_floor`` strong, shrinking
in proportion where it is weaker (noise away from any limb scores about 0). Normalizing by the
magnitude keeps a faint limb from losing to a strong one that only roughly follows the pair, and
two limbs of one type summed where they overlap from counting double. A pair is kept when

* the value at its midpoint (t = 0.5) and at least ``min_sample_fraction`` of the samples exceed
  ``sample_threshold`` (the field follows the whole segment, not only part of it), and
* its score, the weighted mean of the sample values, sample s weighing ``1 + end_weight (2 t - 1)^2``,
  minus a length penalty ``max(0, |AB| / (H / 2) - 1)`` (OpenPose's prior against links longer
  than half the map), exceeds ``link_threshold``.

The weights favour the samples near the two peaks: the middle of a limb is followed equally by
every pair whose segment runs along that limb, also by pairs with an end on a nearby peak of
another person, while the field near the ends tells which peaks the limb joins.

With many pairs (more than ``_MIDPOINT_FIRST``), the midpoint is tested first, alone, and the
samples are only computed for the pairs whose field points the right way there.

NaN/Inf values: the field is read only at the *sampled cells*: the midpoint's cell of every pair;
for the pairs whose midpoint follows the link, their samples in the order ``sample_order`` (both
ends first, then inwards: a wrong pair's ends are off its field soonest) up to the one where too
many have failed to follow for the pair to be kept (all of them for a kept pair; a NaN/Inf sample
fails to follow). A NaN or Inf value in one of these cells makes :func:`paf_score_graph` return None
(the frame cannot be decoded); values anywhere else cannot change the result and are not looked at
(the compiled decoder reads exactly these cells).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

_MIDPOINT_FIRST = 256


@dataclass(frozen=True)
class LinkCandidates:
    """T candidate connections. link: int64[T]; a, b: int64[T] peak indices (part_a, part_b);
    score: float64[T] in (link_threshold, 1].
    """

    link: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> "LinkCandidates":
        """No candidates: zero-length int64 index arrays and float scores."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, np.zeros(0))


def _all_pairs(counts: np.ndarray, links: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (link, a, b) with a a peak of part_a and b a peak of part_b (peaks grouped by part),
    ordered by link, then a, then b.
    """
    starts = counts.cumsum() - counts
    part_a, part_b = links.T
    count_a = counts[part_a]
    # one row per (link, peak a); a row holds the pairs of its peak with every peak of part_b
    row_link = np.arange(links.shape[0]).repeat(count_a)
    row_a = np.arange(row_link.size) + (starts[part_a] - count_a.cumsum() + count_a)[row_link]
    row_b = part_b[row_link]
    row_pairs = counts[row_b]
    first = row_pairs.cumsum()  # index of each row's first pair, once ``row_pairs`` is subtracted
    b = np.arange(first[-1] if first.size else 0)
    first -= row_pairs
    b += (starts[row_b] - first).repeat(row_pairs)
    return row_link.repeat(row_pairs), row_a.repeat(row_pairs), b


@functools.lru_cache(maxsize=8)
def sample_weights(num_samples: int, end_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """float32[S + 1, 1]: t of each sample along the segment, then 0.5 (the midpoint); float32[S, 1]:
    the samples' weights (they sum to 1).
    """
    t = (np.arange(num_samples) + 0.5) / num_samples
    weight = 1.0 + end_weight * (2.0 * t - 1.0) ** 2
    return np.append(t, 0.5).astype(np.float32)[:, None], (weight / weight.sum()).astype(np.float32)[:, None]


@functools.lru_cache(maxsize=8)
def sample_order(num_samples: int) -> np.ndarray:
    """int64[S]: the samples in the order they are read, ends first: 0, S - 1, 1, S - 2, ..."""
    s = np.arange(num_samples)
    return np.where(s % 2 == 0, s // 2, num_samples - 1 - s // 2)


def allowed_misses(num_samples: int, min_sample_fraction: float) -> int:
    """The most samples that may fail to follow a kept pair: the largest m with
    (S - m) / S >= min_sample_fraction.
    """
    return int(np.count_nonzero((num_samples - np.arange(num_samples + 1)) / num_samples
                                >= min_sample_fraction)) - 1


def _direction_values(field: np.ndarray, cells: np.ndarray, plane: int, ux: np.ndarray, uy: np.ndarray,
                      paf_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 f . u / max(|f|, paf_floor) at flat y-channel indices ``cells`` (int64; the x channel
    is one ``plane`` on), and bool (same shape): whether both components are finite there.
    """
    fy, fx = field.take(cells), field.take(cells + plane)
    finite = np.isfinite(fy)
    finite &= np.isfinite(fx)
    value: np.ndarray = fx * ux
    value += fy * uy
    fx *= fx
    fy *= fy
    fx += fy
    np.sqrt(fx, out=fx)
    value /= np.maximum(fx, np.float32(paf_floor), out=fx)
    return value, finite


def paf_score_graph(paf: np.ndarray, links: np.ndarray, counts: np.ndarray, x: np.ndarray,
                    y: np.ndarray, num_samples: int, sample_threshold: float,
                    min_sample_fraction: float, link_threshold: float,
                    paf_floor: float, end_weight: float) -> Optional[LinkCandidates]:
    """Score all candidate pairs of every link and keep those that pass (see the module docstring);
    None when a sampled cell of paf holds NaN/Inf.

    paf: float32[2L, H, W] (channel 2k = y, 2k + 1 = x of link k); links: int64[L, 2];
    counts: int64[C] peaks per part; x, y: float[M] peak positions in cells, grouped by part;
    paf_floor > 0, end_weight >= 0. Computed in float32.
    """
    link, a, b = _all_pairs(counts, links)
    if link.size == 0:
        return LinkCandidates.empty()
    _, height, width = paf.shape
    plane = height * width
    field = paf.reshape(-1)
    # float32 from here on; 1e-3 cells inside the far edges so that no sample rounds onto the edge
    x = np.minimum(x, width - 1e-3, dtype=np.float32)
    y = np.minimum(y, height - 1e-3, dtype=np.float32)
    ax, ay = x.take(a), y.take(a)
    dx, dy = x.take(b) - ax, y.take(b) - ay
    length = np.sqrt(dx * dx + dy * dy)
    safe = np.maximum(length, np.float32(1e-6))  # two peaks at one point: no direction, u = 0 scores 0
    ux, uy = dx / safe, dy / safe
    base = link * (2 * plane)  # flat index of each pair's y channel
    if link.size > _MIDPOINT_FIRST:
        mid = (ay + 0.5 * dy).astype(np.int32) * width
        mid += (ax + 0.5 * dx).astype(np.int32)
        mid_value, finite = _direction_values(field, base + mid, plane, ux, uy, paf_floor)
        if not finite.all():
            return None
        keep = (mid_value > sample_threshold).nonzero()[0]
        link, a, b, ax, ay, dx, dy, ux, uy, length, base = (
            v.take(keep) for v in (link, a, b, ax, ay, dx, dy, ux, uy, length, base))

    t, weight = sample_weights(num_samples, end_weight)  # [S + 1, 1]: the arrays below are [S + 1, T]
    cells = (ay + t * dy).astype(np.int32)
    cells *= width
    cells += (ax + t * dx).astype(np.int32)
    value, finite = _direction_values(field, base + cells, plane, ux, uy, paf_floor)
    follows = value > sample_threshold
    if not finite[num_samples].all():  # every midpoint is read
        return None
    # the samples of the pairs whose midpoint follows, in sample_order, while at most allowed_misses failed
    followed = follows[num_samples].nonzero()[0]
    order = sample_order(num_samples)
    missed = ~follows[order[:, None], followed]
    read = missed.cumsum(axis=0) - missed <= allowed_misses(num_samples, min_sample_fraction)
    if not finite[order[:, None], followed][read].all():
        return None
    samples = value[:num_samples]
    samples *= weight
    score = np.add.reduce(samples, axis=0, dtype=np.float64)
    score -= np.maximum(0.0, length / (0.5 * height) - 1.0)
    keep = follows[num_samples]  # the midpoint
    keep &= np.add.reduce(follows[:num_samples].view(np.int8), axis=0) / num_samples >= min_sample_fraction
    keep &= score > link_threshold
    keep = keep.nonzero()[0]
    return LinkCandidates(link[keep], a[keep], b[keep], score[keep])
