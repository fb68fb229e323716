"""Greedy NMS on hand-made boxes and against a loop implementation on random boxes."""

from __future__ import annotations

import numpy as np
import pytest

from trt_perception.core.decode.ssd.nms import nms

# IoU of A and B: intersection 8x10 = 80, union 100 + 100 - 80 = 120 -> 0.667
A = [0, 0, 10, 10]
B = [2, 0, 12, 10]
FAR = [50, 50, 60, 60]


@pytest.mark.parametrize("threshold, expected", [(0.6, [1, 2]), (0.7, [1, 0, 2]), (1.0, [1, 0, 2])])
def test_suppression_threshold(threshold: float, expected: list) -> None:
    boxes = np.array([A, B, FAR], np.float32)
    scores = np.array([0.8, 0.9, 0.5], np.float32)
    assert nms(boxes, scores, threshold).tolist() == expected


def test_classes_do_not_suppress_each_other() -> None:
    boxes = np.array([A, B], np.float32)
    scores = np.array([0.8, 0.9], np.float32)
    assert nms(boxes, scores, 0.5, np.array([1, 2])).tolist() == [1, 0]
    assert nms(boxes, scores, 0.5, np.array([2, 2])).tolist() == [1]


def test_ties_keep_the_lower_index_and_degenerate_boxes_survive() -> None:
    boxes = np.array([A, A, [5, 5, 5, 9], [5, 5, 5, 9]], np.float32)   # zero-area pair: IoU 0
    scores = np.array([0.7, 0.7, 0.6, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes[:1], scores[:1], 0.5).tolist() == [0]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _loop_nms(boxes, scores, threshold, classes):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(classes[i] != classes[k] or _iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(8))
def test_matches_loop_implementation_on_random_boxes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 120))
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(5, 40, size=(n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, size=n).astype(np.float32)
    classes = rng.integers(1, 4, size=n)
    threshold = float(rng.uniform(0.2, 0.8))
    b64 = boxes.astype(np.float64).tolist()
    assert nms(boxes, scores, threshold, classes).tolist() == _loop_nms(b64, scores.tolist(), threshold,
                                                                         classes.tolist())
    assert nms(boxes, scores, threshold).tolist() == _loop_nms(b64, scores.tolist(), threshold, [0] * n)
