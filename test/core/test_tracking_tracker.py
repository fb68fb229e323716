"""Tracker: births and confirmation, deaths after max_lost seconds, ids kept through gaps and
crossings, stamp handling (gaps, duplicates, out of order, time jumps), parameters, determinism;
each on the numpy path and on the compiled one (test_tracking_kernels compares the two)."""

import threading

import numpy as np
import pytest

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.tracking import PARAM_ROWS, Tracker, TrackerParams, compiled

S = 1_000_000_000           # one second in ns
DT = S // 10                # 10 frames/s


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def path(request, monkeypatch):
    """Every test on both paths of Tracker.update."""
    kernels = compiled.kernels(wait=True)           # loaded before: no switch in the middle of a test
    if request.param == "compiled" and kernels is None:
        pytest.skip("the compiled tracker is unavailable (numba missing?)")
    monkeypatch.setattr(compiled, "_kernels", kernels if request.param == "compiled" else None)


def dets(*items: tuple) -> Detections:
    """Detections of (x, score[, class_id]) items: boxes 40 x 100 pixels at x."""
    boxes = np.array([[it[0], 100.0, it[0] + 40.0, 200.0] for it in items], np.float32).reshape(-1, 4)
    scores = np.array([it[1] for it in items], np.float32)
    classes = np.array([it[2] if len(it) > 2 else 1 for it in items], np.int32)
    return Detections(boxes, scores, classes, [str(c) for c in classes.tolist()])


def test_tracks_are_confirmed_after_min_hits_and_numbered_in_order():
    tracker = Tracker(TrackerParams(min_hits=3))
    seen = [tracker.update(dets((100, 0.9), (400, 0.8)), i * DT).ids for i in range(4)]
    assert seen == [["", ""], ["", ""], ["1", "2"], ["1", "2"]]
    assert tracker.stats.confirmed == 2
    once = Tracker(TrackerParams(min_hits=1))
    assert once.update(dets((100, 0.9)), 0).ids == ["1"]


def test_an_unconfirmed_track_missed_once_is_dropped():
    tracker = Tracker(TrackerParams(min_hits=2))
    tracker.update(dets((100, 0.9)), 0)
    tracker.update(dets(), DT)
    assert tracker.track_count == 0
    assert tracker.update(dets((100, 0.9)), 2 * DT).ids == [""]


def test_a_lost_track_keeps_its_id_for_max_lost_seconds_then_dies():
    tracker = Tracker(TrackerParams(min_hits=1, max_lost=1.0))
    assert tracker.update(dets((100, 0.9)), 0).ids == ["1"]
    for i in range(1, 10):                              # 0.9 s without the pedestrian
        tracker.update(dets(), i * DT)
    assert tracker.confirmed_count == 1
    assert tracker.update(dets((100, 0.9)), 10 * DT).ids == ["1"]     # re-found at 1.0 s: same id
    tracker.update(dets(), 21 * DT)                     # 1.1 s after the last detection
    assert tracker.track_count == 0
    assert tracker.update(dets((100, 0.9)), 22 * DT).ids == ["2"]


def test_motion_is_predicted_over_the_stamp_gap_of_dropped_frames():
    # 40-pixel boxes moving 100 px/s; after 5 dropped frames (0.6 s) the pedestrian is 60 pixels
    # further: no overlap with its last box, but on its predicted one
    def run(gap_stamp: int) -> list:
        tracker = Tracker(TrackerParams(min_hits=1))
        for i in range(10):
            tracker.update(dets((100 + 10 * i, 0.9)), i * DT)
        return tracker.update(dets((100 + 10 * 9 + 60, 0.9)), gap_stamp).ids
    assert run(9 * DT + 6 * DT) == ["1"]
    assert run(9 * DT + 1 * DT) == ["2"]                # the same jump in one frame period is another object


def test_crossing_pedestrians_keep_their_ids():
    tracker = Tracker(TrackerParams(min_hits=1))
    for i in range(40):                                 # a walks right, b left; they pass at i = 20
        a, b = 100 + 10 * i, 500 - 10 * i
        items = [(a, 0.9), (b, 0.8)] if abs(a - b) > 30 else [(a, 0.9), (b, 0.3)]   # b half hidden
        out = tracker.update(dets(*items), i * DT)
        assert dict(zip(out.boxes_xyxy[:, 0].tolist(), out.ids)) == {float(a): "1", float(b): "2"}


def test_low_scores_only_continue_tracks():
    tracker = Tracker(TrackerParams(min_hits=1))
    tracker.update(dets((100, 0.9)), 0)
    out = tracker.update(dets((102, 0.3), (400, 0.3)), DT)      # the track continues; a stray low box
    assert out.ids == ["1"] and out.boxes_xyxy[0, 0] == 102.0
    assert tracker.stats.dropped_low == 1
    assert tracker.update(dets((104, 0.05)), 2 * DT).ids == []  # below low_threshold: ignored


def test_classes_do_not_mix():
    tracker = Tracker(TrackerParams(min_hits=1))
    tracker.update(dets((100, 0.9, 1)), 0)
    assert tracker.update(dets((100, 0.9, 2)), DT).ids == ["2"]


def test_duplicate_and_out_of_order_stamps_leave_the_state_unchanged():
    tracker = Tracker(TrackerParams(min_hits=1))
    tracker.update(dets((100, 0.9)), 10 * DT)
    tracker.update(dets((110, 0.9)), 11 * DT)
    state = tracker._mean.copy()
    assert tracker.update(dets((110, 0.9)), 11 * DT).ids == ["1"]      # duplicate
    assert tracker.update(dets((100, 0.9), (600, 0.9)), 5 * DT).ids == ["1", ""]   # 0.6 s late
    assert np.array_equal(tracker._mean, state) and tracker.track_count == 1
    assert tracker.stats.stale_frames == 2
    assert tracker.update(dets((120, 0.9)), 12 * DT).ids == ["1"]


def test_a_jump_back_in_time_starts_again_with_new_ids():
    tracker = Tracker(TrackerParams(min_hits=1, max_lost=1.0))
    tracker.update(dets((100, 0.9)), 100 * S)
    assert tracker.update(dets((100, 0.9)), 10 * S).ids == ["2"]       # a bag played again
    assert tracker.stats.time_jumps == 1 and tracker.track_count == 1
    tracker.reset()
    assert tracker.update(dets((100, 0.9)), 0).ids == ["1"] and tracker.stats.frames == 1   # ids again from 1


def random_frames(seed: int, count: int) -> list[Detections]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1000, 15)
    v = rng.uniform(-8, 8, 15)
    frames = []
    for i in range(count):
        keep = rng.random(15) > 0.15
        items = [(float(x[k] + v[k] * i + rng.normal(0, 2)), float(rng.uniform(0.2, 1.0)))
                 for k in np.flatnonzero(keep)]
        items.sort(key=lambda it: -it[1])
        frames.append(dets(*items))
    return frames


def test_results_are_deterministic():
    frames = random_frames(1, 120)
    stamps = np.cumsum(np.random.default_rng(2).choice([DT, DT, 2 * DT], len(frames)))
    runs = []
    for _ in range(2):
        tracker = Tracker()
        runs.append([(out.ids, out.boxes_xyxy.tolist()) for out in
                     (tracker.update(f, int(t)) for f, t in zip(frames, stamps))])
    assert runs[0] == runs[1]
    assert len({i for ids, _ in runs[0] for i in ids if i}) >= 10


def test_parameters_change_at_once_and_invalid_ones_change_nothing():
    tracker = Tracker()
    before = tracker.params
    for bad in ({"min_hits": 0}, {"high_threshold": 1.5}, {"match_iou": "0.3"}, {"motion_gate": 1},
                {"max_lost": float("nan")}, {"low_threshold": 0.6}, {"max_age": 3}):
        with pytest.raises(ValueError):
            tracker.set_params(bad)
        assert tracker.params is before
    tracker.set_params({"min_hits": 1, "high_threshold": 0.7})
    assert tracker.runtime_params()["min_hits"] == 1
    assert tracker.update(dets((100, 0.9), (300, 0.6)), 0).ids == ["1"]       # 0.6 is now low


def test_parameters_swapped_from_another_thread_are_read_once_per_frame():
    tracker = Tracker()
    frames = random_frames(3, 300)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            tracker.set_params({"min_hits": 1, "high_threshold": 0.4})
            tracker.set_params({"min_hits": 5, "high_threshold": 0.6})
    thread = threading.Thread(target=flip)
    thread.start()
    try:
        for i, frame in enumerate(frames):
            out = tracker.update(frame, i * DT)
            assert out.ids is not None and len(out.ids) == len(out)
    finally:
        stop.set()
        thread.join()


def test_param_rows_describe_the_params():
    defaults = TrackerParams()
    assert [row.name for row in PARAM_ROWS] == list(defaults.as_dict())
    for row in PARAM_ROWS:
        assert row.default == getattr(defaults, row.name)
        assert row.description and row.runtime and row.check(row.default) is None
        limits = row.int_range or row.float_range
        if limits is not None:
            assert limits[0] <= row.default <= limits[1]
            too_big = type(row.default)(limits[1] + 1)
            assert row.check(too_big) is not None
            with pytest.raises(ValueError, match=row.name):
                TrackerParams(**{row.name: too_big})
