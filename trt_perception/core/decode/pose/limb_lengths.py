"""Limb-length consistency: assignment weights that penalize a pair much longer or shorter than its person's limbs.

Where several people are close, the per-link assignment (:mod:`.assignment`) often has to choose
between pairs that the field follows about equally well (an end near another person's peak); a
wrong choice gives a person a limb of the wrong length. After a first assembly
(:mod:`.connect_parts`), the lengths of the links that joined people tell each link type's typical
length in the image and each person's size; the assignment is then solved again with each
candidate's score lowered where its length disagrees with its person's size:

* ``r_t = log(|AB|) - typical[link]``, ``typical[k]`` the median of ``log(|AB|)`` over the joined
  links of type k (``|AB|`` at least 1e-3 cells);
* ``scale[g]`` the median of ``r`` over the joined links of person g: its size relative to the
  image's typical person, the same for all its limbs (people keep their proportions);
* the person of a candidate is that of its part_a peak, or that of its part_b peak when the first has
  no joined links; ``deviation = |r_t - scale[person]|`` (0 where the link type or the person has no
  joined links);
* ``weight = max(score - length_weight * max(0, deviation - length_tolerance), 1e-6)``.

A joined link is one chosen by the first assignment whose two peaks ended in one person. Medians
(the mean of the two middle values for an even count) keep a few wrong links from moving the scale.

The second assignment solves again only the links (:mod:`.assignment`) where the weight of a pair
CHOSEN by the first one is below its score, on solver blocks of those links alone; the other links
keep the first choice, unsolved (:func:`.assignment.stale_candidates`). That is exact up to ties:
a weight is at most its score (a score below ``MIN_WEIGHT`` is raised to it: a weight that rose
has its link solved again too), so where no chosen pair was lowered the first matching keeps its
total while no other matching's total rose, and it is still a maximum; solving the link again could
only pick another maximum of the same total (an exact tie), and the links are independent. The
numpy reference and the compiled kernels apply the same rule (and so keep the same skeletons).
"""

from __future__ import annotations

import numpy as np

from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates

#: shortest limb length (cells) whose log is taken
MIN_LENGTH = 1e-3
#: lowest assignment weight of a candidate (it stays a candidate)
MIN_WEIGHT = 1e-6


def group_medians(key: np.ndarray, value: np.ndarray, size: int) -> np.ndarray:
    """float64[size]: the median of ``value`` (float64[N]) over the entries of each key (int64[N] in
    0..size-1), the mean of the two middle values for an even count; NaN for keys without entries.
    """
    order = np.argsort(value, kind="stable")
    order = order[np.argsort(key[order], kind="stable")]  # by key, then value
    value = value[order]
    count = np.bincount(key, minlength=size)
    start = count.cumsum() - count
    out = np.full(size, np.nan)
    has = count > 0
    low, high = (start + (count - 1) // 2)[has], (start + count // 2)[has]
    out[has] = (value[low] + value[high]) / 2.0
    return out


def length_weights(candidates: LinkCandidates, chosen: np.ndarray, group: np.ndarray, x: np.ndarray,
                   y: np.ndarray, num_links: int, length_weight: float, length_tolerance: float) -> np.ndarray:
    """float64[T]: the candidates' assignment weights (see the module docstring).

    chosen: bool[T] from the first assignment; group: int64[M] person of each peak after the first
    assembly; x, y: float64[M] peak positions in cells.
    """
    a, b = candidates.a, candidates.b
    log_length = np.log(np.maximum(np.hypot(x[b] - x[a], y[b] - y[a]), MIN_LENGTH))
    joined = chosen & (group[a] == group[b])
    typical = group_medians(candidates.link[joined], log_length[joined], num_links)
    relative = log_length - typical[candidates.link]
    scale = group_medians(group[a[joined]], relative[joined], int(group.max()) + 1)
    person_scale = scale[group[a]]
    person_scale = np.where(np.isnan(person_scale), scale[group[b]], person_scale)
    deviation = np.abs(relative - person_scale)
    deviation = np.where(np.isnan(deviation), 0.0, deviation)
    penalty = length_weight * np.maximum(deviation - length_tolerance, 0.0)
    weights: np.ndarray = np.maximum(candidates.score - penalty, MIN_WEIGHT)
    return weights
