"""Each pose decoding step on small hand-made maps."""

import json
from pathlib import Path

import numpy as np
import pytest

from trt_perception.core.decode.pose import COCO18, Topology, load_topology
from trt_perception.core.decode.pose.assignment import assignment
from trt_perception.core.decode.pose.connect_parts import connect_parts
from trt_perception.core.decode.pose.find_peaks import find_peaks, pad_maps
from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates, paf_score_graph
from trt_perception.core.decode.pose.refine_peaks import refine_peaks
from trt_perception.core.decode.pose.topology import TopologyError

REPO = Path(__file__).resolve().parents[2]


def _peaks(cmap, threshold=0.1, window=3, max_count=100):
    pad = window // 2
    padded = pad_maps(np.asarray(cmap, dtype=np.float32), pad)
    peaks = find_peaks(padded, pad, threshold, max_count)
    width = padded.shape[2]
    rows, cols = np.divmod(peaks.index % (padded.shape[1] * width), width)
    return padded, peaks, list(zip(peaks.part.tolist(), (rows - pad).tolist(), (cols - pad).tolist()))


def test_topology_file_is_trt_pose_human_pose_and_the_default():
    category = json.loads((REPO / "models/trt_pose/human_pose.json").read_text())
    assert len(category["keypoints"]) == 18 and len(category["skeleton"]) == 21
    topo = load_topology(REPO / "models/trt_pose/human_pose.json")
    assert topo.parts == COCO18.parts and np.array_equal(topo.links, COCO18.links)
    # 1-based skeleton [16, 14] is link 0: left_ankle -> left_knee
    assert (topo.parts[topo.links[0, 0]], topo.parts[topo.links[0, 1]]) == ("left_ankle", "left_knee")
    assert (topo.parts[topo.links[-1, 0]], topo.parts[topo.links[-1, 1]]) == ("neck", "right_hip")
    again = Topology.from_coco_category(topo.to_coco_category())
    assert again.parts == topo.parts and np.array_equal(again.links, topo.links)


@pytest.mark.parametrize("category, message", [
    ({"keypoints": ["a", "b"], "skeleton": [[1, 3]]}, "name parts 0..1"),
    ({"keypoints": ["a", "a"], "skeleton": [[1, 2]]}, "unique"),
    ({"keypoints": ["a", "b"], "skeleton": [[1, 1]]}, "two different parts"),
    ({"keypoints": ["a", "b"]}, "skeleton"),
])
def test_bad_topologies_are_refused(tmp_path, category, message):
    path = tmp_path / "topo.json"
    path.write_text(json.dumps(category))
    with pytest.raises(TopologyError, match=message):
        load_topology(path)


def test_missing_topology_file_names_the_file(tmp_path):
    with pytest.raises(TopologyError, match="cannot read topology file .*nope.json"):
        load_topology(tmp_path / "nope.json")


def test_find_peaks_local_maxima_threshold_border_plateau():
    cmap = np.zeros((2, 6, 7))
    cmap[0, 2, 3] = 0.9       # interior peak
    cmap[0, 2, 4] = 0.5       # its neighbour: not a peak
    cmap[0, 0, 0] = 0.4       # corner peak
    cmap[0, 5, 6] = 0.05      # below threshold
    cmap[1, 3, 1] = cmap[1, 3, 2] = 0.7  # plateau: only the first cell in raster order
    _, peaks, found = _peaks(cmap)
    assert found == [(0, 0, 0), (0, 2, 3), (1, 3, 1)]
    assert peaks.counts.tolist() == [2, 1]


def test_find_peaks_window_and_cap_keep_the_highest():
    cmap = np.zeros((1, 5, 9))
    cmap[0, 2, [1, 3, 5, 7]] = [0.3, 0.8, 0.6, 0.9]
    assert [p[2] for p in _peaks(cmap, window=3)[2]] == [1, 3, 5, 7]
    assert [p[2] for p in _peaks(cmap, window=5)[2]] == [3, 7]  # 0.3 and 0.6 have a higher peak 2 cells away
    assert [p[2] for p in _peaks(cmap, max_count=2)[2]] == [3, 7]


@pytest.mark.parametrize("x, y", [(10.5, 7.5), (10.2, 7.9), (3.73, 12.31), (0.2, 5.6), (19.9, 0.1)])
def test_refine_peaks_recovers_sub_cell_gaussian_centres(x, y):
    height, width, sigma = 14, 20, 1.5
    gx, gy = np.arange(width) + 0.5, (np.arange(height) + 0.5)[:, None]
    cmap = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma ** 2))[None]
    padded, peaks, _ = _peaks(cmap)
    rx, ry = refine_peaks(padded, peaks.index, 1)
    assert rx.size == 1
    assert abs(rx[0] - x) < 0.02 and abs(ry[0] - y) < 0.02


def _one_link_field(a, b, height=30, width=30, swap_channels=False):
    """2-channel PAF of one link drawn as unit vectors within 1 cell of segment a -> b."""
    gx, gy = np.arange(width) + 0.5, (np.arange(height) + 0.5)[:, None]
    (ax, ay), (bx, by) = a, b
    length = np.hypot(bx - ax, by - ay)
    ux, uy = (bx - ax) / length, (by - ay) / length
    along = (gx - ax) * ux + (gy - ay) * uy
    near = (np.abs((gx - ax) * uy - (gy - ay) * ux) <= 1.0) & (along >= -1) & (along <= length + 1)
    paf = np.zeros((2, height, width), dtype=np.float32)
    paf[1 if not swap_channels else 0] = near * ux  # channel 2k + 1: x
    paf[0 if not swap_channels else 1] = near * uy  # channel 2k: y
    return paf


def _score(paf, peaks_a, peaks_b, **kw):
    x = np.array([p[0] for p in peaks_a + peaks_b], dtype=np.float64)
    y = np.array([p[1] for p in peaks_a + peaks_b], dtype=np.float64)
    counts = np.array([len(peaks_a), len(peaks_b)])
    opts = dict(num_samples=10, sample_threshold=0.05, min_sample_fraction=0.8, link_threshold=0.1)
    opts.update(kw)
    return paf_score_graph(paf, np.array([[0, 1]]), counts, x, y, **opts)


def test_paf_score_keeps_the_pair_along_the_field_only():
    paf = _one_link_field((3.5, 10.5), (15.5, 10.5))
    cand = _score(paf, [(3.5, 10.5)], [(15.5, 10.5), (3.5, 2.5)])
    assert cand.a.tolist() == [0] and cand.b.tolist() == [1]
    assert cand.score[0] == pytest.approx(1.0)


def test_paf_score_penalizes_links_longer_than_half_the_map():
    paf = _one_link_field((2.5, 10.5), (26.5, 10.5))  # 24 cells on a 30-cell map: 24 / 15 - 1 = 0.6
    cand = _score(paf, [(2.5, 10.5)], [(26.5, 10.5)])
    assert cand.score[0] == pytest.approx(1.0 - 0.6)


def test_paf_channel_order_is_y_then_x():
    # a horizontal limb: all of the field is in the x channel (2k + 1)
    good = _score(_one_link_field((3.5, 10.5), (15.5, 10.5)), [(3.5, 10.5)], [(15.5, 10.5)])
    swapped = _score(_one_link_field((3.5, 10.5), (15.5, 10.5), swap_channels=True),
                     [(3.5, 10.5)], [(15.5, 10.5)])
    assert good.a.size == 1 and swapped.a.size == 0


def test_paf_score_is_directed_and_needs_most_samples():
    paf = _one_link_field((3.5, 10.5), (15.5, 10.5))
    assert _score(paf, [(15.5, 10.5)], [(3.5, 10.5)]).a.size == 0  # b -> a: against the field
    half = paf.copy()
    half[:, :, 10:] = 0  # field only along the first half of the segment
    assert _score(half, [(3.5, 10.5)], [(15.5, 10.5)]).a.size == 0
    assert _score(half, [(3.5, 10.5)], [(15.5, 10.5)], min_sample_fraction=0.4, link_threshold=0.3).a.size == 1


def test_assignment_maximizes_the_sum_not_the_best_pair():
    # a0-b1 is the best single pair, but a0-b0 + a1-b1 has the larger total
    cand = LinkCandidates(link=np.array([0, 0, 0, 1]), a=np.array([0, 0, 1, 4]), b=np.array([2, 3, 3, 5]),
                          score=np.array([0.9, 0.95, 0.9, 0.5]))
    chosen = assignment(cand, num_peaks=6)
    assert chosen.tolist() == [True, False, True, True]


def test_connect_parts_never_gives_a_person_two_peaks_of_one_part():
    # peaks: part 0 (a0, a1), part 1 (b0, b1), part 2 (c0, c1); people (a0, b0, c0) and (a1, b1, c1)
    part = np.array([0, 0, 1, 1, 2, 2])
    cand = LinkCandidates(link=np.array([0, 0, 1, 1, 1]), a=np.array([0, 1, 2, 3, 2]),
                          b=np.array([2, 3, 4, 5, 5]), score=np.array([0.9, 0.9, 0.8, 0.8, 0.95]))
    # the wrong b0-c1 (0.95) is chosen first and joins a0, b0, c1; b1-c1 then cannot join c1 twice
    group = connect_parts(part, cand, np.ones(5, dtype=bool))
    assert group[0] == group[2] == group[5]
    assert group[1] == group[3] and group[3] != group[0]
    assert group[4] not in (group[0], group[1])
