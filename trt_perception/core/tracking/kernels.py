"""One :meth:`~trt_perception.core.tracking.Tracker.update` as a numba-compiled function: the same results
as the numpy modules, without their per-call overhead.

The numpy path (:mod:`.kalman`, :mod:`.association`, the bookkeeping of :mod:`.tracker`) is the
reference: a frame costs it about a hundred small numpy calls, this path one call, several times
less (benchmarks/results/tracker_cost.md). Every formula here is the reference's, operation for
operation in the same order and float64 arithmetic (no fastmath), so both give the same ids;
``test_tracking_kernels`` compares them frame by frame on random scenes. Only ``log`` may differ
in the last bit (numpy's vectorized log against libm's), which moves a cost by 1e-16, far below
any difference between two real pairs.

:func:`~trt_perception.core.lsap_kernel.lsap` is scipy's ``linear_sum_assignment`` ported with its
tie-breaking (shared with the pose decoder's kernels), so that the assignment is scipy's also where
several are optimal.

Arguments shared by the functions (N tracks, K detections):

* state: mean float64[N, 8], cov float64[N, 4, 3] (:mod:`.kalman`), ids int64[N] (0: unconfirmed),
  hits int64[N], last_seen int64[N] (ns), cls int64[N];
* detections: boxes float64[K, 4] xyxy, scores float64[K], class_ids int64[K];
* ``fparams`` float64[:], indexed by the ``F_*`` names: the thresholds (score thresholds already
  rounded to the detections' score dtype, as numpy compares a float32 array with a Python float)
  and the Kalman constants of :mod:`.kalman` (passed, not imported, so that the on-disk cache never
  holds stale constants); ``iparams`` int64[:], indexed by the ``I_*`` names.

Imported only through :mod:`.compiled`, which handles numba being absent; compiled functions are
cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from trt_perception.core.lsap_kernel import lsap

(F_HIGH, F_LOW, F_BIRTH, F_MATCH_IOU, F_LOW_MATCH_IOU, F_TENTATIVE_MATCH_IOU, F_MAX_LOST_NS,
 F_MEASUREMENT_STD, F_MIN_SIZE, F_CHI2) = range(10)
F_AXIS_ACCEL = 10     #: 4 values: kalman.AXIS_ACCEL
F_AXIS_INIT_V = 14    #: 4 values: kalman.AXIS_INIT_V
F_COUNT = 18
(I_MIN_HITS, I_MOTION_GATE) = range(2)

_JIT = dict(cache=True, nogil=True)


@numba.njit(**_JIT)
def _measurements(boxes):
    """float64[K, 4] xyxy -> (cx, cy, w, h), as :func:`.kalman.xyxy_to_cxcywh`."""
    z = np.empty_like(boxes)
    for k in range(boxes.shape[0]):
        z[k, 0] = (boxes[k, 0] + boxes[k, 2]) / 2.0
        z[k, 1] = (boxes[k, 1] + boxes[k, 3]) / 2.0
        z[k, 2] = boxes[k, 2] - boxes[k, 0]
        z[k, 3] = boxes[k, 3] - boxes[k, 1]
    return z


@numba.njit(**_JIT)
def _size(value, fparams):
    """np.maximum(value, kalman.MIN_SIZE)."""
    floor = fparams[F_MIN_SIZE]
    return value if value >= floor else floor


@numba.njit(**_JIT)
def _predict(mean, cov, dt, dt2, dt3_2, dt4_4, fparams):
    """:func:`.kalman.predict` (dt > 0) with dt2 = dt * dt, dt3_2 = dt ** 3 / 2, dt4_4 = dt ** 4 / 4."""
    for n in range(mean.shape[0]):
        h = _size(mean[n, 3], fparams)
        for a in range(4):
            sa = fparams[F_AXIS_ACCEL + a] * h
            q = sa * sa
            mean[n, a] += dt * mean[n, 4 + a]
            p_pp, p_pv, p_vv = cov[n, a, 0], cov[n, a, 1], cov[n, a, 2]
            cov[n, a, 0] = p_pp + (dt * (2.0 * p_pv + dt * p_vv) + q * dt4_4)
            cov[n, a, 1] = p_pv + (dt * p_vv + q * dt3_2)
            cov[n, a, 2] = p_vv + q * dt2


@numba.njit(**_JIT)
def _iou(mean, boxes, fparams):
    """:func:`.association.iou_matrix` of the tracks' boxes (:func:`.kalman.boxes_xyxy`) and the detections."""
    n_tracks, k_dets = mean.shape[0], boxes.shape[0]
    iou = np.empty((n_tracks, k_dets))
    for n in range(n_tracks):
        hw = _size(mean[n, 2], fparams) / 2.0
        hh = _size(mean[n, 3], fparams) / 2.0
        a0, a1, a2, a3 = mean[n, 0] - hw, mean[n, 1] - hh, mean[n, 0] + hw, mean[n, 1] + hh
        area_a = (a2 - a0) * (a3 - a1)
        for k in range(k_dets):
            b0, b1, b2, b3 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
            w = min(a2, b2) - max(a0, b0)
            h = min(a3, b3) - max(a1, b1)
            inter = max(w, 0.0) * max(h, 0.0)
            union = area_a + (b2 - b0) * (b3 - b1) - inter
            iou[n, k] = inter / max(union, 1e-12)
    return iou


@numba.njit(**_JIT)
def _motion_cost(mean, cov, meas, allowed, fparams):
    """Gate ``allowed`` in place and return the negative log-likelihood cost of ``Tracker._associate``."""
    chi2 = fparams[F_CHI2]
    n_tracks, k_dets = mean.shape[0], meas.shape[0]
    cost = np.empty((n_tracks, k_dets))
    s = np.empty(4)
    for n in range(n_tracks):
        sr = fparams[F_MEASUREMENT_STD] * _size(mean[n, 3], fparams)
        r = sr * sr
        uncertainty = 0.0
        for a in range(4):
            s[a] = cov[n, a, 0] + r                 # innovation variance S, as kalman.innovation
            uncertainty += math.log(s[a] / r)
        uncertainty = min(uncertainty, chi2)
        for k in range(k_dets):
            d = 0.0
            for a in range(4):
                diff = meas[k, a] - mean[n, a]
                d += diff * diff / s[a]
            if not d <= chi2:
                allowed[n, k] = False
            cost[n, k] = (d + uncertainty) / (2.0 * chi2)
    return cost


@numba.njit(**_JIT)
def _match_stage(iou, cost, use_cost, allowed, tracks, dets, min_iou, owner, track_free):
    """:func:`.association.match` of the tracks ``tracks`` (int64, ascending) with the detections
    ``dets``; the pairs found set ``owner`` and clear ``track_free``.
    """
    limit = 1.0 if use_cost else 1.0 - min_iou
    sub = np.empty((tracks.size, dets.size))
    eligible = np.empty((tracks.size, dets.size), np.bool_)
    for a in range(tracks.size):
        i = tracks[a]
        for b in range(dets.size):
            j = dets[b]
            e = iou[i, j] >= min_iou and allowed[i, j]
            value = cost[i, j] if use_cost else 1.0 - iou[i, j]
            eligible[a, b] = e
            sub[a, b] = (value if value <= limit else limit) if e else limit
    rows, cols = lsap(sub)
    for p in range(rows.size):
        if eligible[rows[p], cols[p]]:
            owner[dets[cols[p]]] = tracks[rows[p]]
            track_free[tracks[rows[p]]] = False


@numba.njit(**_JIT)
def associate(mean, cov, ids, cls, boxes, scores, class_ids, fparams, iparams):
    """The track index of each detection, int64[K] (-1: none): ``Tracker._associate``."""
    n_tracks, k_dets = mean.shape[0], boxes.shape[0]
    owner = np.full(k_dets, -1, np.int64)
    if n_tracks == 0 or k_dets == 0:
        return owner
    allowed = np.empty((n_tracks, k_dets), np.bool_)
    for n in range(n_tracks):
        for k in range(k_dets):
            allowed[n, k] = cls[n] == class_ids[k]
    use_cost = iparams[I_MOTION_GATE] != 0
    cost = _motion_cost(mean, cov, _measurements(boxes), allowed, fparams) if use_cost else np.empty((0, 0))
    iou = _iou(mean, boxes, fparams)
    high = scores >= fparams[F_HIGH]
    low = ~high & (scores >= fparams[F_LOW])
    confirmed = ids > 0
    track_free = np.ones(n_tracks, np.bool_)
    for stage in range(3):
        if stage == 0:
            want_tracks, want_dets, min_iou = confirmed, high, fparams[F_MATCH_IOU]
        elif stage == 1:
            want_tracks, want_dets, min_iou = confirmed, low, fparams[F_LOW_MATCH_IOU]
        else:
            want_tracks, want_dets, min_iou = ~confirmed, high, fparams[F_TENTATIVE_MATCH_IOU]
        tracks = np.flatnonzero(want_tracks & track_free)
        dets = np.flatnonzero(want_dets & (owner < 0))
        if tracks.size and dets.size:
            _match_stage(iou, cost, use_cost, allowed, tracks, dets, min_iou, owner, track_free)
    return owner


@numba.njit(**_JIT)
def _correct(mean, cov, n, z, fparams):
    """:func:`.kalman.update` of track n with the measurement z float64[4]."""
    h = _size(mean[n, 3], fparams)
    sr = fparams[F_MEASUREMENT_STD] * h
    r = sr * sr
    for a in range(4):
        s = cov[n, a, 0] + r
        gain_p, gain_v = cov[n, a, 0] / s, cov[n, a, 1] / s
        residual = z[a] - mean[n, a]
        mean[n, a] += gain_p * residual
        mean[n, 4 + a] += gain_v * residual
        cov[n, a, 2] -= gain_v * cov[n, a, 1]
        cov[n, a, 1] *= 1.0 - gain_p
        cov[n, a, 0] *= 1.0 - gain_p


@numba.njit(**_JIT)
def step(mean, cov, ids, hits, last_seen, cls, next_id, boxes, scores, class_ids, stamp, dt, dt2, dt3_2,
         dt4_4, fparams, iparams):
    """One frame later than the last (``Tracker.update`` after the stamp checks): predict by dt
    seconds (not when dt <= 0), associate, correct, drop, give birth, confirm.

    The input state arrays may be changed in place. Returns (track_ids int64[K]: the id of each
    detection's track, 0: none or unconfirmed; keep bool[K]: the detections to publish, those
    scoring at least F_HIGH or continuing a track (``Tracker._published``); mean, cov, ids, hits,
    last_seen, cls: the new state; next_id; confirmed: ids given now).
    """
    n_tracks, k_dets = mean.shape[0], boxes.shape[0]
    if dt > 0.0 and n_tracks > 0:
        _predict(mean, cov, dt, dt2, dt3_2, dt4_4, fparams)
    owner = associate(mean, cov, ids, cls, boxes, scores, class_ids, fparams, iparams)
    meas = _measurements(boxes)
    hit = np.zeros(n_tracks, np.bool_)
    for k in range(k_dets):
        if owner[k] >= 0:
            _correct(mean, cov, owner[k], meas[k], fparams)
            hit[owner[k]] = True
            last_seen[owner[k]] = stamp
    max_lost_ns = fparams[F_MAX_LOST_NS]
    new_index = np.full(n_tracks, -1, np.int64)
    kept = 0
    for n in range(n_tracks):
        hits[n] = hits[n] + 1 if hit[n] else 0
        if (stamp - last_seen[n] <= max_lost_ns) if ids[n] > 0 else hit[n]:
            new_index[n] = kept
            kept += 1
    born = 0
    for k in range(k_dets):
        if owner[k] >= 0:
            owner[k] = new_index[owner[k]]
        elif scores[k] >= fparams[F_BIRTH]:
            owner[k] = kept + born
            born += 1
    total = kept + born
    out_mean, out_cov = np.zeros((total, 8)), np.zeros((total, 4, 3))
    out_ids, out_hits = np.zeros(total, np.int64), np.ones(total, np.int64)
    out_seen, out_cls = np.full(total, stamp, np.int64), np.zeros(total, np.int64)
    for n in range(n_tracks):
        m = new_index[n]
        if m >= 0:
            out_mean[m], out_cov[m] = mean[n], cov[n]
            out_ids[m], out_hits[m], out_seen[m], out_cls[m] = ids[n], hits[n], last_seen[n], cls[n]
    for k in range(k_dets):
        m = owner[k]
        if m >= kept:                                   # born: kalman.initiate
            h = _size(meas[k, 3], fparams)
            out_mean[m, :4] = meas[k]
            out_cls[m] = class_ids[k]
            for a in range(4):
                sp = 2.0 * fparams[F_MEASUREMENT_STD] * h
                sv = fparams[F_AXIS_INIT_V + a] * h
                out_cov[m, a, 0] = sp * sp
                out_cov[m, a, 2] = sv * sv
    confirmed = 0
    for m in range(total):
        if out_ids[m] == 0 and out_hits[m] >= iparams[I_MIN_HITS]:
            out_ids[m] = next_id
            next_id += 1
            confirmed += 1
    track_ids = np.zeros(k_dets, np.int64)
    keep = np.empty(k_dets, np.bool_)
    for k in range(k_dets):
        if owner[k] >= 0:
            track_ids[k] = out_ids[owner[k]]
        keep[k] = scores[k] >= fparams[F_HIGH] or owner[k] >= 0
    return track_ids, keep, out_mean, out_cov, out_ids, out_hits, out_seen, out_cls, next_id, confirmed
