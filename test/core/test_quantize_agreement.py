"""Detection agreement between a reference (FP32) and a reduced-precision model, on hand-made boxes."""

import math

import numpy as np
import pytest

from trt_perception.core.tensorrt.agreement import DetectionAgreement, match_detections, pairwise_iou


def test_pairwise_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    iou = pairwise_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(50 / 150)  # overlap 5x10, union 100 + 100 - 50
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == 0.0
    assert np.all(iou[1] == 0.0)  # an empty box overlaps nothing


def test_matching_is_one_to_one_by_best_iou_and_class():
    ref = np.array([[0, 0, 10, 10], [100, 100, 120, 140]], np.float32)
    test = np.array([[1, 0, 11, 10],      # IoU 9*10 / (100+100-90) = 0.818 with ref 0
                     [0, 0, 10, 10],      # IoU 1.0 with ref 0 -> wins
                     [100, 100, 120, 140]], np.float32)  # same box as ref 1 but another class
    pairs = match_detections(ref, np.array([1, 1]), test, np.array([1, 1, 2]))
    assert pairs == [(0, 1, 1.0)]
    pairs = match_detections(ref, np.array([1, 2]), test, np.array([1, 1, 2]))
    assert sorted(pairs) == [(0, 1, 1.0), (1, 2, 1.0)]


def test_threshold_is_inclusive():
    ref = np.array([[0, 0, 10, 10]], np.float32)
    half = np.array([[0, 0, 10, 5]], np.float32)  # IoU exactly 0.5
    assert match_detections(ref, [1], half, [1], 0.5) == [(0, 0, 0.5)]
    assert match_detections(ref, [1], half, [1], 0.51) == []


def test_agreement_summary_over_images():
    agreement = DetectionAgreement()
    box = np.array([[0, 0, 10, 10]], np.float32)
    agreement.add(box, np.array([0.9]), np.array([1]), box, np.array([0.8]), np.array([1]))   # matched, drift -0.1
    agreement.add(box, np.array([0.6]), np.array([1]), np.zeros((0, 4)), np.zeros(0), np.zeros(0))  # missed
    agreement.add(np.zeros((0, 4)), np.zeros(0), np.zeros(0), box, np.array([0.7]), np.array([1]))  # extra
    s = agreement.summary()
    assert (s["images"], s["reference_detections"], s["test_detections"], s["matched"]) == (3, 2, 2, 1)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    assert s["mean_iou"] == pytest.approx(1.0)
    assert s["score_drift_mean"] == pytest.approx(-0.1) and s["score_drift_max_abs"] == pytest.approx(0.1)
    empty = DetectionAgreement().summary()
    assert empty["precision"] == 1.0 and math.isnan(empty["mean_iou"])
