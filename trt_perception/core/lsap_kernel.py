"""scipy's ``linear_sum_assignment`` as a numba-compiled function, with scipy's tie-breaking.

:func:`lsap` is scipy/optimize/rectangular_lsap/rectangular_lsap.cpp (the shortest augmenting path
method of Crouse 2016, by P. M. Larsen) ported loop for loop, so that it returns the same
assignment as scipy also where several are optimal (``test/core/test_tracking_kernels.py`` checks it
against scipy on matrices full of ties). Used by the compiled tracker (:mod:`.tracking.kernels`);
the compiled pose decoder (:mod:`.decode.pose.kernels`) calls its core, :func:`assign_rows`, on
buffers it allocates once for many small matrices. Imports numba, so it is imported only
through their loaders, which handle numba being absent. Cached on disk (``cache=True``).

numba's disk cache of a calling kernel holds this function's code and is keyed on the caller's own
source file only: after editing this file, touch ``tracking/kernels.py`` and
``decode/pose/kernels.py`` (or delete their ``__pycache__/*.nbi``) so that they recompile. An
installed package is not affected (installing rewrites every file).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def lsap(cost):
    """scipy.optimize.linear_sum_assignment(cost) for a finite float64[R, C]: (rows, cols) int64[min(R, C)],
    rows ascending (scipy's result, ties broken as scipy does).
    """
    nr, nc = cost.shape
    if nr == 0 or nc == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    transpose = nc < nr
    c = cost.T.copy() if transpose else cost
    if transpose:
        nr, nc = nc, nr
    col4row = np.empty(nr, np.int64)
    work = np.empty(4 * nc + nr, np.int64)
    values = np.empty(nr + 2 * nc)
    assign_rows(c, col4row, work, values)
    if transpose:
        order = np.argsort(col4row)
        return col4row[order], order.astype(np.int64)
    return np.arange(nr).astype(np.int64), col4row


@numba.njit(cache=True, nogil=True)
def assign_rows(c, col4row, work, values):
    """The core of :func:`lsap` on scratch buffers (no allocation): c float64[R, C] finite with R <= C
    (scipy transposes a taller matrix first, and so must the caller); sets col4row[:R] (int64) to the
    column of each row, as scipy's solver. work: int64[>= 4 C + R]; values: float64[>= R + 2 C].
    """
    nr, nc = c.shape
    u = values[:nr]
    v = values[nr:nr + nc]
    shortest = values[nr + nc:nr + 2 * nc]
    path = work[:nc]
    row4col = work[nc:2 * nc]
    remaining = work[2 * nc:3 * nc]
    sc = work[3 * nc:4 * nc]
    sr = work[4 * nc:4 * nc + nr]
    col4row = col4row[:nr]
    u[:] = 0.0
    v[:] = 0.0
    path[:] = -1
    col4row[:] = -1
    row4col[:] = -1
    for cur_row in range(nr):
        # augmenting_path
        min_val = 0.0
        num_remaining = nc
        for it in range(nc):
            remaining[it] = nc - it - 1
        sr[:] = 0
        sc[:] = 0
        shortest[:] = np.inf
        sink = -1
        i = cur_row
        while sink == -1:
            index = -1
            lowest = np.inf
            sr[i] = 1
            for it in range(num_remaining):
                j = remaining[it]
                r = min_val + c[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    index = it
            min_val = lowest
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            sc[j] = 1
            num_remaining -= 1
            remaining[index] = remaining[num_remaining]
        # dual variables
        u[cur_row] += min_val
        for i in range(nr):
            if sr[i] and i != cur_row:
                u[i] += min_val - shortest[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - shortest[j]
        # augment
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            j, col4row[i] = col4row[i], j
            if i == cur_row:
                break
