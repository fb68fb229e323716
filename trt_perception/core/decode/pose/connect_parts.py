"""Assembly of peaks into people: the assigned connections, by decreasing score, with conflict checks.

Every peak starts as its own group. The connections chosen by the per-link assignment are taken in
decreasing score; a connection merges the groups of its two peaks unless they are already one
group or both groups hold a peak of the same part (a person has at most one peak per part). Unlike
trt_pose's connected components, a wrong connection therefore cannot fuse two people into one;
the stronger connection wins the conflict.
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
    picked = np.flatnonzero(chosen)
    picked = picked[np.argsort(-candidates.score[picked], kind="stable")]
    parent = list(range(num_peaks))  # union-find forest; a root's entry in ``parts`` is its group's
    parts = [1 << p for p in part.tolist()]  # bit set of the parts in each group
    for a, b in zip(candidates.a[picked].tolist(), candidates.b[picked].tolist()):
        while parent[a] != a:  # find the roots, halving the paths
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b and not parts[a] & parts[b]:
            parent[a] = b
            parts[b] |= parts[a]
    root = np.asarray(parent)
    up = root[root]
    while (up != root).any():
        root, up = up, up[up]
    labels: np.ndarray = ((root == np.arange(num_peaks)).cumsum() - 1)[root]
    return labels
