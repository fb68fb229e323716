"""One-to-one assignment per link: each peak joins at most one peak through each link type.

Among the candidate connections of a link, the assignment maximizes the sum of scores over a
matching (Hungarian method, :func:`scipy.optimize.linear_sum_assignment`); pairs that are not
candidates cannot be chosen. Candidates that share no peak with another candidate of their link
(the usual case) are kept without running the solver. The others go to the solver on a matrix
with a block per link (links are independent), one solver call per block of ``BLOCK_ROWS`` rows or
more of consecutive links: with ``BLOCK_ROWS`` 1, each link alone (the solver's cost grows with the
cube of the matrix size; solving the links together would only change which of several equal
maxima is picked, where exact ties make several).

Solving again after a change of scores (``previous``: the limb-length rule's second assignment,
:mod:`.limb_lengths`), a link keeps its previous choice, unsolved, where no score of its candidates
that share a peak rose and none of its chosen candidates' scores changed: the previous matching's
total is then the same and no other matching's total rose, so it is still a maximum (one among
equals where there are ties; solving it again could pick another of them). The solver's matrix then
holds the other links only, cut into blocks as above.
"""

from __future__ import annotations

import numpy as np

from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates

#: rows of one solver call (links are solved together until a block reaches this many rows): 1, each
#: link alone (the compiled decoder: 0.93 x its time with blocks of 40 rows, at 20 people)
BLOCK_ROWS = 1


def stale_candidates(score: np.ndarray, previous: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """bool[T]: the candidates whose new ``score`` (float64[T]) may make the previous choice no longer
    a maximum: those whose score rose, and those chosen whose score changed. ``previous``: (chosen
    bool[T], the scores float64[T] it was solved with). A link without any keeps its choice.
    """
    chosen, solved_score = previous
    stale: np.ndarray = (score > solved_score) | (chosen & (score != solved_score))
    return stale


def assignment(candidates: LinkCandidates, num_peaks: int,
               previous: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """bool[T]: the candidates kept by the per-link maximum-score matching.

    previous: (chosen bool[T], scores float64[T]) from solving the same candidates with other scores:
    the links without :func:`stale_candidates` keep that choice (module docstring).
    """
    num_links = int(candidates.link.max()) + 1 if candidates.link.size else 0
    key_a = candidates.link * num_peaks + candidates.a  # node keys: link, then peak
    key_b = candidates.link * num_peaks + candidates.b
    size = num_links * num_peaks
    shared = ((np.bincount(key_a, minlength=size)[key_a] > 1)
              | (np.bincount(key_b, minlength=size)[key_b] > 1))
    chosen: np.ndarray = ~shared
    if previous is not None:  # the links where the previous choice may no longer be a maximum
        stale_link = np.zeros(num_links, dtype=bool)
        stale_link[candidates.link[shared & stale_candidates(candidates.score, previous)]] = True
        kept = shared & ~stale_link[candidates.link]
        chosen[kept] = previous[0][kept]
        shared &= ~kept
    if not shared.any():
        return chosen
    members = np.flatnonzero(shared)
    # matrix rows: the (link, peak a) keys in use, ascending, so that the rows of a link are
    # consecutive; ``before[key]``: keys in use up to and including key (columns alike)
    row_key, col_key = key_a[members], key_b[members]
    before_row, before_col = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    before_row[row_key] = 1
    before_col[col_key] = 1
    before_row, before_col = before_row.cumsum(), before_col.cumsum()
    row, col = before_row[row_key] - 1, before_col[col_key] - 1
    weight = np.zeros((int(before_row[-1]), int(before_col[-1])))
    weight[row, col] = candidates.score[members]
    index = np.full(weight.shape, -1, dtype=np.int64)
    index[row, col] = members
    # blocks of consecutive links, [row, column) starts, cut where a block reaches BLOCK_ROWS rows
    blocks = [(0, 0)]
    if weight.shape[0] > BLOCK_ROWS:
        link_end = np.arange(1, num_links) * num_peaks - 1  # last key of each link but the last
        for start in zip(before_row[link_end].tolist(), before_col[link_end].tolist()):
            if start[0] - blocks[-1][0] >= BLOCK_ROWS:
                blocks.append(start)
    blocks.append(weight.shape)
    from scipy.optimize import linear_sum_assignment  # 0.5 s to import: only where the solver runs

    picked_rows, picked_cols = [], []
    for (r0, c0), (r1, c1) in zip(blocks, blocks[1:]):
        r, c = linear_sum_assignment(weight[r0:r1, c0:c1], maximize=True)
        picked_rows.append(r + r0)
        picked_cols.append(c + c0)
    picked = index[np.concatenate(picked_rows), np.concatenate(picked_cols)]
    chosen[picked[picked >= 0]] = True
    return chosen
