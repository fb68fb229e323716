"""The whole pose decoder as numba-compiled loops: one call per image, the same results as the numpy steps.

:func:`parse` runs what :class:`~trt_perception.core.decode.pose.PoseParser` runs with the numpy
modules (find_peaks -> refine_peaks -> hidden_peaks -> paf_score_graph -> assignment ->
connect_parts [-> limb_lengths -> assignment -> connect_parts] -> people), step for step and in the
same float32 / float64 arithmetic, so that both give the same skeletons (the numpy modules are the
reference; ``test/core/test_pose_kernels.py`` compares them on random scenes), skipping only work
whose result is known (the second assignment's links where no chosen pair's score was lowered,
skipped as in the reference: :func:`solve_again`; the solver, where a link's matrix has a single
maximum that its rows' best pairs make: :func:`_row_minima_match`). Only float32 rounding may differ in the
last bit (float32 ``exp``, the hidden peaks' model sums). Imported only through :mod:`.compiled`,
which handles numba being absent; compiled functions are cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from trt_perception.core.lsap_kernel import assign_rows

# error_model "numpy": no zero test before each division (no divisor here can be zero: see the
# functions), which also lets loops with a division vectorize
_NOGIL = dict(cache=True, nogil=True, error_model="numpy")
_F32 = np.float32

# indices of the float / int parameter arrays built by ``compiled.pack_params``
(P_THRESHOLD, P_NOISE_FACTOR, P_SIGMA, P_HIDDEN_MARGIN, P_LINK_THRESHOLD, P_PAF_FLOOR,
 P_SAMPLE_THRESHOLD, P_MIN_SAMPLE_FRACTION, P_MIN_SCORE, P_LENGTH_WEIGHT, P_LENGTH_TOLERANCE) = range(11)
(I_RADIUS, I_MAX_PEAKS, I_MIN_PARTS, I_MAX_PEOPLE, I_HIDDEN_RADIUS, I_BLOCK_ROWS) = range(6)
#: rows per block of :func:`check_cmap`
ROW_BLOCK = 8


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})  # reassoc: the sums vectorize
def _block_sums(values, low):
    """float32 sums over ``values`` of v - v (NaN once a value is NaN or Inf), of min(v, 0)^2 and of
    max(v - low, 0) (> 0 when a value exceeds low).
    """
    finite = _F32(0.0)
    squares = _F32(0.0)
    excess = _F32(0.0)
    for k in range(values.size):
        v = values[k]
        finite += v - v
        negative = v if v < _F32(0.0) else _F32(0.0)
        squares += negative * negative
        above = v - low
        excess += above if above > _F32(0.0) else _F32(0.0)
    return finite, squares, excess


@numba.njit(**_NOGIL)
def check_cmap(cmap, low, cand):
    """Checks cmap and finds the candidate peaks above ``low``, in one pass.

    cmap float32[C, H, W]; cand: int64 buffer of at least C * H * ceil(W / 2) + 8 values. Returns whether
    cmap holds NaN/Inf values; the noise level sqrt(2 * sum of squared negative values / values)
    (the standard deviation of zero-mean noise on a map that is mostly background); the first K
    values of ``cand``: the flat indices (ascending) of the cells above ``low`` that are greater
    than the cell before them in their row and at least the cell after (none outside the map: at
    most ceil(W / 2) per row), looked for in the blocks of ``ROW_BLOCK`` rows (rows of all maps in a
    row, from row 0) that hold a value above ``low``, while the block is in the cache (sums over
    blocks of rows vectorize, row by row they would not). A row's tests fill one byte per cell
    without a branch (the loop vectorizes); the bytes are then read 8 at a time as one integer, and
    only the nonzero ones are looked at (a row holds a few candidates).
    """
    channels, height, width = cmap.shape
    flat = cmap.reshape(-1)
    num_rows = channels * height
    n = 0
    low32 = _F32(low)
    span = ROW_BLOCK * width
    finite = _F32(0.0)
    squares = 0.0
    words = (width + 7) // 8
    test = np.zeros(8 * words, np.uint8)  # 1: the row's cell is a candidate; 0 past the row's end
    packed = test.view(np.uint64)
    for block in range(0, num_rows, ROW_BLOCK):
        block_finite, block_squares, excess = _block_sums(flat[block * width:block * width + span], low32)
        finite += block_finite
        squares += block_squares
        if not excess > _F32(0.0):
            continue
        for r in range(block, min(block + ROW_BLOCK, num_rows)):
            row = r * width
            values = flat[row:row + width]
            if width == 1:
                test[0] = values[0] > low32
            else:
                test[0] = (values[0] > low32) & (values[0] >= values[1])
                for j in range(1, width - 1):
                    v = values[j]
                    test[j] = (v > low32) & (v > values[j - 1]) & (v >= values[j + 1])
                v = values[width - 1]
                test[width - 1] = (v > low32) & (v > values[width - 2])
            for w in range(words):
                if packed[w]:
                    for j in range(8 * w, 8 * w + 8):
                        cand[n] = row + j  # kept when n moves on (cand has 8 spare values)
                        n += test[j]
    if not finite == 0.0:
        return True, 0.0, cand[:0]
    return False, math.sqrt(2.0 * squares / flat.size), cand[:n]


@numba.njit(**_NOGIL)
def _cell(flat, p, pos, step, size, stride):
    """The value ``step`` cells from flat index ``p`` along an axis (``pos``: p's position on it,
    ``size`` cells, ``stride`` the flat distance of one cell); -inf outside the map, as in the
    padded maps of the numpy steps (``find_peaks.pad_maps``).
    """
    q = pos + step
    return flat[p + step * stride] if 0 <= q < size else _F32(-np.inf)




@numba.njit(**_NOGIL)
def find_peaks(flat, channels, height, width, radius, threshold, max_count, cand):
    """As :func:`.find_peaks.find_peaks` on cmap (flat float32[C * H * W], not padded: the border is
    handled here): int64[M] flat indices into cmap (ascending), int64[C] counts. cand: int64[K]
    ascending, the cells above a threshold <= ``threshold`` that beat their row neighbours
    (:func:`check_cmap`): the peaks are among them.
    """
    plane = height * width
    out = np.empty(1024, np.int64)
    n = 0
    counts = np.zeros(channels, np.int64)
    thr = _F32(threshold)
    last = flat.size - 1
    column = np.empty(cand.size, np.int64)  # the candidates that also beat the cells above and below
    m = 0
    for p in cand:  # without a branch (about one candidate in five is kept)
        v = flat[p]
        i = (p % plane) // width
        column[m] = p  # kept when m moves on
        m += ((v > thr) & ((i == 0) | (v > flat[max(p - width, 0)]))
              & ((i + 1 == height) | (v >= flat[min(p + width, last)])))
    for p in column[:m]:
        v = flat[p]
        c = p // plane
        i = (p % plane) // width
        col = (p % plane) % width
        peak = True
        for di in range(max(-radius, -i), min(radius, height - 1 - i) + 1):
            for dj in range(max(-radius, -col), min(radius, width - 1 - col) + 1):
                if abs(di) + abs(dj) > 1:
                    o = di * width + dj
                    if (v <= flat[p + o]) if o < 0 else (v < flat[p + o]):
                        peak = False
                        break
            if not peak:
                break
        if peak:
            if n == out.size:
                grown = np.empty(2 * n, np.int64)
                grown[:n] = out
                out = grown
            out[n] = p
            n += 1
            counts[c] += 1
    index = out[:n]
    if n and counts.max() > max_count:  # per part, the max_count highest (ties: lower index first)
        keep = np.ones(n, np.bool_)
        start = 0
        for c in range(channels):
            if counts[c] > max_count:
                values = np.empty(counts[c], np.float32)
                for k in range(counts[c]):
                    values[k] = -flat[index[start + k]]
                order = np.argsort(values, kind="mergesort")
                for k in order[max_count:]:
                    keep[start + k] = False
            start += counts[c]
        index = index[keep]
        counts = np.minimum(counts, max_count)
    return index, counts


@numba.njit(**_NOGIL)
def _floor_log(v):
    """float64 log of a float32 value floored at float32(1e-6) (numpy's ``log(maximum(v, 1e-6),
    dtype=float64)``).
    """
    return math.log(np.float64(max(v, _F32(1e-6))))


@numba.njit(**_NOGIL)
def refine_peaks(flat, height, width, index):
    """As :func:`.refine_peaks.refine_peaks` on cmap (flat, not padded; ``index`` into it): x, y
    float64[M], offset, curvature float64[M, 2].
    """
    m = index.size
    x, y = np.empty(m), np.empty(m)
    offset, curvature = np.empty((m, 2)), np.empty((m, 2))
    plane = height * width
    x_max = np.nextafter(float(width), 0.0)
    y_max = np.nextafter(float(height), 0.0)
    for k in range(m):
        p = index[k]
        row = (p % plane) // width
        col = (p % plane) % width
        peak = _floor_log(flat[p])  # the middle cell of both axes off the border
        for axis in range(2):
            pos, size, stride = (col, width, 1) if axis == 0 else (row, height, width)
            middle = int(pos == 0) - int(pos + 1 == size)  # the parabola's middle cell, off the border
            f0 = _floor_log(_cell(flat, p, pos, middle - 1, size, stride))
            f1 = peak if middle == 0 else _floor_log(_cell(flat, p, pos, middle, size, stride))
            f2 = _floor_log(_cell(flat, p, pos, middle + 1, size, stride))
            curv = f0 - 2.0 * f1 + f2
            off = (f0 - f2) / (2.0 * curv) if curv < 0.0 else 0.0
            off += middle
            offset[k, axis] = min(max(off, -0.5), 0.5)
            curvature[k, axis] = curv
        x[k] = min(col + (offset[k, 0] + 0.5), x_max)
        y[k] = min(row + (offset[k, 1] + 0.5), y_max)
    return x, y, offset, curvature


@numba.njit(**_NOGIL)
def _select(values, k):
    """The k-th smallest of ``values`` (float64[N], no NaN; 0 <= k < N; left unchanged): ``np.partition(
    values, k)[k]``. Quickselect whose partitions move every value without a branch (a branch per value
    would mispredict about every other time).
    """
    current, other = values.copy(), np.empty(values.size)
    low, high = 0, values.size  # the k-th smallest is among current[low:high]
    while True:
        pivot = current[low + (high - low) // 2]
        below = above = 0
        for i in range(low, high):  # below the pivot to the front, above it to the back of other
            v = current[i]
            other[low + below] = v  # kept when below moves on
            below += v < pivot
        for i in range(low, high):
            v = current[i]
            other[high - 1 - above] = v
            above += v > pivot
        if k < low + below:
            high = low + below
        elif k >= high - above:
            low = high - above
        else:  # equal to the pivot
            return pivot
        current, other = other, current


@numba.njit(**_NOGIL)
def measured_width(curvature, sigma):
    """As :func:`.hidden_peaks.measured_width`."""
    flat = curvature.ravel()
    negative = np.empty(flat.size)
    n = 0
    for v in flat:  # without a branch
        negative[n] = v
        n += v < 0.0
    if n == 0:
        return sigma
    return max(0.5 * sigma, 1.0 / math.sqrt(-_select(negative[:n], n // 2)))


@numba.njit(**_NOGIL)
def hidden_peaks(flat, map_h, map_w, index, x, y, offset, width, radius, margin, threshold, work):
    """As :func:`.hidden_peaks.hidden_peaks` on cmap (flat float32[C * map_h * map_w], not padded;
    ``index`` into it; ``work``: float32[map_h * map_w], all -inf, left so): hidden flat indices
    int64[K] ascending, x, y float64[K]. The parts are independent (a part's model holds only its
    own peaks' bumps), so they are taken one at a time with a buffer of one map, which stays in the
    cache. Window cells outside the map are skipped (in the padded maps of the numpy steps they are
    -inf: never a shoulder, and their residual is -inf).
    """
    plane = map_h * map_w
    two_var = 2.0 * width * width
    scale = _F32(1.0 / two_var)
    side = 2 * radius + 1
    margin32 = _F32(margin)
    thr32 = _F32(threshold)
    m = index.size
    cells = np.empty(m * side * side, np.int64)  # in-map indices of the window cells of one part
    shoulder = np.empty(m * side * side, np.int64)
    along_x = np.empty(side, np.float32)
    along_y = np.empty(side, np.float32)
    hidden = np.empty(m * side * side, np.int64)
    hx, hy = np.empty(hidden.size), np.empty(hidden.size)
    h = 0
    x_max = np.nextafter(float(map_w), 0.0)
    y_max = np.nextafter(float(map_h), 0.0)
    limit = 0.25 * width * width
    values = np.empty(9, np.float32)
    residual = np.empty(9, np.float32)
    away = np.empty(9, np.bool_)
    first = 0
    while first < m:
        part = index[first] // plane
        last = first
        while last < m and index[last] // plane == part:
            last += 1
        maps = flat[part * plane:(part + 1) * plane]
        # the model: work[cell] = max over the part's peaks of their bump, at the cells of the windows
        n = 0
        for k in range(first, last):
            cx = _F32(offset[k, 0]) * scale
            cy = _F32(offset[k, 1]) * scale
            cz = _F32(1.0) * scale
            centre = index[k] - part * plane
            height = max(maps[centre], _F32(1e-6))
            along_x[radius] = along_y[radius] = _F32(1.0)  # exp(+-0), exactly
            for d in range(-radius, radius + 1):  # the bump is separable: height * along_x[dj] * along_y[di]
                if d:
                    along_x[d + radius] = _F32(math.exp(cx * _F32(2.0 * d) + cz * _F32(-(d * d))))
                    along_y[d + radius] = _F32(math.exp(cy * _F32(2.0 * d) + cz * _F32(-(d * d))))
            row = centre // map_w
            col = centre % map_w
            for di in range(max(-radius, -row), min(radius, map_h - 1 - row) + 1):
                for dj in range(max(-radius, -col), min(radius, map_w - 1 - col) + 1):
                    b = height * along_y[di + radius] * along_x[dj + radius]
                    cell = centre + di * map_w + dj
                    cells[n] = cell
                    work[cell] = max(work[cell], b)
                    n += 1
        # shoulders: window cells whose residual exceeds margin (and threshold), unique, ascending
        s = 0
        above = threshold <= margin  # the margin is the higher floor: the threshold needs no test
        for t in range(n):  # without a branch (one in several cells is a shoulder)
            cell = cells[t]
            shoulder[s] = cell  # kept when s moves on
            s += (maps[cell] - work[cell] > margin32) & (above | (maps[cell] > thr32))
        for cell in np.unique(shoulder[:s]) if s else shoulder[:0]:
            row = cell // map_w
            col = cell % map_w
            for b in range(9):
                if not (0 <= row + b // 3 - 1 < map_h and 0 <= col + b % 3 - 1 < map_w):
                    values[b] = -np.inf  # outside the map
                    residual[b] = -np.inf
                    away[b] = False
                    continue
                around = cell + (b // 3 - 1) * map_w + (b % 3 - 1)
                values[b] = maps[around]
                explained = work[around]
                away[b] = explained == -np.inf
                if away[b]:
                    explained = np.inf
                residual[b] = values[b] - explained
            peak = residual[4]
            top = True
            for b in range(4):
                if not peak > residual[b]:
                    top = False
            for b in range(5, 9):
                if not peak >= residual[b]:
                    top = False
            if not top:
                continue
            mu = np.zeros(2)
            for axis in range(2):  # slopes: x from cells 3->4 and 4->5, y from 1->4 and 4->7
                lows = (3, 4) if axis == 0 else (1, 4)
                highs = (4, 5) if axis == 0 else (4, 7)
                sides = (3, 5) if axis == 0 else (1, 7)
                total = 0.0
                used = 0
                for e in range(2):
                    slope = _floor_log(values[highs[e]]) - _floor_log(values[lows[e]])
                    slope += (-1.0 if e == 0 else 1.0) / two_var
                    use = residual[sides[e]] > _F32(margin / 3.0) or (away[sides[e]] and values[sides[e]] > 0.0)
                    if use:
                        total += slope
                        used += 1
                    else:
                        total += slope * 0.0
                value = total * (0.5 * two_var) / max(used, 1)
                mu[axis] = 0.0 if abs(value) > 1.5 else value
            px = min(max((col + mu[0]) + 0.5, 0.0), x_max)
            py = min(max((row + mu[1]) + 0.5, 0.0), y_max)
            far = True
            for k in range(first, last):
                dx, dy = px - x[k], py - y[k]
                if dx * dx + dy * dy < limit:
                    far = False
            if far:
                hidden[h], hx[h], hy[h] = part * plane + cell, px, py
                h += 1
        for t in range(n):  # leave the buffer all -inf for the next part and call
            work[cells[t]] = -np.inf
        first = last
    return hidden[:h], hx[:h], hy[:h]


@numba.njit(**_NOGIL)
def _direction(fx, fy, ux, uy, floor):
    """float32 f . u / max(|f|, floor)."""
    value = fx * ux + fy * uy
    return value / max(np.sqrt(fx * fx + fy * fy), floor)


@numba.njit(**_NOGIL)
def paf_score_graph(paf, links, counts, x, y, t_s, weight, sample_threshold, min_sample_fraction,
                    link_threshold, paf_floor):
    """As :func:`.paf_score_graph.paf_score_graph`: link, a, b int64[T], score float64[T], and whether
    a sampled cell of paf holds NaN/Inf (the cells it reads: see the reference). t_s: float32[S + 1] the samples'
    t, then 0.5; weight: float32[S] (``paf_score_graph.sample_weights``).
    """
    num_samples = weight.size
    _, height, width = paf.shape
    field = paf.reshape(-1)
    plane = height * width
    starts = np.cumsum(counts) - counts
    xs = np.empty(x.size, np.float32)
    ys = np.empty(y.size, np.float32)
    x_cap, y_cap = _F32(width - 1e-3), _F32(height - 1e-3)
    for k in range(x.size):
        xs[k] = min(_F32(x[k]), x_cap)
        ys[k] = min(_F32(y[k]), y_cap)
    floor, thr = _F32(paf_floor), _F32(sample_threshold)
    values = np.empty(num_samples, np.float32)
    order = np.empty(num_samples, np.int64)  # 0, S - 1, 1, S - 2, ... (paf_score_graph.sample_order)
    for s in range(num_samples):
        order[s] = s // 2 if s % 2 == 0 else num_samples - 1 - s // 2
    allowed = -1  # the most samples that may fail to follow a kept pair (paf_score_graph.allowed_misses)
    while allowed < num_samples and (num_samples - allowed - 1) / num_samples >= min_sample_fraction:
        allowed += 1
    # the midpoint screen: a value is at most |f| / paf_floor (|f| < paf_floor) or the cosine between f
    # and the pair, so it cannot exceed a threshold > 0 where |f| < threshold * paf_floor or f points
    # away from the pair; 0.999 and 1e-4 keep float32 rounding (relative 1e-7) on the safe side
    screen = sample_threshold > 1e-4
    weak = _F32((0.999 * sample_threshold * paf_floor) ** 2) if screen else _F32(0.0)
    half = _F32(0.5 * height)
    total = 0
    for k in range(links.shape[0]):
        total += counts[links[k, 0]] * counts[links[k, 1]]
    out_link = np.empty(total, np.int64)
    out_a = np.empty(total, np.int64)
    out_b = np.empty(total, np.int64)
    out_score = np.empty(total)
    n = 0
    # NaN/Inf where read: midpoints flag bad, samples add v - v to finite (NaN once one is NaN/Inf)
    bad = False
    finite = _F32(0.0)
    half_t = t_s[num_samples]
    follow = np.empty(counts.max(), np.int64)
    sampled = np.empty(num_samples, np.float32)  # v - v of each sample of a pair
    for k in range(links.shape[0]):
        pa, pb = links[k, 0], links[k, 1]
        base = k * 2 * plane
        first_b = starts[pb]
        for a in range(starts[pa], starts[pa] + counts[pa]):
            ax, ay = xs[a], ys[a]
            # the midpoints of a's pairs first, without a branch (a branch per pair would be mispredicted
            # about one time in three): ``follow`` lists the pairs whose midpoint may follow the link;
            # no square root or division for the others, whose midpoint's value is surely <= thr
            m = 0
            for j in range(counts[pb]):
                dx, dy = xs[first_b + j] - ax, ys[first_b + j] - ay
                mid = base + int(ay + half_t * dy) * width + int(ax + half_t * dx)
                fy, fx = field[mid], field[mid + plane]
                bad |= (fy - fy) + (fx - fx) != _F32(0.0)
                follow[m] = j  # kept when m moves on
                m += (not screen) | ((fx * fx + fy * fy >= weak) & (fx * dx + fy * dy > _F32(0.0)))
            for i in range(m):
                j = follow[i]
                b = first_b + j
                dx, dy = xs[b] - ax, ys[b] - ay
                mid = base + int(ay + half_t * dy) * width + int(ax + half_t * dx)
                length = np.sqrt(dx * dx + dy * dy)
                safe = max(length, _F32(1e-6))
                ux, uy = dx / safe, dy / safe
                if not _direction(field[mid + plane], field[mid], ux, uy, floor) > thr:
                    continue
                for s in range(num_samples):  # every sample, without a branch, ...
                    cell = base + int(ay + t_s[s] * dy) * width + int(ax + t_s[s] * dx)
                    fy, fx = field[cell], field[cell + plane]
                    sampled[s] = (fy - fy) + (fx - fx)
                    values[s] = _direction(fx, fy, ux, uy, floor)
                misses = 0
                nonfinite = _F32(0.0)
                for s in range(num_samples):  # ... then the misses, without a branch
                    misses += not values[s] > thr
                    nonfinite += sampled[s]
                # a NaN/Inf sample: the reference reads the samples both ends first, up to too many
                # misses, and only those count (elsewhere the order changes nothing: the pair is kept
                # when at most ``allowed`` samples miss, and every v - v is 0)
                if not nonfinite == _F32(0.0):
                    misses = 0
                    for s in order:
                        finite += sampled[s]
                        if not values[s] > thr:
                            misses += 1
                            if misses > allowed:  # too few samples can follow: the pair is not kept
                                break
                if misses > allowed:
                    continue
                score = 0.0  # in sample order, as numpy's reduction over the samples axis
                for s in range(num_samples):
                    score += float(values[s] * weight[s])
                score -= float(max(_F32(0.0), length / half - _F32(1.0)))
                if score > link_threshold:
                    out_link[n], out_a[n], out_b[n], out_score[n] = k, a, b, score
                    n += 1
    return out_link[:n], out_a[:n], out_b[:n], out_score[:n], bad or not finite == 0.0


@numba.njit(**_NOGIL)
def assignment_blocks(link, a, b, num_peaks, block_rows):
    """The matrices of :func:`.assignment.assignment`, which depend on the candidates, not on their
    scores: row_of, col_of int64[T], the matrix row and column of each candidate that shares a peak with
    another candidate of its link (rows: the (link, peak a) of those candidates, ascending; columns
    alike), -1 for the others (kept without the solver); bounds int64[B + 1, 3], the first (candidate,
    row, column) of each of the B solver blocks of consecutive links (cut at a link's end once a
    block reaches ``block_rows`` rows), then (T, rows, columns). Candidates are grouped by link,
    ascending (:func:`paf_score_graph`), so a block's candidates are consecutive.
    """
    t_total = link.size
    row_of = np.full(t_total, -1, np.int64)
    col_of = np.full(t_total, -1, np.int64)
    if t_total == 0:
        return row_of, col_of, np.zeros((1, 3), np.int64)
    num_links = link.max() + 1
    count_a = np.zeros(num_peaks, np.int64)
    count_b = np.zeros(num_peaks, np.int64)
    rows = np.full(num_peaks, -1, np.int64)  # -1 again after each link
    cols = np.full(num_peaks, -1, np.int64)
    link_rows = np.zeros(num_links, np.int64)
    link_cols = np.zeros(num_links, np.int64)
    link_end = np.zeros(num_links, np.int64)  # the first candidate after link k
    used_rows = used_cols = 0
    start = 0
    while start < t_total:  # candidates are grouped by link
        end = start
        while end < t_total and link[end] == link[start]:
            end += 1
        link_end[link[start]] = end
        for t in range(start, end):
            count_a[a[t]] += 1
            count_b[b[t]] += 1
        n_rows = n_cols = 0
        low_a, high_a, low_b, high_b = num_peaks, -1, num_peaks, -1  # the range of the shared peaks
        for t in range(start, end):  # without a branch (most candidates share a peak, not all)
            shared = (count_a[a[t]] > 1) | (count_b[b[t]] > 1)
            low_a, high_a = min(low_a, a[t] if shared else num_peaks), max(high_a, a[t] if shared else -1)
            low_b, high_b = min(low_b, b[t] if shared else num_peaks), max(high_b, b[t] if shared else -1)
            new_row = shared & (rows[a[t]] < 0)  # rows, cols: -1, or 0 once marked
            rows[a[t]] += new_row
            n_rows += new_row
            new_col = shared & (cols[b[t]] < 0)
            cols[b[t]] += new_col
            n_cols += new_col
        if n_rows:
            r, c = used_rows, used_cols
            for q in range(low_a, high_a + 1):  # number the shared peaks in ascending order
                marked = rows[q] >= 0
                rows[q] = r if marked else -1
                r += marked
            for q in range(low_b, high_b + 1):
                marked = cols[q] >= 0
                cols[q] = c if marked else -1
                c += marked
            for t in range(start, end):  # -1 where t shares no peak (nor its peaks with any other)
                row_of[t] = rows[a[t]]
                col_of[t] = cols[b[t]]
            link_rows[link[start]] = n_rows
            link_cols[link[start]] = n_cols
            used_rows += n_rows
            used_cols += n_cols
        for t in range(start, end):
            count_a[a[t]] = 0
            count_b[b[t]] = 0
            rows[a[t]] = -1
            cols[b[t]] = -1
        start = end
    if used_rows == 0:
        return row_of, col_of, np.full((1, 3), t_total, np.int64)
    return row_of, col_of, _block_bounds(link_end, link_rows, link_cols, block_rows)


@numba.njit(**_NOGIL)
def _block_bounds(link_end, link_rows, link_cols, block_rows):
    """The solver blocks of a matrix whose rows and columns are those of consecutive links in turn:
    int64[B + 1, 3], the first (candidate, row, column) of each of the B blocks (cut at a link's end
    once a block reaches ``block_rows`` rows), then (T, rows, columns). link_end int64[L]: the first
    candidate after link k, 0 for a link without candidates (changed in place: such a link ends where
    the link before it does); link_rows, link_cols int64[L]: link k's rows and columns in the matrix.
    """
    num_links = link_end.size
    for k in range(1, num_links):
        link_end[k] = max(link_end[k], link_end[k - 1])
    used_rows, used_cols = link_rows.sum(), link_cols.sum()
    bounds = np.zeros((num_links + 1, 3), np.int64)
    blocks = 1
    if used_rows > block_rows:
        end_r = end_c = 0
        for k in range(num_links - 1):
            end_r += link_rows[k]
            end_c += link_cols[k]
            if end_r - bounds[blocks - 1, 1] >= block_rows:
                bounds[blocks, 0], bounds[blocks, 1], bounds[blocks, 2] = link_end[k], end_r, end_c
                blocks += 1
    bounds[blocks, 0], bounds[blocks, 1], bounds[blocks, 2] = link_end[num_links - 1], used_rows, used_cols
    return bounds[:blocks + 1]


@numba.njit(**_NOGIL)
def _row_minima_match(cost, col4row, taken):
    """Whether each row of ``cost`` (float64[R, C], R <= C, each row's minimum negative) has a single
    lowest entry, in a column of its own; then col4row[:R] (int64) holds those columns: the sum of the
    row minima bounds every assignment's total from below, and any other assignment gives some row a
    higher cost, so this is the only optimal one, which scipy's solver would return too. taken:
    int64 scratch of at least C values.
    """
    rows, cols = cost.shape
    taken[:cols] = 0
    unique = True
    for i in range(rows):
        best, at, ties = 0.0, 0, 0
        for j in range(cols):  # without a branch
            value = cost[i, j]
            lower = value < best
            ties = 0 if lower else ties + (value == best)
            at = j if lower else at
            best = value if lower else best
        col4row[i] = at
        unique &= (ties == 0) & (taken[at] == 0)
        taken[at] = 1
    return unique


@numba.njit(**_NOGIL)
def solve_blocks(score, row_of, col_of, bounds, chosen):
    """The per-link maximum-score matching (:func:`.assignment.assignment`) on the matrices of
    :func:`assignment_blocks`, with scipy's solver (:func:`~trt_perception.core.lsap_kernel.assign_rows`,
    on buffers allocated once per call) on the same blocks, so that ties are broken alike (a block
    whose rows each have a single best pair, in a column of its own, takes them without the solver:
    the only maximum, :func:`_row_minima_match`): sets ``chosen`` (bool[T]) of the candidates that
    share a peak; returns whether any of them changed.
    """
    changed = False
    before = chosen.copy()
    size = longest = 0
    for k in range(bounds.shape[0] - 1):
        rows, cols = bounds[k + 1, 1] - bounds[k, 1], bounds[k + 1, 2] - bounds[k, 2]
        size, longest = max(size, rows * cols), max(longest, rows, cols)
    # a block's cost matrix (scipy's maximize: the negated weights; a taller one transposed, as scipy
    # does) and the candidate at each entry (-1: none)
    matrix = np.empty(size)
    member = np.empty(size, np.int64)
    col4row = np.empty(longest, np.int64)
    work = np.empty(5 * longest, np.int64)
    values = np.empty(3 * longest)
    for k in range(bounds.shape[0] - 1):
        t0, t1 = bounds[k, 0], bounds[k + 1, 0]
        r0, c0 = bounds[k, 1], bounds[k, 2]
        rows, cols = bounds[k + 1, 1] - r0, bounds[k + 1, 2] - c0
        transpose = cols < rows
        shape = (cols, rows) if transpose else (rows, cols)
        cost = matrix[:rows * cols].reshape(shape)
        at = member[:rows * cols].reshape(shape)
        cost[:] = 0.0
        at[:] = -1
        for t in range(t0, t1):
            if row_of[t] >= 0:
                i, j = row_of[t] - r0, col_of[t] - c0
                if transpose:
                    i, j = j, i
                cost[i, j] = -score[t]
                at[i, j] = t
                chosen[t] = False
        if not _row_minima_match(cost, col4row, work):
            assign_rows(cost, col4row, work, values)
        for i in range(shape[0]):
            t = at[i, col4row[i]]
            if t >= 0:
                chosen[t] = True
    for t in range(chosen.size):
        changed |= chosen[t] != before[t]
    return changed


@numba.njit(**_NOGIL)
def solve_again(link, row_of, col_of, weights, score, chosen, block_rows):
    """The assignment solved again with ``weights`` (float64[T]) from ``chosen`` (bool[T], set in place),
    solved with ``score`` on the matrices ``row_of``, ``col_of`` of :func:`assignment_blocks`: as
    :func:`.assignment.assignment` with ``previous``, only the links holding a candidate that shares a
    peak and whose weight rose, or that was chosen and whose weight changed, are solved again, on a
    matrix of those links alone (their rows and columns renumbered in order, cut into blocks as
    :func:`assignment_blocks` does); the others keep their choice. Returns whether a choice changed.
    """
    t_total = link.size
    if t_total == 0:
        return False
    num_links = link.max() + 1
    stale = np.zeros(num_links, np.bool_)
    first_row = np.full(num_links, t_total, np.int64)  # a link's rows (columns) are consecutive
    end_row = np.zeros(num_links, np.int64)
    first_col = np.full(num_links, t_total, np.int64)
    end_col = np.zeros(num_links, np.int64)
    link_end = np.zeros(num_links, np.int64)  # the first candidate after link k
    for t in range(t_total):
        k = link[t]
        link_end[k] = t + 1
        if row_of[t] >= 0:
            first_row[k], end_row[k] = min(first_row[k], row_of[t]), max(end_row[k], row_of[t] + 1)
            first_col[k], end_col[k] = min(first_col[k], col_of[t]), max(end_col[k], col_of[t] + 1)
            stale[k] |= weights[t] > score[t] or (chosen[t] and weights[t] != score[t])
    shift_row = np.zeros(num_links, np.int64)  # new row = old row - shift_row[link]
    shift_col = np.zeros(num_links, np.int64)
    link_rows = np.zeros(num_links, np.int64)  # the rows (columns) of the stale links in the new matrix
    link_cols = np.zeros(num_links, np.int64)
    used_rows = used_cols = 0
    for k in range(num_links):
        if stale[k]:
            shift_row[k], shift_col[k] = first_row[k] - used_rows, first_col[k] - used_cols
            link_rows[k], link_cols[k] = end_row[k] - first_row[k], end_col[k] - first_col[k]
            used_rows += link_rows[k]
            used_cols += link_cols[k]
    if used_rows == 0:
        return False
    new_row_of = np.full(t_total, -1, np.int64)
    new_col_of = np.full(t_total, -1, np.int64)
    for t in range(t_total):
        if row_of[t] >= 0 and stale[link[t]]:
            new_row_of[t], new_col_of[t] = row_of[t] - shift_row[link[t]], col_of[t] - shift_col[link[t]]
    return solve_blocks(weights, new_row_of, new_col_of, _block_bounds(link_end, link_rows, link_cols, block_rows),
                        chosen)


@numba.njit(**_NOGIL)
def _order_descending(values):
    """int64[N]: the indices of ``values`` (float64[N], finite) by descending value, ties in index order:
    numpy's stable argsort of -values. A bucket sort: the values go, in index order, to N buckets by
    their place between the lowest and highest (a monotone map, so equal values share a bucket and no
    value passes one of another bucket), then an insertion sort orders each bucket (about one value
    each for spread values such as scores). Few branches depend on the values, unlike numba's
    mergesort, whose comparisons of random scores mispredict about every other time.
    """
    n = values.size
    order = np.empty(n, np.int64)
    if n == 0:
        return order
    low, high = 0.5 * values.min(), 0.5 * values.max()  # halves: their difference cannot overflow
    scale = (n - 1) / (high - low) if high > low else 0.0
    if not scale < np.inf:  # values too close to tell apart by scaling: one bucket
        scale = 0.0
    bucket = np.empty(n, np.int64)
    start = np.zeros(n + 1, np.int64)
    for i in range(n):  # bucket 0: the highest values
        bucket[i] = n - 1 - min(int((0.5 * values[i] - low) * scale), n - 1)
        start[bucket[i] + 1] += 1
    for k in range(n):
        start[k + 1] += start[k]
    for i in range(n):
        order[start[bucket[i]]] = i
        start[bucket[i]] += 1
    for i in range(1, n):  # a value moves only within its bucket
        t = order[i]
        v = values[t]
        j = i
        while j > 0 and values[order[j - 1]] < v:
            order[j] = order[j - 1]
            j -= 1
        order[j] = t
    return order


@numba.njit(**_NOGIL)
def connect_parts(part, a, b, by_score, chosen):
    """As :func:`.connect_parts.connect_parts`: int64[M] group of each peak, numbered 0..G-1. by_score:
    int64[T] the candidates by descending score, ties in index order (a stable sort: the chosen ones
    come in the reference's order).
    """
    num_peaks = part.size
    parent = np.arange(num_peaks)
    parts = np.empty(num_peaks, np.int64)
    for q in range(num_peaks):
        parts[q] = np.int64(1) << part[q]
    for t in by_score:
        if not chosen[t]:
            continue
        ra, rb = a[t], b[t]
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra != rb and not parts[ra] & parts[rb]:
            parent[ra] = rb
            parts[rb] |= parts[ra]
    number = np.full(num_peaks, -1, np.int64)
    groups = 0
    for q in range(num_peaks):
        if parent[q] == q:
            number[q] = groups
            groups += 1
    group = np.empty(num_peaks, np.int64)
    for q in range(num_peaks):
        r = q
        while parent[r] != r:
            r = parent[r]
        group[q] = number[r]
    return group


@numba.njit(**_NOGIL)
def _median(values):
    """The median of ``values`` (float64[N], N >= 1, no NaN; sorted in place when N > 32): the mean of
    the two middle values of the sorted values. Up to 32 values, each value's rank in the sorted
    order (values below it, and equal ones before it) is counted without a branch, instead of
    sorting with comparisons that mispredict (most buckets of :func:`_group_medians` hold a few).
    """
    n = values.size
    if n > 32:
        values.sort()
        return (values[(n - 1) // 2] + values[n // 2]) / 2.0
    low = high = 0.0
    for i in range(n):
        v = values[i]
        rank = 0
        for j in range(n):
            rank += (values[j] < v) | ((values[j] == v) & (j < i))
        low = v if rank == (n - 1) // 2 else low
        high = v if rank == n // 2 else high
    return (low + high) / 2.0


@numba.njit(**_NOGIL)
def _group_medians(key, value, size):
    """As :func:`.limb_lengths.group_medians`: float64[size] median of value per key, NaN where none
    (the values bucketed by key, the median of each bucket).
    """
    count = np.zeros(size + 1, np.int64)
    for q in range(key.size):
        count[key[q] + 1] += 1
    for k in range(size):
        count[k + 1] += count[k]  # count[k]: start of key k's bucket
    bucket = np.empty(key.size)
    fill = count[:size].copy()
    for q in range(key.size):
        bucket[fill[key[q]]] = value[q]
        fill[key[q]] += 1
    out = np.full(size, np.nan)
    for k in range(size):
        start, n = count[k], count[k + 1] - count[k]
        if n:
            out[k] = _median(bucket[start:start + n])
    return out


@numba.njit(**_NOGIL)
def length_weights(link, a, b, score, chosen, group, x, y, num_links, length_weight, length_tolerance):
    """As :func:`.limb_lengths.length_weights`: float64[T] assignment weights from the limb lengths."""
    t_total = link.size
    log_length = np.empty(t_total)
    joined = np.zeros(t_total, np.bool_)
    for t in range(t_total):
        log_length[t] = np.log(max(np.hypot(x[b[t]] - x[a[t]], y[b[t]] - y[a[t]]), 1e-3))
        joined[t] = chosen[t] and group[a[t]] == group[b[t]]
    members = np.flatnonzero(joined)
    typical = _group_medians(link[members], log_length[members], num_links)
    relative = np.empty(t_total)
    for t in range(t_total):
        relative[t] = log_length[t] - typical[link[t]]
    scale = _group_medians(group[a[members]], relative[members], group.max() + 1)
    weights = np.empty(t_total)
    for t in range(t_total):
        person_scale = scale[group[a[t]]]
        if np.isnan(person_scale):
            person_scale = scale[group[b[t]]]
        deviation = abs(relative[t] - person_scale)
        if np.isnan(deviation):
            deviation = 0.0
        weights[t] = max(score[t] - length_weight * max(deviation - length_tolerance, 0.0), 1e-6)
    return weights


@numba.njit(**_NOGIL)
def parse(cmap, paf, links, fparams, iparams, t_s, weight, work, cand):
    """The whole decoder for one image (see :class:`~trt_perception.core.decode.pose.PoseParser`).

    cmap float32[C, H, W], paf float32[2L, H, W] (C-contiguous), links int64[L, 2]; fparams,
    iparams, t_s, weight from ``compiled.pack_params``; work: float32[H * W], all -inf (left so);
    cand: int64 scratch of at least C * H * ceil(W / 2) + 8 values.
    Flat peak indices are into cmap, not into padded maps as in the numpy steps (the same order).
    Returns (whether cmap, or a sampled cell of paf, holds NaN/Inf values; when so, the rest is
    empty), keypoints float64[O, C, 3], scores float64[O], links bool[O, L].
    """
    channels, height, width = cmap.shape
    num_links = links.shape[0]
    bad, noise, found = check_cmap(cmap, fparams[P_THRESHOLD], cand)
    empty = (np.zeros((0, channels, 3)), np.zeros(0), np.zeros((0, num_links), np.bool_))
    if bad:
        return True, empty[0], empty[1], empty[2]
    threshold, margin = fparams[P_THRESHOLD], fparams[P_HIDDEN_MARGIN]
    if fparams[P_NOISE_FACTOR] > 0.0:
        floor = fparams[P_NOISE_FACTOR] * noise
        threshold, margin = max(threshold, floor), max(margin, floor)
    flat = cmap.reshape(-1)
    index, counts = find_peaks(flat, channels, height, width, iparams[I_RADIUS], threshold,
                               iparams[I_MAX_PEAKS], found)
    if index.size == 0:  # nothing to sample in paf
        return False, empty[0], empty[1], empty[2]
    x, y, offset, curvature = refine_peaks(flat, height, width, index)
    sigma = fparams[P_SIGMA]
    if sigma > 0.0 and counts.max() > 1:
        hidden, hx, hy = hidden_peaks(flat, height, width, index, x, y, offset,
                                      measured_width(curvature, sigma), iparams[I_HIDDEN_RADIUS],
                                      margin, threshold, work)
        if hidden.size:
            everything = np.concatenate((index, hidden))
            order = np.argsort(everything, kind="mergesort")
            index = everything[order]
            x = np.concatenate((x, hx))[order]
            y = np.concatenate((y, hy))[order]
    plane = height * width
    part = index // plane
    counts = np.bincount(part, minlength=channels)
    value = np.empty(index.size)
    for q in range(index.size):
        value[q] = flat[index[q]]
    link, a, b, score, bad = paf_score_graph(paf, links, counts, x, y, t_s, weight,
                                             fparams[P_SAMPLE_THRESHOLD], fparams[P_MIN_SAMPLE_FRACTION],
                                             fparams[P_LINK_THRESHOLD], fparams[P_PAF_FLOOR])
    if bad:
        return True, empty[0], empty[1], empty[2]
    row_of, col_of, bounds = assignment_blocks(link, a, b, index.size, iparams[I_BLOCK_ROWS])
    chosen = row_of < 0
    solve_blocks(score, row_of, col_of, bounds, chosen)
    by_score = _order_descending(score)  # both assemblies take the chosen pairs in this order
    group = connect_parts(part, a, b, by_score, chosen)
    if fparams[P_LENGTH_WEIGHT] > 0.0:  # again, with weights from the limb lengths of the first assembly
        weights = length_weights(link, a, b, score, chosen, group, x, y, num_links, fparams[P_LENGTH_WEIGHT],
                                 fparams[P_LENGTH_TOLERANCE])
        # only the links where a chosen pair's weight is below its score are solved again; where no
        # choice changes, the assembly is the first one (connect_parts reads the scores and the choice only)
        if solve_again(link, row_of, col_of, weights, score, chosen, iparams[I_BLOCK_ROWS]):
            group = connect_parts(part, a, b, by_score, chosen)

    num_groups = group.max() + 1
    size = np.zeros(num_groups, np.int64)
    keypoint_sum = np.zeros(num_groups)
    for q in range(index.size):
        size[group[q]] += 1
        keypoint_sum[group[q]] += value[q]
    link_count = np.zeros(num_groups, np.int64)
    link_sum = np.zeros(num_groups)
    for t in range(link.size):
        g = group[a[t]]
        if g == group[b[t]]:
            link_sum[g] += score[t]
            link_count[g] += 1
    person_score = (keypoint_sum + link_sum) / (size + link_count)
    kept = np.flatnonzero((size >= iparams[I_MIN_PARTS]) & (person_score >= fparams[P_MIN_SCORE]))
    kept = kept[_order_descending(person_score[kept])[:iparams[I_MAX_PEOPLE]]]
    row = np.full(num_groups, -1, np.int64)
    for r in range(kept.size):
        row[kept[r]] = r
    keypoints = np.zeros((kept.size, channels, 3))
    keypoints[:, :, :2] = np.nan
    for q in range(index.size):
        r = row[group[q]]
        if r >= 0:
            keypoints[r, part[q], 0] = x[q]
            keypoints[r, part[q], 1] = y[q]
            keypoints[r, part[q], 2] = value[q]
    out_links = np.zeros((kept.size, num_links), np.bool_)
    for t in range(link.size):
        g = group[a[t]]
        if g == group[b[t]] and row[g] >= 0:
            out_links[row[g], link[t]] = True
    return False, keypoints, person_score[kept], out_links
