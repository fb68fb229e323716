"""Assembly of peaks into people: greedy merging by link score, with conflict checks.

Every peak starts as its own group. Connections are taken in two passes, each in decreasing score:

1. the connections chosen by the per-link assignment;
2. every other candidate connection (repairs groups that a wrong assignment left apart: when the
   assignment swapped two partners, the right pair is still a candidate).

A connection merges the groups of its two peaks unless they are already one group or both groups
hold a peak of the same part (a person has at most one peak per part). Unlike trt_pose's connected
components, a wrong connection therefore cannot fuse two people into one.
"""

from __future__ import annotations

import numpy as np

from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates


def connect_parts(part: np.ndarray, candidates: LinkCandidates, chosen: np.ndarray) -> np.ndarray:
    """int64[M]: the group (person) of each peak, numbered 0..G-1.

    part: int64[M] part of each peak; candidates: T connections; chosen: bool[T] from
    :func:`~trt_perception.core.decode.pose.assignment.assignment`.
    """
    num_peaks = part.size
    rank = np.lexsort((-candidates.score, ~chosen))  # chosen first, then by decreasing score
    group = list(range(num_peaks))  # group id = one of its peaks
    members: dict[int, list[int]] = {}  # peaks of groups with more than one peak
    parts = [1 << p for p in part.tolist()]  # bit set of the parts in each group
    for a, b in zip(candidates.a[rank].tolist(), candidates.b[rank].tolist()):
        ga, gb = group[a], group[b]
        if ga == gb or parts[ga] & parts[gb]:
            continue
        mine, theirs = members.pop(ga, [ga]), members.pop(gb, [gb])
        if len(mine) < len(theirs):
            ga, gb, mine, theirs = gb, ga, theirs, mine
        for p in theirs:
            group[p] = ga
        members[ga] = mine + theirs
        parts[ga] |= parts[gb]
    root = np.asarray(group, dtype=np.int64)
    return (np.cumsum(root == np.arange(num_peaks)) - 1)[root]
