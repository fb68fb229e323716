"""IoU matching in ByteTrack's stages: one-to-one by greatest IoU, thresholds, class and gate masks,
high-score detections before low-score ones, unconfirmed tracks last."""

import numpy as np

from trt_perception.core.tracking.association import associate, iou_matrix, match

THRESHOLDS = dict(cost=None, high_threshold=0.5, low_threshold=0.1, match_iou=0.2, low_match_iou=0.5,
                  tentative_match_iou=0.3)


def box(x: float, w: float = 10.0) -> list[float]:
    return [x, 0.0, x + w, 20.0]


def test_iou_matrix():
    iou = iou_matrix(np.array([box(0), box(100)]), np.array([box(5), box(0), box(300, 0.0)]))
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_match_prefers_the_greatest_total_and_drops_poor_pairs():
    # track 0 overlaps det 0 a lot and det 1 a little; track 1 only det 0 a little: a poor pair
    # (track 0, det 1) + (track 1, det 0) must not displace the good pair (track 0, det 0)
    iou = np.array([[0.9, 0.21], [0.25, 0.0]])
    rows, cols = match(iou, 0.2)
    assert rows.tolist() == [0] and cols.tolist() == [0]
    rows, cols = match(np.array([[0.6, 0.7], [0.7, 0.1]]), 0.2)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert match(np.array([[0.19]]), 0.2)[0].size == 0
    assert match(np.array([[0.9]]), 0.2, np.array([[False]]))[0].size == 0


def test_high_scores_first_then_low_scores_then_unconfirmed():
    tracks = np.array([box(0), box(50), box(100)])
    confirmed = np.array([True, True, False])
    # det 0: high, on track 0; det 1: low, on track 1; det 2: high, on the unconfirmed track 2;
    # det 3: low, on track 0 as well (track 0 is taken by the high one); det 4: below low_threshold
    dets = np.array([box(1), box(51), box(101), box(0), box(100)])
    scores = np.array([0.9, 0.3, 0.8, 0.4, 0.05])
    allowed = np.ones((3, 5), bool)
    owner = associate(tracks, confirmed, dets, scores, allowed, **THRESHOLDS)
    assert owner.tolist() == [0, 1, 2, -1, -1]


def test_low_scores_need_more_overlap_and_masks_apply():
    tracks = np.array([box(0)])
    confirmed = np.array([True])
    shifted = np.array([box(4)])                            # IoU 6/14 = 0.43
    assert associate(tracks, confirmed, shifted, np.array([0.9]), np.ones((1, 1), bool), **THRESHOLDS).tolist() == [0]
    assert associate(tracks, confirmed, shifted, np.array([0.3]), np.ones((1, 1), bool), **THRESHOLDS).tolist() == [-1]
    assert associate(tracks, confirmed, shifted, np.array([0.9]), np.zeros((1, 1), bool), **THRESHOLDS).tolist() == [-1]


def test_unconfirmed_tracks_do_not_take_low_scores_or_what_confirmed_ones_matched():
    tracks = np.array([box(0), box(1)])
    confirmed = np.array([False, True])
    owner = associate(tracks, confirmed, np.array([box(0), box(60)]), np.array([0.9, 0.9]),
                      np.ones((2, 2), bool), **THRESHOLDS)
    assert owner.tolist() == [1, -1]                        # the confirmed track wins the shared box
    owner = associate(tracks[:1], confirmed[:1], np.array([box(0)]), np.array([0.3]), np.ones((1, 1), bool),
                      **THRESHOLDS)
    assert owner.tolist() == [-1]


def test_a_given_cost_decides_between_eligible_pairs():
    # det 0 overlaps track 0 more, but the cost (e.g. a Mahalanobis distance) prefers track 1
    tracks = np.array([box(0), box(3)])
    dets = np.array([box(1)])
    args = dict(THRESHOLDS)
    del args["cost"]
    owner = associate(tracks, np.array([True, True]), dets, np.array([0.9]), np.ones((2, 1), bool), None, **args)
    assert owner.tolist() == [0]
    cost = np.array([[0.8], [0.1]])
    owner = associate(tracks, np.array([True, True]), dets, np.array([0.9]), np.ones((2, 1), bool), cost, **args)
    assert owner.tolist() == [1]
    rows, cols = match(np.array([[0.9, 0.5]]), 0.2, cost=np.array([[0.7, 0.2]]))
    assert (rows.tolist(), cols.tolist()) == ([0], [1])
