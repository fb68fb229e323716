"""Each pose decoding step on small hand-made maps."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from trt_perception.core.decode.pose import COCO18, PoseParams, Topology, load_topology
from trt_perception.core.decode.pose.assignment import assignment
from trt_perception.core.decode.pose.connect_parts import connect_parts
from trt_perception.core.decode.pose.find_peaks import find_peaks, pad_maps
from trt_perception.core.decode.pose.hidden_peaks import hidden_peaks, measured_width
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


def test_find_peaks_compares_row_ends_with_their_own_row_only():
    # the flat first test must not compare the last cell of a row with the first of the next one
    cmap = np.zeros((1, 4, 5))
    cmap[0, 1, 4], cmap[0, 2, 0] = 0.5, 0.9  # row 1 ends with a peak, row 2 starts with a higher one
    cmap[0, 0, 0], cmap[0, 3, 4] = 0.6, 0.3  # first and last cell of the map
    assert _peaks(cmap)[2] == [(0, 0, 0), (0, 1, 4), (0, 2, 0), (0, 3, 4)]


@pytest.mark.parametrize("x, y", [(10.5, 7.5), (10.2, 7.9), (3.73, 12.31), (0.2, 5.6), (19.9, 0.1)])
def test_refine_peaks_recovers_sub_cell_gaussian_centres(x, y):
    height, width, sigma = 14, 20, 1.5
    gx, gy = np.arange(width) + 0.5, (np.arange(height) + 0.5)[:, None]
    cmap = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma ** 2))[None]
    padded, peaks, _ = _peaks(cmap)
    rx, ry, offset, _ = refine_peaks(padded, peaks.index, 1)
    assert rx.size == 1
    assert abs(rx[0] - x) < 0.02 and abs(ry[0] - y) < 0.02
    assert offset[0] == pytest.approx([rx[0] - np.floor(rx[0]) - 0.5, ry[0] - np.floor(ry[0]) - 0.5])


def _bumps(points, heights, sigma=1.5, height=20, width=24, noise=0.0, seed=0):
    """float[1, H, W]: the maximum of Gaussians of ``sigma`` cells at ``points`` (x, y)."""
    gx, gy = np.arange(width) + 0.5, (np.arange(height) + 0.5)[:, None]
    cmap = np.max([h * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma ** 2))
                   for (x, y), h in zip(points, heights)], axis=0)
    return (cmap + np.random.default_rng(seed).normal(0.0, noise, cmap.shape))[None]


def _hidden(cmap, sigma=1.5, margin=0.15, pad=3):
    padded = pad_maps(np.asarray(cmap, dtype=np.float32), pad)
    peaks = find_peaks(padded, 1, 0.1, 100)
    x, y, offset, curvature = refine_peaks(padded, peaks.index, pad)
    index, hx, hy = hidden_peaks(padded, pad, peaks.index, x, y, offset, padded.reshape(-1)[peaks.index],
                                 measured_width(curvature, sigma), 2, margin, 0.1)
    return (x, y), index, (hx, hy)


@pytest.mark.parametrize("hidden_xy, gap", [((12.3, 10.2), 2.0), ((12.0, 11.6), 2.2), ((10.1, 11.9), 1.7),
                                             ((8.9, 12.0), 2.3)])
def test_hidden_peaks_find_a_keypoint_merged_into_a_higher_bump(hidden_xy, gap):
    found_xy = (10.3, 10.2)
    cmap = _bumps([found_xy, hidden_xy], [1.0, 0.7])
    assert np.hypot(hidden_xy[0] - found_xy[0], hidden_xy[1] - found_xy[1]) == pytest.approx(gap, abs=0.05)
    (x, y), index, (hx, hy) = _hidden(cmap)
    assert x.size == 1 and abs(x[0] - found_xy[0]) < 0.2 and abs(y[0] - found_xy[1]) < 0.2
    assert index.size == 1
    assert abs(hx[0] - hidden_xy[0]) < 0.25 and abs(hy[0] - hidden_xy[1]) < 0.25


def test_hidden_peaks_none_next_to_lone_or_noisy_bumps_nor_other_parts():
    lone = _bumps([(10.3, 10.2), (17.0, 4.0)], [1.0, 0.6], noise=0.02, seed=1)
    assert _hidden(lone)[1].size == 0
    # two parts' bumps 2 cells apart: each channel holds one bump, nothing hidden
    two_parts = np.concatenate([_bumps([(10.3, 10.2)], [1.0]), _bumps([(12.3, 10.2)], [0.7])])
    (x, _), index, _ = _hidden(two_parts)
    assert x.size == 2 and index.size == 0


def test_hidden_peaks_at_the_map_border():
    cmap = _bumps([(2.5, 10.0), (0.6, 9.0)], [1.0, 0.7])  # the hidden one in the first column
    (x, _), index, (hx, hy) = _hidden(cmap)
    assert x.size == 1 and index.size == 1
    assert abs(hx[0] - 0.6) < 0.25 and abs(hy[0] - 9.0) < 0.25


@pytest.mark.parametrize("other_x, kept", [(12.45, False), (13.5, True)])
def test_hidden_peaks_within_half_a_width_of_a_found_peak_are_dropped(other_x, kept):
    # a low found peak (value 0.05: it explains nothing) at other_x, 0.15 or 1.2 cells from the
    # hidden keypoint at (12.3, 10.2): the hidden peak is dropped when closer than width / 2
    pad = 3
    padded = pad_maps(np.asarray(_bumps([(10.3, 10.2), (12.3, 10.2)], [1.0, 0.7]), dtype=np.float32), pad)
    row_stride = padded.shape[2]
    index = np.array([(10 + pad) * row_stride + 10 + pad, (10 + pad) * row_stride + int(other_x) + pad])
    x, y = np.array([10.3, other_x]), np.array([10.2, 10.2])
    offset = np.stack([x - np.floor(x) - 0.5, y - np.floor(y) - 0.5], axis=1)
    hidden, hx, _ = hidden_peaks(padded, pad, index, x, y, offset, np.array([1.0, 0.05], dtype=np.float32),
                                 1.5, 2, 0.15, 0.1)
    assert hidden.size == int(kept) and (not kept or abs(hx[0] - 12.3) < 0.1)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_measured_width_is_the_bumps_sigma(sigma):
    cmap = _bumps([(5.3, 5.1), (15.6, 12.2), (20.5, 3.7)], [1.0, 0.8, 0.6], sigma=sigma)
    padded = pad_maps(np.asarray(cmap, dtype=np.float32), 3)
    peaks = find_peaks(padded, 1, 0.1, 100)
    _, _, _, curvature = refine_peaks(padded, peaks.index, 3)
    assert measured_width(curvature, 1.5) == pytest.approx(sigma, rel=0.03)
    assert measured_width(curvature[:0], 1.5) == 1.5  # no peak: the given sigma
    assert measured_width(np.full((4, 2), -100.0), 1.5) == 0.75  # at least sigma / 2


def test_hidden_peaks_follow_the_measured_width_not_the_given_sigma():
    # bumps of sigma 2: with the given sigma of 1.5 as the model, every bump's flanks would look
    # like shoulders
    wide = _bumps([(6.3, 6.2), (16.1, 13.7)], [1.0, 0.7], sigma=2.0, noise=0.02, seed=2)
    assert _hidden(wide, sigma=1.5)[1].size == 0
    merged = _bumps([(8.3, 9.2), (11.0, 10.4), (18.0, 15.0), (4.0, 16.0)], [1.0, 0.7, 0.8, 0.9], sigma=2.0)
    (x, _), index, (hx, hy) = _hidden(merged, sigma=1.5)
    assert x.size == 3 and index.size == 1
    assert abs(hx[0] - 11.0) < 0.3 and abs(hy[0] - 10.4) < 0.3


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
    defaults = PoseParams()
    opts = {name: getattr(defaults, name) for name in ("num_samples", "sample_threshold", "min_sample_fraction",
                                                       "link_threshold", "paf_floor", "end_weight")}
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


def test_paf_score_is_the_direction_of_the_field_not_its_strength():
    paf = _one_link_field((3.5, 10.5), (15.5, 10.5))
    pair = ([(3.5, 10.5)], [(15.5, 10.5)])
    assert _score(paf * 0.6, *pair).score[0] == pytest.approx(1.0)  # at least paf_floor (0.5) strong
    assert _score(paf * 0.25, *pair).score[0] == pytest.approx(0.5)  # weaker: in proportion, 0.25 / 0.5
    assert _score(paf * 0.25, *pair, paf_floor=0.2).score[0] == pytest.approx(1.0)
    # a field at 60 degrees to the pair scores cos 60 = 0.5 whatever its strength
    tilted = paf.copy()
    tilted[0], tilted[1] = paf[1] * np.sin(np.pi / 3), paf[1] * np.cos(np.pi / 3)
    for gain in (0.6, 1.0, 3.0):
        assert _score(tilted * gain, *pair).score[0] == pytest.approx(0.5, abs=1e-6)


def test_paf_score_weights_the_samples_near_the_peaks():
    # 10 samples at x = 4.1, 5.3, ..., 14.9 along a 12-cell link; the midpoint (x 9.5) follows in both
    full = _one_link_field((3.5, 10.5), (15.5, 10.5))
    ends, middle = full.copy(), full.copy()
    ends[:, :, 6:13] = 0
    ends[:, :, 9] = full[:, :, 9]  # cells 4, 5, 9, 13, 14: 2 samples at each end
    middle[:, :, :6] = middle[:, :, 13:] = 0  # cells 6..12: the 6 middle samples
    pair = ([(3.5, 10.5)], [(15.5, 10.5)])
    t = (np.arange(10) + 0.5) / 10
    weight = 1 + 5 * (2 * t - 1) ** 2
    at_ends = np.isin(np.arange(10), [0, 1, 8, 9])
    kw = dict(min_sample_fraction=0.0, link_threshold=0.0)
    assert _score(ends, *pair, end_weight=5.0, **kw).score[0] == pytest.approx(weight[at_ends].sum() / weight.sum())
    assert _score(middle, *pair, end_weight=5.0, **kw).score[0] == pytest.approx(weight[~at_ends].sum() / weight.sum())
    assert _score(ends, *pair, end_weight=0.0, **kw).score[0] == pytest.approx(0.4)
    assert _score(middle, *pair, end_weight=0.0, **kw).score[0] == pytest.approx(0.6)


def test_paf_score_along_the_far_edge_of_the_map():
    # peaks in the last column (x just below W = 30): samples must stay in that column
    paf = _one_link_field((29.9, 3.5), (29.9, 15.5))
    cand = _score(paf, [(np.nextafter(30.0, 0), 3.5)], [(np.nextafter(30.0, 0), 15.5)])
    assert cand.score.size == 1 and cand.score[0] == pytest.approx(1.0)


def test_assignment_maximizes_the_sum_not_the_best_pair():
    # a0-b1 is the best single pair, but a0-b0 + a1-b1 has the larger total
    cand = LinkCandidates(link=np.array([0, 0, 0, 1]), a=np.array([0, 0, 1, 4]), b=np.array([2, 3, 3, 5]),
                          score=np.array([0.9, 0.95, 0.9, 0.5]))
    chosen = assignment(cand, num_peaks=6)
    assert chosen.tolist() == [True, False, True, True]


def test_assignment_of_many_links_matches_one_matching_per_link():
    # enough contested candidates that the solver runs on several blocks of links
    rng = np.random.default_rng(0)
    num_peaks, links = 40, 12
    link = np.repeat(np.arange(links), 30)
    a, b = rng.integers(0, 20, link.size), rng.integers(20, 40, link.size)
    _, unique = np.unique(np.stack([link, a, b], 1), axis=0, return_index=True)
    unique.sort()
    cand = LinkCandidates(link[unique], a[unique], b[unique], rng.uniform(0.1, 1.0, unique.size))
    chosen = assignment(cand, num_peaks)
    for k in range(links):
        mine = np.flatnonzero(cand.link == k)
        weight = np.zeros((num_peaks, num_peaks))
        weight[cand.a[mine], cand.b[mine]] = cand.score[mine]
        best = weight[linear_sum_assignment(weight, maximize=True)].sum()
        picked = mine[chosen[mine]]
        assert np.unique(cand.a[picked]).size == np.unique(cand.b[picked]).size == picked.size
        assert cand.score[picked].sum() == pytest.approx(best)


def test_assignment_again_solves_only_the_links_where_a_chosen_pair_was_lowered(monkeypatch):
    import scipy.optimize

    solve, calls = scipy.optimize.linear_sum_assignment, []

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return solve(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "linear_sum_assignment", counted)
    # one link, two peaks a side, the four pairs tied: two maximum matchings
    cand = LinkCandidates(link=np.zeros(4, dtype=np.int64), a=np.array([0, 0, 1, 1]), b=np.array([2, 3, 2, 3]),
                          score=np.full(4, 0.6))
    first = assignment(cand, num_peaks=4)
    assert first.sum() == 2 and len(calls) == 1
    # a pair not chosen lowered: the first choice is still the maximum, kept without solving
    weights = np.where(~first & (np.arange(4) == np.flatnonzero(~first)[0]), 0.4, 0.6)
    again = assignment(dataclasses.replace(cand, score=weights), 4, (first, cand.score))
    assert len(calls) == 1
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(again, assignment(dataclasses.replace(cand, score=weights), 4))  # as solving it
    # a chosen pair lowered: solved again, the other matching is now the maximum
    weights = np.where(np.arange(4) == np.flatnonzero(first)[0], 0.4, 0.6)
    again = assignment(dataclasses.replace(cand, score=weights), 4, (first, cand.score))
    assert len(calls) == 3
    np.testing.assert_array_equal(again, ~first)


def test_connect_parts_uses_the_assigned_connections_only():
    part = np.array([0, 1, 1])
    cand = LinkCandidates(link=np.array([0, 0]), a=np.array([0, 0]), b=np.array([1, 2]),
                          score=np.array([0.5, 0.9]))
    group = connect_parts(part, cand, np.array([True, False]))
    assert group[0] == group[1] != group[2]


def test_connect_parts_with_more_part_types_than_bits_in_a_machine_word():
    part = np.array([3, 70, 99, 99])  # e.g. a whole-body topology; two peaks of part 99
    cand = LinkCandidates(link=np.array([0, 1, 1]), a=np.array([0, 1, 1]), b=np.array([1, 2, 3]),
                          score=np.array([0.9, 0.8, 0.7]))
    group = connect_parts(part, cand, np.ones(3, dtype=bool))
    assert group[0] == group[1] == group[2] != group[3]


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
