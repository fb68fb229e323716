"""The compiled pose decoder (numba) against the numpy reference, its fallback, and the scene types
of the accuracy benchmark."""

import dataclasses
import logging
import os

import numpy as np
import pytest

from trt_perception.core.decode.pose import COCO18, PoseFieldError, PoseParams, PoseParser, compiled
from trt_perception.core.decode.pose.find_peaks import noise_level
from trt_perception.testing.pose_fields import SCENE_TYPES, random_scene, recovered_share, sampled_cell

needs_compiled = pytest.mark.skipif(compiled.load() is None,
                                    reason="the compiled pose decoder is unavailable (numba missing?)")


def _same(a, b):
    assert a.keypoints.shape == b.keypoints.shape
    np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a.links, b.links)


@needs_compiled
@pytest.mark.parametrize("name", list(SCENE_TYPES))
def test_compiled_decoder_gives_the_numpy_reference_skeletons(name):
    fast, reference = PoseParser(compiled=True), PoseParser(compiled=False)
    assert fast.compiled and not reference.compiled
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(2):
        scene = SCENE_TYPES[name].sample(rng)
        _same(fast(scene.cmap, scene.paf), reference(scene.cmap, scene.paf))


@needs_compiled
@pytest.mark.parametrize("params", [PoseParams(sigma=0.0), PoseParams(peak_window=5, num_samples=7),
                                    PoseParams(max_peaks=3, min_parts=1, max_people=4),
                                    PoseParams(noise_factor=0.0, link_threshold=0.3, end_weight=0.0)])
def test_compiled_decoder_follows_the_parameters_like_the_reference(params):
    rng = np.random.default_rng(5)
    fast, reference = PoseParser(params=params, compiled=True), PoseParser(params=params, compiled=False)
    for _ in range(3):
        scene = random_scene(rng, 8, noise=0.04)
        _same(fast(scene.cmap, scene.paf), reference(scene.cmap, scene.paf))


@needs_compiled
def test_compiled_decoder_handles_map_borders_and_sizes_like_the_reference():
    """The kernels read cmap without padding: peaks on the border, odd and tiny map sizes (rows of one
    cell, rows not a multiple of 8 cells), and one parser called on maps of several shapes (its
    buffers follow) give the reference's skeletons."""
    rng = np.random.default_rng(8)
    fast, reference = PoseParser(compiled=True), PoseParser(compiled=False)
    for height, width in ((40, 47), (64, 49), (56, 56), (7, 3), (2, 2), (1, 5), (9, 1), (64, 49)):
        for placement in ("border", "free"):
            scene = random_scene(rng, 4, map_h=height, map_w=width, placement=placement,
                                 height_range=(0.5 * min(height, width), 1.5 * max(height, width)))
            _same(fast(scene.cmap, scene.paf), reference(scene.cmap, scene.paf))
        cmap = rng.uniform(-0.1, 1.0, (18, height, width)).astype(np.float32)  # peaks everywhere
        paf = rng.uniform(-1.0, 1.0, (42, height, width)).astype(np.float32)
        _same(fast(cmap, paf), reference(cmap, paf))


@needs_compiled
@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
@pytest.mark.parametrize("field", ["cmap", "paf"])
def test_compiled_decoder_counts_nan_and_inf(field, t):
    """Both paths refuse a NaN in cmap, or in paf at a sample of a limb (an end's or the midpoint's),
    and count every NaN/Inf of the field, also those where nothing is sampled."""
    scene = random_scene(np.random.default_rng(2), 2)
    arrays = {"cmap": scene.cmap.copy(), "paf": scene.paf.copy()}
    if field == "cmap":
        arrays["cmap"][0, 3, 4] = np.nan
    else:
        person = PoseParser(compiled=False)(scene.cmap, scene.paf).keypoints[0]
        arrays["paf"][sampled_cell(person, COCO18, t)] = np.nan
    arrays[field][1, 55, 55] = -np.inf
    for parser in (PoseParser(compiled=True), PoseParser(compiled=False)):
        with pytest.raises(PoseFieldError, match=f"{field} has 2 NaN/Inf values"):
            parser(arrays["cmap"], arrays["paf"])


def _widened(scene, columns):
    """cmap and paf of ``scene`` with ``columns`` columns of zeros added on the right."""
    return tuple(np.pad(field, ((0, 0), (0, 0), (0, columns))) for field in (scene.cmap, scene.paf))


@needs_compiled
def test_paf_nan_where_no_limb_is_sampled_changes_nothing():
    """Every sample lies on a segment between two peaks: cells right of all peaks are never read."""
    rng = np.random.default_rng(12)
    for num_people in (1, 5, 20):
        cmap, paf = _widened(random_scene(rng, num_people), 24)
        planted = paf.copy()
        planted[0::5, 10:50:7, 70] = np.nan
        planted[3, 40, 60:] = np.inf
        for compiled_path in (True, False):
            parser = PoseParser(compiled=compiled_path)
            clean = parser(cmap, paf)
            assert len(clean) >= min(num_people, 3)
            _same(parser(cmap, planted), clean)


@needs_compiled
def test_both_paths_refuse_the_same_nan_cells():
    """NaN cells planted at random in paf: the compiled path refuses a frame exactly when the
    numpy reference does (a NaN at a sampled cell), and otherwise gives its skeletons."""
    rng = np.random.default_rng(13)
    fast, reference = PoseParser(compiled=True), PoseParser(compiled=False)
    refused = 0
    for _ in range(30):
        scene = random_scene(rng, int(rng.integers(1, 12)))
        paf = scene.paf.copy()
        paf.reshape(-1)[rng.integers(0, paf.size, 20)] = np.nan
        outcomes = []
        for parser in (fast, reference):
            try:
                outcomes.append(parser(scene.cmap, paf))
            except PoseFieldError:
                outcomes.append(None)
        assert (outcomes[0] is None) == (outcomes[1] is None)
        if outcomes[0] is None:
            refused += 1
        else:
            _same(*outcomes)
    assert 0 < refused < 30


def test_numpy_fallback_is_announced_once(monkeypatch, caplog):
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.setenv(compiled.ENV_VAR, "numpy")
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        parsers = [PoseParser(), PoseParser()]
    assert not any(parser.compiled for parser in parsers)
    assert sum("numpy steps" in record.getMessage() for record in caplog.records) == 1
    with pytest.raises(RuntimeError, match="compiled pose decoder is unavailable"):
        PoseParser(compiled=True)
    scene = random_scene(np.random.default_rng(4), 3, placement="separated", height_range=(12.0, 24.0))
    assert len(parsers[0](scene.cmap, scene.paf)) == 3


@pytest.mark.parametrize("compiled_path", [False, pytest.param(True, marks=needs_compiled)])
def test_noise_raises_the_hidden_peak_margin(compiled_path):
    """On maps with noise 0.05 a margin of 0.15 lets noise bumps next to the peaks pass for hidden
    keypoints, which then break people; noise_factor x the noise level (0.25) keeps them out. (The
    limb-length rule is off: it mends some of the people that hidden peaks break, blurring the margin's
    effect.)"""
    def share(params):
        parser = PoseParser(params=dataclasses.replace(params, length_weight=0.0), compiled=compiled_path)
        return recovered_share(lambda cmap, paf: parser(cmap, paf).keypoints, "5 noise 0.05", 6,
                               np.random.default_rng(21))

    raised = share(PoseParams())
    assert raised >= 0.8
    # the same margin given explicitly does as well; without the noise floor (a peak threshold of 0.25
    # as the noise raises it, hidden_margin 0.15 as given) noise makes hidden peaks and people break
    assert share(PoseParams(noise_factor=0.0, peak_threshold=0.25, hidden_margin=0.25)) >= 0.8
    assert share(PoseParams(noise_factor=0.0, peak_threshold=0.25)) < raised - 0.2


def test_noise_level_estimates_the_noise_and_keeps_noise_from_making_people():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.05, (18, 56, 56)).astype(np.float32)
    assert noise_level(noise) == pytest.approx(0.05, rel=0.05)
    assert noise_level(np.abs(noise)) == 0.0
    paf = rng.normal(0.0, 0.05, (42, 56, 56)).astype(np.float32)
    assert len(PoseParser()(noise, paf)) == 0
    assert len(PoseParser(params=PoseParams(noise_factor=0.0), compiled=False)(noise, paf)) > 0


def _boxes_overlap(a, b, grow=0.0):
    """Whether the boxes of two people's drawn keypoints (float[C, 2]), grown by ``grow``, overlap."""
    low_a, high_a = np.nanmin(a, axis=0) - grow, np.nanmax(a, axis=0) + grow
    low_b, high_b = np.nanmin(b, axis=0) - grow, np.nanmax(b, axis=0) + grow
    return bool(np.all(low_a < high_b) and np.all(low_b < high_a))


def test_scene_placements():
    rng = np.random.default_rng(1)
    for _ in range(5):
        crossing = random_scene(rng, 5, placement="crossing").keypoints
        # every person after the first overlaps some person placed before it (cut parts aside)
        assert all(any(_boxes_overlap(crossing[o], crossing[p], 3.0) for p in range(o)) for o in range(1, 5))
        separated = random_scene(rng, 4, placement="separated", height_range=(12.0, 24.0)).keypoints
        assert not any(_boxes_overlap(separated[o], separated[p]) for o in range(4) for p in range(o))
    border = np.concatenate([random_scene(rng, 10, placement="border").keypoints for _ in range(5)])
    centre = np.nanmean(border, axis=1)
    assert np.median(np.minimum(centre, 56 - centre).min(axis=1)) < 8  # near an edge
    assert np.mean(np.isnan(border[:, :, 0])) > 0.3  # the border cuts people
    with pytest.raises(ValueError, match="placement"):
        random_scene(rng, 2, placement="everywhere")


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_scene_missing_parts(missing):
    rng = np.random.default_rng(3)
    free = np.concatenate([random_scene(rng, 10, missing=missing, height_range=(12.0, 20.0)).keypoints
                           for _ in range(10)])
    share = np.mean(np.isnan(free[:, :, 0]))
    base = np.mean(np.isnan(np.concatenate([random_scene(rng, 10, missing=0.0, height_range=(12.0, 20.0))
                                            .keypoints for _ in range(10)])[:, :, 0]))
    assert share == pytest.approx(base + missing * (1 - base), abs=0.05)


def test_scene_types_draw_their_settings():
    for name, scene_type in SCENE_TYPES.items():
        options = dict(scene_type.options)
        scene = scene_type.sample(np.random.default_rng(0))
        assert scene.keypoints.shape == (scene_type.num_people, COCO18.num_parts, 2), name
        drawn = scene.keypoints[~np.isnan(scene.keypoints[:, :, 0])]
        assert np.all((drawn >= 0) & (drawn < 56)), name
        # the estimate assumes mostly background: lower where keypoints cover more of the map
        assert 0.6 < noise_level(scene.cmap) / options.get("noise", 0.02) < 1.1, name
        low, high = options.get("height_range", (12.0, 44.0))
        heights = np.nanmax(scene.keypoints[:, :, 1], axis=1) - np.nanmin(scene.keypoints[:, :, 1], axis=1)
        assert np.all(heights < 1.2 * high), name


@needs_compiled
@pytest.mark.parametrize("cached", [True, False])
def test_a_compile_without_cache_is_announced(monkeypatch, caplog, cached):
    """The warning comes before a compile that numba's cache index cannot serve, and only then."""
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.delenv(compiled.ENV_VAR, raising=False)
    monkeypatch.setattr(compiled, "_cached", lambda kernels: cached)
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        assert compiled.load() is not None
    notices = [r for r in caplog.records if "compiling the pose decoder" in r.getMessage()]
    assert len(notices) == (0 if cached else 1) and all(r.levelno == logging.WARNING for r in notices)
    assert any("compiled path ready after" in r.getMessage() for r in caplog.records)


@needs_compiled
def test_the_cache_index_shows_the_compiled_decoder():
    from trt_perception.core.decode.pose import kernels
    cache_dir = kernels.parse._cache._cache_path
    if not os.access(cache_dir, os.W_OK):
        pytest.skip(f"numba's cache folder {cache_dir} is not writable: nothing is cached")
    assert compiled._cached(kernels)


def _compiled_assignment(kernels, cand, num_peaks, block_rows):
    """The compiled per-link assignment of ``cand`` (every block solved): chosen bool[T] and its blocks."""
    row_of, col_of, bounds = kernels.assignment_blocks(cand.link, cand.a, cand.b, num_peaks, block_rows)
    chosen = row_of < 0
    kernels.solve_blocks(cand.score, row_of, col_of, bounds, chosen)
    return chosen, (row_of, col_of, bounds)


def _tied_candidates(rng, scores):
    """Candidates of up to 21 links of 14 peaks a side (several solver blocks), scores drawn from
    ``scores`` (many optimal matchings), and the number of peaks."""
    from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates

    num_links, side = int(rng.integers(1, 22)), int(rng.integers(1, 15))
    link, a, b = (v.ravel() for v in np.meshgrid(np.arange(num_links), np.arange(side),
                                                 np.arange(side, 2 * side), indexing="ij"))
    keep = rng.random(link.size) < rng.uniform(0.2, 0.9)
    return LinkCandidates(link[keep], a[keep], b[keep], rng.choice(scores, int(keep.sum()))), 2 * side


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_compiled_assignment_breaks_ties_like_the_reference(seed):
    """Candidates of few distinct scores: the compiled assignment keeps the reference's candidates."""
    from trt_perception.core.decode.pose import kernels
    from trt_perception.core.decode.pose.assignment import BLOCK_ROWS, assignment

    rng = np.random.default_rng(seed)
    blocks = 0
    for _ in range(40):
        cand, num_peaks = _tied_candidates(rng, [0.3, 0.6, 0.9])
        got, (_, _, bounds) = _compiled_assignment(kernels, cand, num_peaks, BLOCK_ROWS)
        np.testing.assert_array_equal(got, assignment(cand, num_peaks))
        blocks += bounds.shape[0] > 2
    assert blocks  # some calls had several blocks


@needs_compiled
@pytest.mark.parametrize("seed", range(4))
def test_solving_again_only_where_a_chosen_pair_was_lowered_keeps_a_maximum(seed):
    """The limb rule's second assignment re-solves only the links where a chosen candidate's score was
    lowered: from the first solution, lowering the scores of some candidates (of no link, of some, of
    all) gives the reference's choice, the first choice in the other links, a maximum of every link
    either way (ties: another one than solving every link may give), and says whether a choice changed."""
    from trt_perception.core.decode.pose import kernels
    from trt_perception.core.decode.pose.assignment import BLOCK_ROWS, assignment

    rng = np.random.default_rng(seed)
    skipped = solved = changed_calls = 0
    for _ in range(40):
        cand, num_peaks = _tied_candidates(rng, [0.3, 0.6, 0.9])
        block_rows = int(rng.choice([8, BLOCK_ROWS]))  # small blocks: more of them
        first, (row_of, col_of, _) = _compiled_assignment(kernels, cand, num_peaks, block_rows)
        lowered = rng.random(cand.score.size) < rng.choice([0.0, 0.02, 0.3, 1.0])
        weights = np.where(lowered, cand.score - rng.choice([0.1, 0.3], cand.score.size), cand.score)
        chosen = first.copy()
        changed = kernels.solve_again(cand.link, row_of, col_of, weights, cand.score, chosen, block_rows)
        again = dataclasses.replace(cand, score=weights)
        full, _ = _compiled_assignment(kernels, again, num_peaks, block_rows)
        if block_rows == BLOCK_ROWS:
            np.testing.assert_array_equal(chosen, assignment(again, num_peaks, (first, cand.score)))
        np.testing.assert_allclose(np.bincount(cand.link, weights * chosen, 21),
                                   np.bincount(cand.link, weights * full, 21), rtol=0, atol=1e-12)
        assert changed == (not np.array_equal(first, chosen))
        changed_calls += changed
        for k in np.unique(cand.link[row_of >= 0]):
            mine = cand.link == k
            stale = (first & lowered & (row_of >= 0))[mine].any()
            if not stale:
                np.testing.assert_array_equal(chosen[mine], first[mine])
            skipped, solved = skipped + (not stale), solved + stale
    assert skipped and solved and changed_calls  # both branches ran, and some choices changed


@needs_compiled
def test_compiled_measured_width_is_the_references_also_with_ties():
    from trt_perception.core.decode.pose.hidden_peaks import measured_width

    kernels = compiled.load()
    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 7, 64, 253):
        for _ in range(20):  # few distinct values (ties), or none negative, or normal values
            curvature = rng.choice([rng.integers(-3, 2, (size, 2)).astype(float), -np.abs(rng.normal(size=(size, 2))),
                                    np.abs(rng.normal(size=(size, 2)))])
            assert kernels.measured_width(curvature, 1.5) == measured_width(curvature, 1.5)


@needs_compiled
def test_compiled_order_by_descending_score_is_numpys_stable_argsort():
    kernels = compiled.load()
    rng = np.random.default_rng(4)
    for size in (0, 1, 2, 5, 17, 438):
        for _ in range(10):  # ties, negative and spread values, one value, values at the float range's ends
            for values in (rng.integers(1, 5, size).astype(float), rng.normal(size=size), rng.random(size) ** 3,
                           np.full(size, 0.5), rng.choice([1e308, -1e308, 0.0, 5e-324], size)):
                np.testing.assert_array_equal(kernels._order_descending(values), np.argsort(-values, kind="stable"))


@needs_compiled
def test_compiled_single_best_pairs_are_the_solvers_assignment():
    from scipy.optimize import linear_sum_assignment

    kernels = compiled.load()
    rng = np.random.default_rng(6)
    taken = 0
    for _ in range(300):  # sparse negated scores, a few tied; rows <= columns as the kernels orient them
        rows = int(rng.integers(1, 6))
        cost = -rng.choice([0.3, 0.6, 0.9, 0.0, 0.0], (rows, rows + int(rng.integers(0, 3)))) * rng.choice(
            [1.0, rng.uniform(0.5, 1.0)])
        cost[np.arange(rows), rng.integers(0, cost.shape[1], rows)] -= 0.1  # every row has a pair
        col4row, work = np.empty(rows, np.int64), np.empty(cost.shape[1], np.int64)
        if kernels._row_minima_match(cost, col4row, work):
            taken += 1
            _, expected = linear_sum_assignment(cost)
            np.testing.assert_array_equal(col4row, expected)
    assert 20 < taken < 300  # both ways
