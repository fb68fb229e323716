"""Matching tracks to detections by box overlap, in ByteTrack's stages.

N tracks, K detections; boxes are float[., 4] xyxy in source pixels. :func:`match` solves one
stage (scipy's ``linear_sum_assignment``); :func:`associate` chains the stages:

1. confirmed tracks (tracked or lost) with the high-score detections (score >= ``high_threshold``),
   IoU >= ``match_iou``;
2. confirmed tracks still unmatched with the low-score detections (``low_threshold`` <= score <
   ``high_threshold``), IoU >= ``low_match_iou``: a pedestrian half hidden behind another scores
   low but keeps its track. Lost tracks take part too (ByteTrack takes only those matched in the
   previous frame, so a track missed once cannot continue on a low score: on the ``target`` scenes
   of benchmarks/tracking_eval.py this raised IDF1 from 0.88 to 0.92);
3. tentative (unconfirmed) tracks with the high-score detections left, IoU >= ``tentative_match_iou``.

A pair is only allowed between the same class and, where a motion gate is given, within it. Each
stage maximizes the total IoU, or, where a cost is given (the tracker's Gaussian negative
log-likelihoods of the detections given the predicted boxes), minimizes it: two pedestrians
walking one behind the other overlap each other's boxes about as much as their own, and the
likelihood, which knows each track's size, velocity and certainty, tells them apart (on the
``target`` scenes of benchmarks/tracking_eval.py it halved the ID switches).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union float64[N, K] of boxes a float[N, 4] and b float[K, 4] (xyxy); 0 for
    a pair of empty boxes.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64).T
    w = np.minimum(a[:, 2:3], b[2]) - np.maximum(a[:, 0:1], b[0])
    h = np.minimum(a[:, 3:4], b[3]) - np.maximum(a[:, 1:2], b[1])
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou: np.ndarray = inter / np.maximum(union, 1e-12)
    return iou


def match(iou: np.ndarray, min_iou: float, allowed: Optional[np.ndarray] = None,
          cost: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one pairs (rows int[P], cols int[P]), rows ascending, among the eligible ones
    (IoU >= ``min_iou`` and ``allowed``, bool like ``iou``) of least total cost: ``1 - IoU``, or
    ``cost`` (float like ``iou``, in [0, 1] for eligible pairs) where given.

    Solved as an assignment in which an ineligible pair costs the cap (``1 - min_iou``, or 1 with
    ``cost``): what leaving both unmatched costs, so a poor pair never displaces a good one (the
    same optimum as ByteTrack's lapjv with ``cost_limit``).
    """
    if iou.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    eligible = iou >= min_iou
    if allowed is not None:
        eligible &= allowed
    limit = 1.0 - min_iou if cost is None else 1.0
    cost = np.where(eligible, np.minimum(1.0 - iou if cost is None else cost, limit), limit)
    rows, cols = linear_sum_assignment(cost)
    keep = eligible[rows, cols]
    return rows[keep], cols[keep]


def associate(track_boxes: np.ndarray, confirmed: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray,
              allowed: np.ndarray, cost: Optional[np.ndarray], high_threshold: float, low_threshold: float,
              match_iou: float, low_match_iou: float, tentative_match_iou: float) -> np.ndarray:
    """The track of each detection, int[K] (-1: none), by the stages of the module docstring.

    track_boxes: float[N, 4] predicted boxes; confirmed: bool[N]; det_boxes: float[K, 4];
    det_scores: float[K]; allowed: bool[N, K] pairs that may match (same class, within the motion
    gate); cost: float[N, K] in [0, 1] for allowed pairs, the cost each stage minimizes (None: 1 - IoU).
    Detections below ``low_threshold`` match nothing.
    """
    owner = np.full(len(det_scores), -1, np.intp)
    if len(track_boxes) == 0 or len(det_scores) == 0:
        return owner
    iou = iou_matrix(track_boxes, det_boxes)
    high = det_scores >= high_threshold
    low = ~high & (det_scores >= low_threshold)
    track_free = np.ones(len(track_boxes), bool)
    stages = [(confirmed, high, match_iou)]
    if low.any():
        stages.append((confirmed, low, low_match_iou))
    if not confirmed.all():
        stages.append((~confirmed, high, tentative_match_iou))
    for tracks, dets, min_iou in stages:
        t = np.flatnonzero(tracks & track_free)
        if t.size == 0:
            continue
        d = np.flatnonzero(dets & (owner < 0))
        if d.size == 0:
            continue
        if t.size == len(track_boxes) and d.size == len(det_scores):    # all of them: no copies
            rows, cols = match(iou, min_iou, allowed, cost)
        else:
            sub = np.ix_(t, d)
            rows, cols = match(iou[sub], min_iou, allowed[sub], None if cost is None else cost[sub])
        owner[d[cols]] = t[rows]
        track_free[t[rows]] = False
    return owner
