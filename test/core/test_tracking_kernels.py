"""The compiled tracker (core/tracking/kernels.py, numba) against the numpy path: scipy's assignment
solver ported with its tie-breaking, the same ids, states and counts frame by frame on random scenes
(gaps, duplicate and out-of-order stamps, time jumps, both association costs, float32 and float64
scores), a switch between the paths mid-stream, and the numpy path kept when asked for."""

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.tracking import Tracker, TrackerParams, compiled

KERNELS = compiled.kernels(wait=True)
needs_compiled = pytest.mark.skipif(KERNELS is None, reason="the compiled tracker is unavailable (numba missing?)")
S = 1_000_000_000


@needs_compiled
@pytest.mark.parametrize("seed", range(40))
def test_lsap_is_scipys_assignment_also_among_ties(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, 9, 2)
    cost = rng.integers(0, 3, (rows, cols)).astype(np.float64)       # few values: many optimal assignments
    if seed % 2:
        cost = np.where(rng.random(cost.shape) < 0.5, 0.8, rng.uniform(0, 0.8, cost.shape))
    expected = linear_sum_assignment(cost)
    got = KERNELS.lsap(cost)
    assert [a.tolist() for a in got] == [a.tolist() for a in expected]


def scene(seed: int, frames: int, score_dtype: type) -> list[tuple[Detections, int]]:
    """Pedestrians crossing, missed, false positives, two classes, and stamps with gaps, duplicates,
    out-of-order frames and one jump back in time."""
    rng = np.random.default_rng(seed)
    people = 12
    x, v = rng.uniform(0, 1000, people), rng.uniform(-150, 150, people)         # px, px/s
    h = rng.uniform(60, 240, people)
    cls = rng.choice([1, 1, 1, 2], people)
    out, stamp = [], 5 * S
    for i in range(frames):
        step = rng.choice([1, 1, 1, 2, 4, 0, -1]) * S // 15
        stamp = 2 * S if i == frames // 2 else stamp + int(step)              # one jump back
        t = stamp / S
        seen = rng.random(people) > 0.15
        cx = x + v * t
        boxes = np.stack([cx - h / 4, 300 - h, cx + h / 4, 300.0 + 0 * h], 1)[seen]
        boxes = boxes + rng.normal(0, 3, boxes.shape)
        fp = rng.integers(0, 3)
        boxes = np.concatenate([boxes, rng.uniform(0, 900, (fp, 1)) + [[0, 0, 50, 120]]])
        scores = np.concatenate([rng.uniform(0.05, 1.0, int(seen.sum())), rng.uniform(0.05, 0.7, fp)])
        scores[rng.random(len(scores)) < 0.1] = 0.6                          # exactly on a threshold
        classes = np.concatenate([cls[seen], np.ones(fp, int)])
        order = np.argsort(-scores, kind="stable")
        out.append((Detections(boxes[order].astype(np.float32), scores[order].astype(score_dtype),
                               classes[order].astype(np.int32), [str(c) for c in classes[order]]), stamp))
    return out


def run(frames: list, params: TrackerParams, path: list[bool], monkeypatch) -> list:
    """Track ``frames``, frame i on the compiled path where path[i]; every output and state."""
    tracker = Tracker(params)
    results = []
    for (dets, stamp), use_compiled in zip(frames, path):
        monkeypatch.setattr(compiled, "_kernels", KERNELS if use_compiled else None)
        out = tracker.update(dets, stamp)
        results.append((out.ids, out.boxes_xyxy.tolist(), out.scores.tolist(), tracker._id.tolist(),
                        tracker._hits.tolist(), tracker._last_seen.tolist(), tracker._class.tolist(),
                        np.round(tracker._mean, 6).tolist(), np.round(tracker._cov, 6).tolist(),
                        vars(tracker.stats).copy(), tracker._next_id))
    return results


@needs_compiled
@pytest.mark.parametrize("seed,params,score_dtype", [
    (0, TrackerParams(), np.float32),
    (1, TrackerParams(min_hits=1, max_lost=0.5), np.float32),
    (2, TrackerParams(motion_gate=False), np.float32),
    (3, TrackerParams(high_threshold=0.6, low_threshold=0.2, new_track_threshold=0.6, match_iou=0.1), np.float64),
    (4, TrackerParams(min_hits=2, low_match_iou=0.3, tentative_match_iou=0.5, max_lost=4.0), np.float32),
])
def test_compiled_and_numpy_paths_give_the_same_results(seed, params, score_dtype, monkeypatch):
    frames = scene(seed, 300, score_dtype)
    reference = run(frames, params, [False] * len(frames), monkeypatch)
    assert run(frames, params, [True] * len(frames), monkeypatch) == reference
    switching = [bool(b) for b in np.random.default_rng(seed).integers(0, 2, len(frames))]
    assert run(frames, params, switching, monkeypatch) == reference
    ids = {i for r in reference for i in r[0] if i}
    assert len(ids) >= 10 and reference[-1][9]["stale_frames"] > 0 and reference[-1][9]["time_jumps"] == 1


def test_numpy_path_when_asked_for():
    code = ("from trt_perception.core.tracking import compiled, Tracker;"
            "assert compiled.kernels(wait=True) is None; Tracker(); print('numpy')")
    env = dict(os.environ, **{compiled.ENV_VAR: "numpy"})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "numpy", result.stderr
