"""One-to-one assignment per link: each peak joins at most one peak through each link type.

Among the candidate connections of a link, the assignment maximizes the sum of scores over a
matching (Hungarian method, :func:`scipy.optimize.linear_sum_assignment`); pairs that are not
candidates cannot be chosen. Candidates that share no peak with another candidate of their link
(the usual case) are kept without running the solver; the others, of all links at once, go to one
solver call on a matrix with a block per link (links are independent, so this is the same as one
call per link).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates


def assignment(candidates: LinkCandidates, num_peaks: int) -> np.ndarray:
    """bool[T]: the candidates kept by the per-link maximum-score matching."""
    key_a = candidates.link * num_peaks + candidates.a
    key_b = candidates.link * num_peaks + candidates.b
    size = (int(candidates.link.max()) + 1) * num_peaks if candidates.link.size else 0
    shared = ((np.bincount(key_a, minlength=size)[key_a] > 1)
              | (np.bincount(key_b, minlength=size)[key_b] > 1))
    chosen = ~shared
    if not shared.any():
        return chosen
    members = np.flatnonzero(shared)
    rows, row = np.unique(key_a[members], return_inverse=True)
    cols, col = np.unique(key_b[members], return_inverse=True)
    weight = np.zeros((rows.size, cols.size))
    weight[row, col] = candidates.score[members]
    index = np.full(weight.shape, -1, dtype=np.int64)
    index[row, col] = members
    picked = index[linear_sum_assignment(weight, maximize=True)]
    chosen[picked[picked >= 0]] = True
    return chosen
